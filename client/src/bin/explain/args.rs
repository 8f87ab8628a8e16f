//! The command line of `explain`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use explain_client::render::ColorMap;

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
#[derive(Debug, Args)]
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
    /// Guided backpropagation.
    GuidedBackprop,
    /// Integrated Gradients (`--steps`).
    IntegratedGradients,
    /// SmoothGrad (`--samples`).
    SmoothGrad,
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
    /// Grad-CAM's layer (default: the last feature layer).
    #[arg(long)]
    pub(crate) layer: Option<String>,
    /// Layers whose feature maps to draw as a grid (repeat, or comma-separate).
    #[arg(long = "feature-maps", value_delimiter = ',')]
    pub(crate) feature_maps: Vec<String>,
    /// Class to explain (default: the predicted class).
    #[arg(long)]
    pub(crate) target: Option<u32>,
    /// Differentiate the cross-entropy loss instead of the target logit.
    #[arg(long)]
    pub(crate) cross_entropy: bool,
    /// Integrated Gradients steps.
    #[arg(long, default_value_t = 50)]
    pub(crate) steps: u32,
    /// SmoothGrad samples.
    #[arg(long, default_value_t = 25)]
    pub(crate) samples: u32,
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
    /// Images explained at once over the stream.
    #[arg(long, default_value_t = 4)]
    pub(crate) in_flight: usize,
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
