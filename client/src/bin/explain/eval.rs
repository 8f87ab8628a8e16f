//! `explain eval`: how faithful one method's maps are, over a folder of images whose objects are
//! masked. Per image, the server explains the labelled class; the map is reduced to one relevance
//! value per pixel of the model's view (`explain_fidelity::pixel_relevance`) and scored by the
//! pointing game and the relevance mass on the object, then by deletion and insertion curves (the
//! target's probability as pixels change in the map's order, against a random order), and, with
//! `--compare-endpoint`, by the Spearman rank correlation with a second server's map.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use explain_client::{
    Client, Explanation,
    preprocess::{self, ImageLimits},
};
use explain_fidelity::{self as fidelity, Perturbation};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array2, Array3, Axis};
use tokio_stream::StreamExt;

use super::{args::EvalOptions, served::ServedModel};

type Failure = Box<dyn std::error::Error>;

/// Images whose curves are scored together: bounds the perturbed images held at once
/// (`4 × (steps + 1)` each).
const CHUNK: usize = 8;

/// One row of the dataset's `index.csv`.
#[derive(Debug, serde::Deserialize)]
struct Sample {
    image: PathBuf,
    mask: PathBuf,
    class_index: u32,
}

/// One image, loaded and explained.
struct Explained {
    class: u32,
    view: RgbImage,
    relevance: Array2<f32>,
}

/// The sums behind the report.
#[derive(Debug, Default)]
struct Tally {
    images: usize,
    failed: usize,
    correct: usize,
    localised: usize,
    hits: usize,
    mass: f64,
    massed: usize,
    curves: usize,
    /// Deletion (map, random) and insertion (map, random) areas, summed.
    areas: [f64; 4],
    correlated: usize,
    spearman: f64,
    uncorrelated: usize,
    /// Maps the `--compare-endpoint` server did not give.
    uncompared: usize,
}

/// Runs `explain eval`; `other` is the `--compare-endpoint` server.
pub(crate) async fn eval(client: &Client, other: Option<&Client>, options: &EvalOptions) -> Result<(), Failure> {
    let samples = read_index(&options.dataset, options.limit)?;
    let info = client.model_info().await?;
    let model = ServedModel::new(&info, &options.method_options, &[options.method])?;
    let progress = if options.json { ProgressBar::hidden() } else { ProgressBar::new(samples.len() as u64) };
    progress.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed} ({eta} left)")?);
    let mut tally = Tally::default();
    for (chunk_index, chunk) in samples.chunks(CHUNK).enumerate() {
        let first = chunk_index * CHUNK;
        let explained = explain(client, &model, chunk, options, &mut tally, &progress).await?;
        if let Some(other) = other {
            correlate(other, &model, &explained, options, &mut tally, &progress).await?;
        }
        if !options.no_curves {
            score_curves(client, &model, &explained, first, options, &mut tally).await?;
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    report(&tally, options, &model);
    match tally.images - tally.failed {
        0 => Err(format!("none of the {} images could be evaluated", tally.images).into()),
        _ => Ok(()),
    }
}

fn read_index(dataset: &Path, limit: Option<usize>) -> Result<Vec<Sample>, Failure> {
    let path = dataset.join("index.csv");
    let mut reader = csv::Reader::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut samples = Vec::new();
    for row in reader.deserialize().take(limit.unwrap_or(usize::MAX)) {
        let mut sample: Sample = row.map_err(|e| format!("{}: {e}", path.display()))?;
        sample.image = dataset.join(&sample.image);
        sample.mask = dataset.join(&sample.mask);
        samples.push(sample);
    }
    if samples.is_empty() {
        return Err(format!("{} lists no images", path.display()).into());
    }
    Ok(samples)
}

/// Explains each image of `chunk` and scores where its map points; returns those that succeeded.
async fn explain(
    client: &Client,
    model: &ServedModel,
    chunk: &[Sample],
    options: &EvalOptions,
    tally: &mut Tally,
    progress: &ProgressBar,
) -> Result<Vec<Explained>, Failure> {
    let mut loaded = Vec::with_capacity(chunk.len());
    let mut requests = Vec::with_capacity(chunk.len());
    for sample in chunk {
        let bytes = std::fs::read(&sample.image).map_err(|e| format!("{}: {e}", sample.image.display()))?;
        let view = view_of(&bytes, model, &sample.image)?;
        let mask = mask_of(&sample.mask, model)?;
        let request = model.with_method(
            client.explain(bytes).target(sample.class_index),
            options.method,
            &options.method_options,
        );
        requests.push(request.into_request());
        loaded.push((sample, view, mask));
    }
    tally.images += chunk.len();
    let explanations = collect(client.explain_many(requests, options.in_flight), chunk.len()).await;
    let mut explained = Vec::with_capacity(chunk.len());
    for ((sample, view, mask), result) in loaded.into_iter().zip(explanations) {
        let scored = result.and_then(|explanation| {
            let relevance = relevance_of(&explanation, model)?;
            let predicted = explanation.prediction.top_classes.first().map(|c| c.index);
            Ok((predicted, relevance))
        });
        let (predicted, relevance) = match scored {
            Ok(scored) => scored,
            Err(error) => {
                tally.failed += 1;
                progress.suspend(|| eprintln!("{}: {error}", sample.image.display()));
                continue;
            }
        };
        tally.correct += usize::from(predicted == Some(sample.class_index));
        if let Ok(hit) = fidelity::pointing_game(relevance.view(), mask.view()) {
            tally.localised += 1;
            tally.hits += usize::from(hit);
        }
        if let Ok(mass) = fidelity::relevance_mass(relevance.view(), mask.view()) {
            tally.massed += 1;
            tally.mass += mass;
        }
        explained.push(Explained { class: sample.class_index, view, relevance });
    }
    Ok(explained)
}

/// The Spearman rank correlation of each map with the map `other` gives for the same request.
async fn correlate(
    other: &Client,
    model: &ServedModel,
    explained: &[Explained],
    options: &EvalOptions,
    tally: &mut Tally,
    progress: &ProgressBar,
) -> Result<(), Failure> {
    let requests = explained
        .iter()
        .map(|item| {
            let tensor = preprocess::to_tensor(&item.view, &model.preprocessing);
            model
                .with_method(other.explain(&tensor).target(item.class), options.method, &options.method_options)
                .into_request()
        })
        .collect();
    let results = collect(other.explain_many(requests, options.in_flight), explained.len()).await;
    for (item, result) in explained.iter().zip(results) {
        let relevance = match result.and_then(|explanation| relevance_of(&explanation, model)) {
            Ok(relevance) => relevance,
            Err(error) => {
                tally.uncompared += 1;
                progress.suspend(|| eprintln!("--compare-endpoint: {error}"));
                continue;
            }
        };
        let (a, b) = (item.relevance.as_standard_layout(), relevance.as_standard_layout());
        match fidelity::spearman(a.as_slice().unwrap_or_default(), b.as_slice().unwrap_or_default())? {
            Some(rho) => {
                tally.correlated += 1;
                tally.spearman += rho;
            }
            None => tally.uncorrelated += 1,
        }
    }
    Ok(())
}

/// Deletion and insertion curves of each map and of a random order, scored by the target's
/// probability.
async fn score_curves(
    client: &Client,
    model: &ServedModel,
    explained: &[Explained],
    first: usize,
    options: &EvalOptions,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let steps = options.curve_steps as usize;
    let points = steps + 1;
    let mut requests = Vec::new();
    for (offset, item) in explained.iter().enumerate() {
        let image = tensor_of(&item.view, model);
        let black = tensor_of(&RgbImage::new(item.view.width(), item.view.height()), model);
        let blurred = tensor_of(&image::imageops::blur(&item.view, options.blur_sigma), model);
        let by_map = fidelity::by_relevance(item.relevance.view());
        let random = fidelity::random_order(by_map.len(), options.random_seed.wrapping_add((first + offset) as u64));
        for (kind, removed) in [(Perturbation::Deletion, &black), (Perturbation::Insertion, &blurred)] {
            for order in [&by_map, &random] {
                for picture in fidelity::curve_images(kind, image.view(), removed.view(), order, steps)? {
                    let tensor = picture.insert_axis(Axis(0));
                    requests.push(client.explain(&tensor).target(item.class).top_k(1).into_request());
                }
            }
        }
    }
    let count = requests.len();
    let mut probabilities = Vec::with_capacity(count);
    for result in collect(client.explain_many(requests, options.in_flight), count).await {
        probabilities.push(f64::from(result?.prediction.target.map_or(0.0, |t| t.probability)));
    }
    for image in probabilities.chunks(4 * points) {
        for (curve, scores) in image.chunks(points).enumerate() {
            tally.areas[curve] += fidelity::area_under_curve(scores);
        }
        tally.curves += 1;
    }
    Ok(())
}

/// The results of `explain_many`, in request order.
async fn collect(
    mut results: tokio_stream::wrappers::ReceiverStream<explain_client::Completed>,
    count: usize,
) -> Vec<Result<Explanation, Failure>> {
    let mut ordered: Vec<Option<Result<Explanation, Failure>>> = (0..count).map(|_| None).collect();
    while let Some((index, result)) = results.next().await {
        if let Some(slot) = ordered.get_mut(index) {
            *slot = Some(result.map_err(Failure::from));
        }
    }
    ordered.into_iter().map(|slot| slot.unwrap_or_else(|| Err("the stream ended without an answer".into()))).collect()
}

fn view_of(bytes: &[u8], model: &ServedModel, path: &Path) -> Result<RgbImage, Failure> {
    preprocess::model_view(bytes, ImageLimits::DEFAULT, &model.preprocessing)
        .map_err(|e| format!("{}: {e}", path.display()).into())
}

/// The mask in the model's view (resized and cropped like the image): true where it is bright.
fn mask_of(path: &Path, model: &ServedModel) -> Result<Array2<bool>, Failure> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let view = view_of(&bytes, model, path)?;
    let (width, height) = view.dimensions();
    Ok(Array2::from_shape_fn((height as usize, width as usize), |(y, x)| view.get_pixel(x as u32, y as u32)[0] >= 128))
}

/// The normalised `[3, H, W]` tensor of a view.
fn tensor_of(view: &RgbImage, model: &ServedModel) -> Array3<f32> {
    preprocess::to_tensor(view, &model.preprocessing).index_axis_move(Axis(0), 0)
}

/// The pixel relevance of the one attribution an explanation holds.
fn relevance_of(explanation: &Explanation, model: &ServedModel) -> Result<Array2<f32>, Failure> {
    let tensor = explanation
        .tensors
        .iter()
        .find_map(|(name, tensor)| name.starts_with("attribution/").then_some(tensor))
        .ok_or("the explanation holds no attribution")?;
    let (height, width) = (model.preprocessing.height as usize, model.preprocessing.width as usize);
    Ok(fidelity::pixel_relevance(tensor.array.view(), height, width)?)
}

fn report(tally: &Tally, options: &EvalOptions, model: &ServedModel) {
    let ratio = |part: f64, whole: usize| (whole > 0).then(|| part / whole as f64);
    let evaluated = tally.images - tally.failed;
    let accuracy = ratio(tally.correct as f64, evaluated);
    let pointing = ratio(tally.hits as f64, tally.localised);
    let mass = ratio(tally.mass, tally.massed);
    let [deletion, deletion_random, insertion, insertion_random] = tally.areas.map(|area| ratio(area, tally.curves));
    let spearman = ratio(tally.spearman, tally.correlated);
    let method = options.method.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
    let layer = options.method.takes_layer().then_some(model.cam_layer.as_str());
    if options.json {
        println!(
            "{}",
            serde_json::json!({
                "method": method, "layer": layer, "images": tally.images, "failed": tally.failed,
                "accuracy": accuracy, "pointing_game": pointing, "pointing_game_images": tally.localised,
                "relevance_mass": mass, "relevance_mass_images": tally.massed,
                "curve_steps": options.curve_steps, "curve_images": tally.curves,
                "deletion_auc": deletion, "deletion_auc_random": deletion_random,
                "insertion_auc": insertion, "insertion_auc_random": insertion_random,
                "spearman": spearman, "spearman_images": tally.correlated, "spearman_undefined": tally.uncorrelated,
                "spearman_failed": tally.uncompared,
            })
        );
        return;
    }
    let show = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"));
    println!("method            {method}{}", layer.map(|l| format!(" at {l}")).unwrap_or_default());
    println!("images            {} ({} failed)", tally.images, tally.failed);
    println!("accuracy          {}", show(accuracy));
    println!("pointing game     {} over {} images", show(pointing), tally.localised);
    println!("relevance mass    {} over {} images", show(mass), tally.massed);
    if tally.curves > 0 {
        println!("deletion AUC      {} (random order {})", show(deletion), show(deletion_random));
        println!("insertion AUC     {} (random order {})", show(insertion), show(insertion_random));
    }
    if tally.correlated + tally.uncorrelated + tally.uncompared > 0 {
        println!(
            "spearman          {} over {} images ({} with a constant map, {} not given by the other server)",
            show(spearman),
            tally.correlated,
            tally.uncorrelated,
            tally.uncompared
        );
    }
}
