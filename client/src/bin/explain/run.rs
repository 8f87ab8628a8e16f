//! `explain run`: explains every image over one stream and writes, per image, the picture the
//! model saw, each attribution as a heatmap over it, each layer's feature maps as a grid, and with
//! `--npy` every tensor.

use std::path::{Path, PathBuf};

use explain_client::{
    Client, Explanation,
    preprocess::{self, ImageLimits},
    render::{self, ColorMap},
};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Axis, Ix4};
use tokio_stream::StreamExt;

use super::{args::RunOptions, served::ServedModel};

type Failure = Box<dyn std::error::Error>;

/// Runs `explain run`.
pub(crate) async fn run(client: &Client, options: &RunOptions) -> Result<(), Failure> {
    if options.methods.is_empty() && options.feature_maps.is_empty() {
        return Err("nothing to compute: give --method and/or --feature-maps".into());
    }
    std::fs::create_dir_all(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    let info = client.model_info().await?;
    let model = ServedModel::new(&info, &options.method_options, &options.methods)?;
    let (rows, columns) = options.grid;

    let mut views = Vec::with_capacity(options.images.len());
    let mut requests = Vec::with_capacity(options.images.len());
    for path in &options.images {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let view = preprocess::model_view(&bytes, ImageLimits::DEFAULT, &model.preprocessing)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        views.push(view);
        let mut request = client.explain(bytes);
        if let Some(target) = options.target {
            request = request.target(target);
        }
        if options.cross_entropy {
            request = request.cross_entropy();
        }
        if let Some(steps) = options.faithfulness {
            request = request.faithfulness(steps);
        }
        for &method in &options.methods {
            request = model.with_method(request, method, &options.method_options);
        }
        for layer in &options.feature_maps {
            let channels =
                info.layers.iter().find(|l| &l.name == layer).and_then(|l| l.shape.get(1)).copied().unwrap_or(0);
            let drawn: Vec<u32> = (0..(rows * columns).min(channels.max(1) as u32)).collect();
            request = request.feature_maps_channels(layer, &drawn);
        }
        requests.push(request.into_request());
    }

    let progress = if options.json || options.images.len() < 2 {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(options.images.len() as u64)
    };
    progress.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed} ({eta} left)")?);
    let colormap = ColorMap::from(options.colormap);
    let mut failures = 0;
    let mut results = client.explain_many(requests, options.in_flight);
    while let Some((index, result)) = results.next().await {
        let path = &options.images[index];
        let written = result.map_err(Failure::from).and_then(|explanation| {
            write(path, &views[index], &explanation, options, colormap).map(|files| (explanation, files))
        });
        match written {
            Ok((explanation, files)) => report(path, &explanation, &files, options.json, &progress),
            Err(error) => {
                failures += 1;
                progress.suspend(|| eprintln!("{}: {error}", path.display()));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    match failures {
        0 => Ok(()),
        n => Err(format!("{n} of {} images failed", options.images.len()).into()),
    }
}

/// Writes the files of one explanation; returns their paths.
fn write(
    image: &Path,
    view: &RgbImage,
    explanation: &Explanation,
    options: &RunOptions,
    colormap: ColorMap,
) -> Result<Vec<PathBuf>, Failure> {
    let stem = image.file_stem().map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    let file = |suffix: &str| options.out.join(format!("{stem}.{suffix}"));
    let mut files = Vec::new();
    let mut save = |path: PathBuf, bytes: Vec<u8>| -> Result<(), Failure> {
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
        Ok(())
    };
    save(file("input.png"), render::png(view))?;
    let (rows, columns) = options.grid;
    let mut npy_files = Vec::new();
    for (name, tensor) in &explanation.tensors {
        let label = name.split_once('/').map_or(name.as_str(), |(_, rest)| rest).replace('/', ".");
        if name.starts_with("attribution/")
            && let Some(heat) = render::heat(tensor.array.view())
        {
            save(
                file(&format!("{label}.png")),
                render::png(&render::overlay(view, heat.view(), colormap, options.alpha)),
            )?;
        }
        if name.starts_with("activation/") || name.starts_with("gradient/") {
            let prefix = if name.starts_with("gradient/") { "gradient." } else { "" };
            if let Ok(maps) = tensor.array.view().into_dimensionality::<Ix4>() {
                let grid = render::grid(maps.index_axis(Axis(0), 0), columns, rows, options.tile);
                save(file(&format!("{prefix}{label}.grid.png")), render::png(&grid))?;
            }
        }
        if options.npy {
            let path = file(&format!("{}.npy", name.replace('/', ".")));
            ndarray_npy::write_npy(&path, &tensor.array).map_err(|e| format!("{}: {e}", path.display()))?;
            npy_files.push(path);
        }
    }
    files.extend(npy_files);
    Ok(files)
}

fn report(image: &Path, explanation: &Explanation, files: &[PathBuf], json: bool, progress: &ProgressBar) {
    let target = explanation.prediction.target.clone().unwrap_or_default();
    let class = if target.label.is_empty() { target.index.to_string() } else { target.label.clone() };
    if json {
        let faithfulness: serde_json::Map<String, serde_json::Value> = explanation
            .faithfulness
            .iter()
            .map(|(name, scores)| {
                let scores = serde_json::json!({
                    "deletion_auc": scores.deletion_auc, "insertion_auc": scores.insertion_auc,
                    "deletion_drop_at_quarter": scores.deletion_drop_at_quarter,
                });
                (name.clone(), scores)
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "image": image, "class": target.index, "label": target.label, "probability": target.probability,
                "files": files, "total_ms": explanation.summary.timings.as_ref().map(|t| t.total_ms),
                "faithfulness": faithfulness,
            })
        );
    } else {
        progress.suspend(|| {
            println!(
                "{}: class {class} ({:.3}); {} files in {}",
                image.display(),
                target.probability,
                files.len(),
                files.first().and_then(|f| f.parent()).map_or_else(String::new, |d| d.display().to_string())
            );
            for (name, scores) in &explanation.faithfulness {
                println!(
                    "  {name}: deletion AUC {:.3}, insertion AUC {:.3}, drop at a quarter deleted {:.3}",
                    scores.deletion_auc, scores.insertion_auc, scores.deletion_drop_at_quarter
                );
            }
        });
    }
}
