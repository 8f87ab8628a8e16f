//! `explain-bench`: load generator for the explain service, in the manner of Triton's
//! perf_analyzer. Runs a concurrency sweep (N callers, each sending its next request when the last
//! returns) or a fixed request rate for a duration, with a mix of methods, and prints throughput and
//! p50/p90/p99 latency per step, errors by gRPC code, and that every call sent got exactly one
//! answer, and per method the wire overhead: the client's wall time of a call minus the server's
//! own `Summary.timings.total_ms` (what the network, HTTP/2 and both ends' framing cost); `--json`
//! writes the report. Throughput counts each answered call by the share of its time inside the
//! measured window, so calls of a second or more are not under-counted at the window's edges;
//! latencies are those of the calls wholly inside it. For overload runs, `--no-retries` shows the server's own
//! refusals, and `--cancel-fraction` makes callers abandon calls at random.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::{Parser, ValueEnum};
use explain_client::{Client, RetryPolicy, proto};
use proto::attribution_spec::Method as Spec;
use tokio::sync::Mutex;

/// What each request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Method {
    /// Prediction only (`Classify`).
    Classify,
    /// The 11 feature maps of a ResNet.
    FeatureMaps,
    /// Input gradient.
    Saliency,
    /// Grad-CAM at the last spatial layer.
    GradCam,
    /// Guided backpropagation.
    GuidedBackprop,
    /// Integrated Gradients (`--steps` rows).
    IntegratedGradients,
    /// SmoothGrad (`--samples` rows).
    SmoothGrad,
    /// Grad-CAM++ at the last spatial layer, upsampled.
    GradCamPlusPlus,
    /// XGrad-CAM at the last spatial layer, upsampled.
    XgradCam,
    /// HiResCAM at the last spatial layer, upsampled.
    HiresCam,
    /// LayerCAM at the last spatial layer, upsampled.
    LayerCam,
    /// EigenCAM at the last spatial layer, upsampled.
    EigenCam,
    /// EigenGradCAM at the last spatial layer, upsampled.
    EigenGradCam,
    /// Score-CAM at the last spatial layer, upsampled (a row per channel).
    ScoreCam,
    /// Ablation-CAM at the last spatial layer, upsampled (a row per channel).
    AblationCam,
    /// Guided Grad-CAM at the last spatial layer.
    GuidedGradCam,
    /// Occlusion with the server's default windows (a seventh of the side, stride half of it).
    Occlusion,
    /// Feature Ablation over a 7 × 7 grid of cells (49 rows).
    FeatureAblation,
    /// GradientSHAP, `--samples` draws, σ 0.1, zeros and black baselines.
    GradientShap,
    /// RISE with the server's defaults (500 masks of 8 × 8 cells).
    Rise,
    /// DeepLift from zeros (two rows: the input and the baseline).
    DeepLift,
}

/// What the requests need to know about the served model.
struct Served {
    /// Its layers' names.
    layers: Vec<String>,
    /// Feature Ablation's segments: a 7 × 7 grid of cells over the input, row-major.
    grid: Vec<u32>,
}

impl Served {
    fn new(info: &proto::GetModelInfoResponse) -> Self {
        let layers = info.layers.iter().map(|layer| layer.name.clone()).collect();
        let (height, width) = match info.input.as_ref().map(|input| input.shape.as_slice()) {
            Some(&[_, _, height, width]) => (height.max(1) as u32, width.max(1) as u32),
            _ => (1, 1),
        };
        let cell = |at: u32, extent: u32| (at * 7 / extent).min(6);
        let grid = (0..height).flat_map(|y| (0..width).map(move |x| cell(y, height) * 7 + cell(x, width))).collect();
        Self { layers, grid }
    }
}

/// Element type of returned tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Encoding {
    Float32,
    Float16,
}

/// Load generator for the explain service.
#[derive(Debug, Parser)]
#[command(name = "explain-bench", version, about)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// Methods, sent round-robin (a method mix), e.g. `saliency,integrated-gradients`.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "saliency")]
    methods: Vec<Method>,
    /// Concurrent callers to sweep, e.g. `1,4,16`.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    concurrency: Vec<usize>,
    /// Send at this fixed rate (requests/s) instead of a concurrency sweep.
    #[arg(long)]
    rate: Option<f64>,
    /// Measured seconds per step.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds before each step.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Integrated Gradients steps.
    #[arg(long, default_value_t = 32)]
    steps: u32,
    /// SmoothGrad samples and GradientSHAP draws.
    #[arg(long, default_value_t = 16)]
    samples: u32,
    /// Element type of the returned tensors.
    #[arg(long, value_enum, default_value_t = Encoding::Float32)]
    encoding: Encoding,
    /// Send images as PNGs of this size (decoded and resized by the server) instead of
    /// preprocessed tensors at the model's input size.
    #[arg(long)]
    png_size: Option<u32>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Do not retry refused calls (RESOURCE_EXHAUSTED, UNAVAILABLE): count them instead.
    #[arg(long)]
    no_retries: bool,
    /// Fraction of calls the caller abandons, each after a random delay of up to
    /// `--cancel-after-ms` (seeded, so runs repeat).
    #[arg(long, default_value_t = 0.0)]
    cancel_fraction: f64,
    /// Longest delay before an abandoned call is dropped, in milliseconds.
    #[arg(long, default_value_t = 200)]
    cancel_after_ms: u64,
    /// A call not answered within this many seconds counts as lost.
    #[arg(long, default_value_t = 120)]
    lost_after_secs: u64,
}

/// Latencies and errors of one step.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    /// Client wall time minus the server's total, in milliseconds, by method.
    overheads: BTreeMap<String, Vec<f64>>,
    errors: usize,
    /// Answered calls wholly inside the measured window.
    images: usize,
    /// Answered calls inside the measured window, one that straddles an edge counted by the share
    /// of its time inside: the throughput's numerator.
    answered_inside: f64,
    /// Every call of the step, warm-up included: sent, and how each ended.
    sent: usize,
    outcomes: BTreeMap<String, usize>,
}

/// How one call ended.
enum Outcome {
    /// Answered, with the server's own total time from its summary.
    Ok(Duration),
    Failed(String),
    Cancelled,
    Lost,
}

/// A SplitMix64 step: the `n`-th pseudo-random number in [0, 1) of the run.
fn uniform(n: u64) -> f64 {
    let mut z = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// Makes call `n`, abandoning it when the run says so; says how it ended.
async fn answered(
    n: usize,
    client: &Client,
    args: &Args,
    method: Method,
    image: &proto::Image,
    served: &Served,
) -> Outcome {
    let work = call(client, args, method, image, served);
    let n = n as u64;
    let limit = if uniform(2 * n) < args.cancel_fraction {
        Some(Duration::from_secs_f64(uniform(2 * n + 1) * args.cancel_after_ms as f64 / 1e3))
    } else {
        None
    };
    let patience = limit.unwrap_or(Duration::from_secs(args.lost_after_secs));
    match tokio::time::timeout(patience, work).await {
        Ok(Ok(server_total)) => Outcome::Ok(server_total),
        Ok(Err(explain_client::Error::Status(status))) => Outcome::Failed(format!("{:?}", status.code())),
        Ok(Err(other)) => Outcome::Failed(format!("client error: {other}")),
        Err(_) if limit.is_some() => Outcome::Cancelled,
        Err(_) => Outcome::Lost,
    }
}

fn request(args: &Args, method: Method, image: &proto::Image, served: &Served) -> proto::ExplainRequest {
    let attribution = |spec| vec![proto::AttributionSpec { method: Some(spec) }];
    let cam = |variant: proto::CamVariant| {
        attribution(Spec::GradCam(proto::GradCam { layer: String::new(), upsample: true, variant: variant as i32 }))
    };
    let baseline = |kind| proto::Baseline { kind: Some(kind) };
    let attributions = match method {
        Method::Classify | Method::FeatureMaps => Vec::new(),
        Method::Saliency => attribution(Spec::Saliency(proto::Saliency { absolute: false })),
        Method::GradCam => {
            attribution(Spec::GradCam(proto::GradCam { layer: String::new(), upsample: true, ..Default::default() }))
        }
        Method::GuidedBackprop => attribution(Spec::GuidedBackprop(proto::GuidedBackprop {})),
        Method::IntegratedGradients => {
            attribution(Spec::IntegratedGradients(proto::IntegratedGradients { steps: args.steps, baseline: None }))
        }
        Method::SmoothGrad => {
            attribution(Spec::SmoothGrad(proto::SmoothGrad { samples: args.samples, ..Default::default() }))
        }
        Method::GradCamPlusPlus => cam(proto::CamVariant::GradCamPlusPlus),
        Method::XgradCam => cam(proto::CamVariant::XgradCam),
        Method::HiresCam => cam(proto::CamVariant::HiresCam),
        Method::LayerCam => cam(proto::CamVariant::LayerCam),
        Method::EigenCam => cam(proto::CamVariant::EigenCam),
        Method::EigenGradCam => cam(proto::CamVariant::EigenGradCam),
        Method::ScoreCam => attribution(Spec::ScoreCam(proto::ScoreCam { layer: String::new(), upsample: true })),
        Method::AblationCam => {
            attribution(Spec::AblationCam(proto::AblationCam { layer: String::new(), upsample: true }))
        }
        Method::GuidedGradCam => attribution(Spec::GuidedGradCam(proto::GuidedGradCam { layer: String::new() })),
        Method::Occlusion => attribution(Spec::Occlusion(proto::Occlusion::default())),
        Method::FeatureAblation => attribution(Spec::FeatureAblation(proto::FeatureAblation {
            segment_ids: served.grid.clone(),
            baseline: None,
        })),
        Method::GradientShap => attribution(Spec::GradientShap(proto::GradientShap {
            samples: args.samples,
            stdev: 0.1,
            seed: 0,
            baselines: vec![
                baseline(proto::baseline::Kind::Zeros(proto::BaselineZeros {})),
                baseline(proto::baseline::Kind::Black(proto::BaselineBlack {})),
            ],
        })),
        Method::Rise => attribution(Spec::Rise(proto::Rise::default())),
        Method::DeepLift => attribution(Spec::DeepLift(proto::DeepLift { baseline: None })),
    };
    let feature_maps = if method == Method::FeatureMaps {
        served.layers.iter().map(|layer| proto::FeatureMapSpec { layer: layer.clone(), ..Default::default() }).collect()
    } else {
        Vec::new()
    };
    let encoding = match args.encoding {
        Encoding::Float32 => proto::DataType::Float32,
        Encoding::Float16 => proto::DataType::Float16,
    };
    proto::ExplainRequest {
        image: Some(image.clone()),
        attributions,
        feature_maps,
        encoding: encoding as i32,
        ..Default::default()
    }
}

/// One call; the server's own total time for it (`Summary.timings.total_ms`).
async fn call(
    client: &Client,
    args: &Args,
    method: Method,
    image: &proto::Image,
    served: &Served,
) -> Result<Duration, explain_client::Error> {
    let summary = if method == Method::Classify {
        client.classify(proto::ClassifyRequest { image: Some(image.clone()), top_k: 5 }).await?.summary
    } else {
        Some(client.send(request(args, method, image, served)).await?.summary)
    };
    // A missing or nonsensical server total would silently make the wire overhead the whole
    // call: it is an error, not zero.
    let total_ms = summary
        .and_then(|summary| summary.timings)
        .map(|timings| timings.total_ms)
        .filter(|total_ms| total_ms.is_finite() && *total_ms >= 0.0)
        .ok_or_else(|| explain_client::Error::Assembly("the answer carries no summary with a total time".into()))?;
    Ok(Duration::from_secs_f64(total_ms / 1e3))
}

/// A deterministic test image: a normalised tensor at the model's input size, or a PNG.
fn image(args: &Args, info: &proto::GetModelInfoResponse) -> proto::Image {
    let input = info.input.clone().unwrap_or_default();
    let (height, width) =
        (input.shape.get(2).copied().unwrap_or(224) as usize, input.shape.get(3).copied().unwrap_or(224) as usize);
    let value = |i: usize| ((i * 7919) % 255) as f32 / 255.0;
    if let Some(size) = args.png_size {
        let size = size as usize;
        let pixels: Vec<u8> = (0..size * size * 3).map(|i| (value(i) * 255.0) as u8).collect();
        return proto::Image { source: Some(proto::image::Source::Encoded(png(size as u32, &pixels).into())) };
    }
    let data: Vec<u8> = (0..3 * height * width).flat_map(|i| ((value(i) - 0.45) / 0.225).to_le_bytes()).collect();
    proto::Image {
        source: Some(proto::image::Source::Tensor(proto::Tensor {
            shape: vec![1, 3, height as i64, width as i64],
            dtype: proto::DataType::Float32 as i32,
            data: data.into(),
            quantization: None,
        })),
    }
}

/// `rgb` pixels (`size`×`size`) as a PNG.
fn png(size: u32, rgb: &[u8]) -> Vec<u8> {
    let image = image::RgbImage::from_raw(size, size, rgb.to_vec()).unwrap_or_default();
    let mut bytes = Vec::new();
    let _ = image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png);
    bytes
}

/// The share of the call `[sent, done]` that lies inside the window `[from, end]` (0 to 1).
fn share_inside(sent: Instant, done: Instant, from: Instant, end: Instant) -> f64 {
    let call = done.saturating_duration_since(sent).as_secs_f64();
    let inside = done.min(end).saturating_duration_since(sent.max(from)).as_secs_f64();
    if call > 0.0 { inside / call } else { f64::from(u8::from(sent >= from && done <= end)) }
}

/// The `p`-th percentile of sorted values (nearest rank; NaN when there are none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

/// Runs one step: `callers` concurrent loops (or a fixed `rate`) for warm-up plus duration.
async fn step(args: Arc<Args>, client: Client, callers: usize, image: proto::Image, served: Arc<Served>) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Finished calls are reaped as new ones are launched, so a long run at a high rate holds only
    // the calls in flight, not one task per call sent.
    let mut tasks = tokio::task::JoinSet::new();
    let mut launch = |task_start: Option<Instant>| {
        while tasks.try_join_next().is_some() {}
        let (args, client, image, served, tally, counter) =
            (args.clone(), client.clone(), image.clone(), served.clone(), tally.clone(), counter.clone());
        tasks.spawn(async move {
            loop {
                if let Some(at) = task_start {
                    tokio::time::sleep_until(at.into()).await;
                }
                let sent = Instant::now();
                if sent >= end {
                    return;
                }
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let method = args.methods[n % args.methods.len()];
                tally.lock().await.sent += 1;
                let outcome = answered(n, &client, &args, method, &image, &served).await;
                let done = Instant::now();
                let mut tally = tally.lock().await;
                let key = match &outcome {
                    Outcome::Ok(_) => "OK".to_owned(),
                    Outcome::Failed(code) => code.clone(),
                    Outcome::Cancelled => "cancelled by the caller".to_owned(),
                    Outcome::Lost => "lost (no answer)".to_owned(),
                };
                *tally.outcomes.entry(key).or_default() += 1;
                if matches!(outcome, Outcome::Ok(_)) {
                    tally.answered_inside += share_inside(sent, done, measure_from, end);
                }
                if sent >= measure_from && done <= end {
                    match outcome {
                        Outcome::Ok(server_total) => {
                            let wall = done - sent;
                            tally.latencies.push(wall);
                            let overhead = (wall.as_secs_f64() - server_total.as_secs_f64()) * 1e3;
                            tally.overheads.entry(format!("{method:?}")).or_default().push(overhead);
                            tally.images += 1;
                        }
                        Outcome::Failed(_) | Outcome::Lost => tally.errors += 1,
                        Outcome::Cancelled => {}
                    }
                }
                drop(tally);
                if task_start.is_some() {
                    return;
                }
            }
        });
    };
    match args.rate {
        Some(rate) => {
            let interval = Duration::from_secs_f64(1.0 / rate);
            // Calls are spawned when due, so a long run holds only the calls in flight.
            let mut at = start;
            while at < end {
                tokio::time::sleep_until(at.into()).await;
                launch(Some(at));
                at += interval;
            }
        }
        None => (0..callers).for_each(|_| launch(None)),
    }
    tasks.join_all().await;
    Arc::try_unwrap(tally).map(Mutex::into_inner).unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Arc::new(Args::parse());
    let retry = if args.no_retries { RetryPolicy::none() } else { RetryPolicy::default() };
    let client = Client::builder(args.endpoint.clone()).retry(retry).build().await?;
    let info = client.model_info().await?;
    let served = Arc::new(Served::new(&info));
    let image = image(&args, &info);
    let methods: Vec<String> = args.methods.iter().map(|m| format!("{m:?}")).collect();
    println!(
        "model {} ({}), methods {}, {} s per step",
        info.name,
        info.execution_provider,
        methods.join("+"),
        args.duration
    );
    println!(
        "{:>11} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "concurrency", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms"
    );
    let steps: Vec<usize> = if args.rate.is_some() { vec![0] } else { args.concurrency.clone() };
    let mut report = Vec::new();
    for callers in steps {
        let mut tally = step(args.clone(), client.clone(), callers, image.clone(), served.clone()).await;
        let mut latencies: Vec<f64> = tally.latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        latencies.sort_by(f64::total_cmp);
        let throughput = tally.answered_inside / args.duration;
        let (p50, p90, p99) =
            (percentile(&latencies, 50.0), percentile(&latencies, 90.0), percentile(&latencies, 99.0));
        let label = args.rate.map_or_else(|| callers.to_string(), |rate| format!("{rate}/s"));
        println!(
            "{label:>11} {:>9} {:>7} {throughput:>10.2} {p50:>9.1} {p90:>9.1} {p99:>9.1}",
            tally.images, tally.errors
        );
        let answered: usize = tally.outcomes.values().sum();
        let outcomes: Vec<String> = tally.outcomes.iter().map(|(key, count)| format!("{key} {count}")).collect();
        println!("{:>11} sent {}, answered {answered}: {}", "", tally.sent, outcomes.join(", "));
        let mut overhead = serde_json::Map::new();
        for (method, values) in &mut tally.overheads {
            values.sort_by(f64::total_cmp);
            let (p50, p99) = (percentile(values, 50.0), percentile(values, 99.0));
            println!("{:>11} wire overhead {method}: p50 {p50:.2} ms, p99 {p99:.2} ms", "");
            overhead.insert(method.clone(), serde_json::json!({ "p50_ms": p50, "p99_ms": p99 }));
        }
        report.push(serde_json::json!({
            "concurrency": callers, "rate": args.rate, "requests": tally.images, "errors": tally.errors,
            "throughput_rps": throughput, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
            "sent": tally.sent, "answered": answered, "outcomes": tally.outcomes, "wire_overhead": overhead,
        }));
    }
    if let Some(path) = &args.json {
        let document = serde_json::json!({
            "model": info.name, "execution_provider": info.execution_provider, "methods": methods,
            "steps": args.steps, "samples": args.samples, "encoding": format!("{:?}", args.encoding),
            "duration_s": args.duration, "results": report,
        });
        std::fs::write(path, serde_json::to_string_pretty(&document)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_counts_by_its_share_of_time_inside_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let (from, end) = (at(1000), at(11_000));
        assert_eq!(share_inside(at(2000), at(3000), from, end), 1.0, "wholly inside");
        assert_eq!(share_inside(at(500), at(1500), from, end), 0.5, "straddles the start");
        assert_eq!(share_inside(at(10_750), at(11_750), from, end), 0.25, "straddles the end");
        assert_eq!(share_inside(at(0), at(900), from, end), 0.0, "warm-up");
        assert_eq!(share_inside(at(11_000), at(12_000), from, end), 0.0, "after the end");
        assert_eq!(share_inside(at(2000), at(2000), from, end), 1.0, "instant, inside");
        // Ten back-to-back calls of 1.1 s from the start of warm-up: 9.09 of them fall inside.
        let total: f64 = (0..10).map(|i| share_inside(at(i * 1100), at((i + 1) * 1100), from, end)).sum();
        assert!((total - 10_000.0 / 1100.0).abs() < 1e-9, "{total}");
    }
}
