//! The command line of `explain`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use explain_client::{proto, render::ColorMap};

/// The explain service's command-line client.
#[derive(Debug, Parser)]
#[command(name = "explain", version, about)]
pub(crate) struct Cli {
    /// How to reach the server.
    #[command(flatten)]
    pub(crate) connection: Connection,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Message compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum WireCompression {
    Gzip,
    Zstd,
}

/// How to reach the server.
#[derive(Clone, Debug, Args)]
pub(crate) struct Connection {
    /// Server address (`https://` with TLS).
    #[arg(long, env = "EXPLAIN_ENDPOINT", default_value = "http://127.0.0.1:50051", global = true)]
    pub(crate) endpoint: String,
    /// Seconds a call may take.
    #[arg(long, env = "EXPLAIN_TIMEOUT_SECS", default_value_t = 300, global = true)]
    pub(crate) timeout_secs: u64,
    /// Bearer token sent with every call.
    #[arg(long, env = "EXPLAIN_TOKEN", global = true)]
    pub(crate) token: Option<String>,
    /// PEM file of the certificate authority to trust (TLS).
    #[arg(long, env = "EXPLAIN_CA_CERT", global = true)]
    pub(crate) ca_cert: Option<PathBuf>,
    /// PEM file of the client certificate (mutual TLS).
    #[arg(long, env = "EXPLAIN_CLIENT_CERT", global = true, requires = "client_key")]
    pub(crate) client_cert: Option<PathBuf>,
    /// PEM file of the client key (mutual TLS).
    #[arg(long, env = "EXPLAIN_CLIENT_KEY", global = true, requires = "client_cert")]
    pub(crate) client_key: Option<PathBuf>,
    /// Compress messages.
    #[arg(long, value_enum, global = true)]
    pub(crate) compression: Option<WireCompression>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Describe the served model: input, layers, classes, execution provider.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Classify images.
    Classify {
        /// Image files (PNG, JPEG, WebP, …).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Classes per image.
        #[arg(long, default_value_t = 5)]
        top_k: u32,
        /// Print one JSON object per image.
        #[arg(long)]
        json: bool,
    },
    /// Explain images and write pictures (and tensors) to a folder.
    Run(RunOptions),
    /// Measure how faithful a method's maps are over a folder of images with object masks.
    Eval(EvalOptions),
}

/// Attribution methods of `explain run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Method {
    /// Input gradient (absolute values drawn).
    Saliency,
    /// Input × gradient.
    InputXGradient,
    /// Grad-CAM at `--layer`, upsampled to the input.
    GradCam,
    /// Grad-CAM++ at `--layer`, upsampled to the input.
    GradCamPlusPlus,
    /// XGrad-CAM at `--layer`, upsampled to the input.
    XgradCam,
    /// HiResCAM at `--layer`, upsampled to the input.
    HiresCam,
    /// LayerCAM at `--layer`, upsampled to the input.
    LayerCam,
    /// EigenCAM at `--layer` (class-independent), upsampled to the input.
    EigenCam,
    /// EigenGradCAM at `--layer`, upsampled to the input.
    EigenGradCam,
    /// Score-CAM at `--layer` (a forward row per channel), upsampled to the input.
    ScoreCam,
    /// Ablation-CAM at `--layer` (a row per channel through the rest of the network), upsampled.
    AblationCam,
    /// Guided backpropagation.
    GuidedBackprop,
    /// Guided Grad-CAM at `--layer`.
    GuidedGradCam,
    /// Integrated Gradients (`--steps`, `--baseline`).
    IntegratedGradients,
    /// DeepLift, rescale rule (`--baseline`).
    DeepLift,
    /// SmoothGrad (`--samples`).
    SmoothGrad,
    /// Occlusion (`--window`, `--stride`).
    Occlusion,
    /// Feature Ablation over `--segments`.
    FeatureAblation,
    /// GradientSHAP (`--samples`, `--stdev`, `--seed`).
    GradientShap,
    /// RISE (`--masks`, `--seed`).
    Rise,
}

impl Method {
    /// Whether it is taken at a layer (`--layer`).
    pub(crate) fn takes_layer(self) -> bool {
        matches!(
            self,
            Self::GradCam
                | Self::GradCamPlusPlus
                | Self::XgradCam
                | Self::HiresCam
                | Self::LayerCam
                | Self::EigenCam
                | Self::EigenGradCam
                | Self::ScoreCam
                | Self::AblationCam
                | Self::GuidedGradCam
        )
    }
}

/// A baseline the CLI offers (the API also takes blurred inputs with any σ, noise and tensors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BaselineChoice {
    /// Zeros in the model's normalised input space (Captum's default).
    Zeros,
    /// A black image (pixel 0 before normalisation).
    Black,
    /// The input blurred with a Gaussian of σ 5 input pixels.
    Blurred,
}

impl BaselineChoice {
    /// The baseline as the API names it.
    pub(crate) fn kind(self) -> proto::baseline::Kind {
        match self {
            Self::Zeros => proto::baseline::Kind::Zeros(proto::BaselineZeros {}),
            Self::Black => proto::baseline::Kind::Black(proto::BaselineBlack {}),
            Self::Blurred => proto::baseline::Kind::Blurred(proto::BaselineBlurred { sigma: 0.0 }),
        }
    }
}

/// Settings of the attribution methods, shared by `explain run` and `explain eval`.
#[derive(Debug, Args)]
pub(crate) struct MethodOptions {
    /// Grad-CAM's layer (default: the last spatial layer).
    #[arg(long)]
    pub(crate) layer: Option<String>,
    /// Integrated Gradients steps.
    #[arg(long, default_value_t = 50)]
    pub(crate) steps: u32,
    /// Integrated Gradients' and DeepLift's baseline.
    #[arg(long, value_enum, default_value_t = BaselineChoice::Zeros)]
    pub(crate) baseline: BaselineChoice,
    /// SmoothGrad and GradientSHAP draws (default: the server's, 25 and 5).
    #[arg(long)]
    pub(crate) samples: Option<u32>,
    /// SmoothGrad's noise standard deviation, as a fraction of the input's range.
    #[arg(long, default_value_t = 0.15)]
    pub(crate) noise_level: f32,
    /// GradientSHAP's noise σ, in the model's input units (after normalisation).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) stdev: f32,
    /// RISE masks (default: the server's, 500).
    #[arg(long)]
    pub(crate) masks: Option<u32>,
    /// Seed of SmoothGrad's noise, GradientSHAP's draws and RISE's masks.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Occlusion's window side in input pixels (0: the server's default, a seventh of the input).
    #[arg(long, default_value_t = 0)]
    pub(crate) window: u32,
    /// Occlusion's stride (0: half the window).
    #[arg(long, default_value_t = 0)]
    pub(crate) stride: u32,
    /// Feature Ablation's segments: a label image (PNG, …) of the images' size, each colour one
    /// segment (e.g. superpixels), resized and cropped as the images are (nearest neighbour).
    #[arg(long)]
    pub(crate) segments: Option<PathBuf>,
}

/// Settings of `explain run`.
#[derive(Debug, Args)]
pub(crate) struct RunOptions {
    /// Image files (PNG, JPEG, WebP, …).
    #[arg(required = true)]
    pub(crate) images: Vec<PathBuf>,
    /// Attribution methods (repeat, or comma-separate).
    #[arg(long = "method", value_enum, value_delimiter = ',')]
    pub(crate) methods: Vec<Method>,
    /// Settings of the methods.
    #[command(flatten)]
    pub(crate) method_options: MethodOptions,
    /// Layers whose feature maps to draw as a grid (repeat, or comma-separate).
    #[arg(long = "feature-maps", value_delimiter = ',')]
    pub(crate) feature_maps: Vec<String>,
    /// Class to explain (default: the predicted class).
    #[arg(long)]
    pub(crate) target: Option<u32>,
    /// Differentiate the cross-entropy loss instead of the target logit.
    #[arg(long)]
    pub(crate) cross_entropy: bool,
    /// Folder for the output files (created if missing).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Feature-map grid as ROWSxCOLUMNS; its first ROWS × COLUMNS channels are drawn.
    #[arg(long, default_value = "4x8", value_parser = parse_grid)]
    pub(crate) grid: (u32, u32),
    /// Smallest side of a feature-map tile, in pixels (small maps are enlarged).
    #[arg(long, default_value_t = 64)]
    pub(crate) tile: u32,
    /// Colour map of heatmaps.
    #[arg(long, value_enum, default_value_t = ColorChoice::Viridis)]
    pub(crate) colormap: ColorChoice,
    /// Opacity of heatmaps over the image.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) alpha: f32,
    /// Also write every tensor as a NumPy `.npy` file.
    #[arg(long)]
    pub(crate) npy: bool,
    /// Print one JSON object per image instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also score each map's faithfulness on the server: deletion and insertion curves of this many
    /// steps (2 × (steps + 1) forward rows per map); printed with the image's line.
    #[arg(long, value_name = "STEPS", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) faithfulness: Option<u32>,
    /// Images explained at once over the stream.
    #[arg(long, default_value_t = 4)]
    pub(crate) in_flight: usize,
}

/// Settings of `explain eval`.
#[derive(Debug, Args)]
pub(crate) struct EvalOptions {
    /// Folder with `index.csv` (columns `image`, `mask`, `class_index`; paths relative to the
    /// folder), as `tools/shapes/shapes.py` writes it. Masks are images, non-zero on the object.
    pub(crate) dataset: PathBuf,
    /// The attribution method to evaluate.
    #[arg(long, value_enum)]
    pub(crate) method: Method,
    /// Settings of the method.
    #[command(flatten)]
    pub(crate) method_options: MethodOptions,
    /// Evaluate the first N images of the index only.
    #[arg(long)]
    pub(crate) limit: Option<usize>,
    /// Points of each deletion and insertion curve, after the unchanged image.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) curve_steps: u32,
    /// Skip the deletion and insertion curves (the most expensive part: 4 × (steps + 1) forward
    /// passes an image).
    #[arg(long)]
    pub(crate) no_curves: bool,
    /// Standard deviation, in pixels, of the Gaussian blur insertion starts from.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) blur_sigma: f32,
    /// Seed of the random pixel orders the curves are compared with.
    #[arg(long, default_value_t = 0)]
    pub(crate) random_seed: u64,
    /// A second server (e.g. one serving a randomised copy of the model): report the Spearman rank
    /// correlation between its maps and the first server's.
    #[arg(long)]
    pub(crate) compare_endpoint: Option<String>,
    /// Requests in flight on the stream.
    #[arg(long, default_value_t = 16)]
    pub(crate) in_flight: usize,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Colour maps on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Viridis,
    Inferno,
    Gray,
}

impl From<ColorChoice> for ColorMap {
    fn from(choice: ColorChoice) -> Self {
        match choice {
            ColorChoice::Viridis => ColorMap::Viridis,
            ColorChoice::Inferno => ColorMap::Inferno,
            ColorChoice::Gray => ColorMap::Gray,
        }
    }
}

fn parse_grid(text: &str) -> Result<(u32, u32), String> {
    let (rows, columns) = text.split_once(['x', 'X']).ok_or("expected ROWSxCOLUMNS, e.g. 4x8")?;
    let number = |part: &str| {
        part.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or(format!("`{part}` is not a positive number"))
    };
    Ok((number(rows)?, number(columns)?))
}
