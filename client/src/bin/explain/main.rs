//! `explain`: the command-line client. `explain info` describes the served model, `explain classify
//! IMG…` prints predictions, `explain run IMG… --method grad-cam --feature-maps layer2.1 --out DIR`
//! writes pictures: each attribution as a heatmap over the image the model saw, each layer as a
//! grid of feature maps (4 × 8 by default), and with `--npy` the raw tensors. `explain eval DIR
//! --method grad-cam` measures how faithful a method's maps are over images with object masks.

mod args;
mod eval;
mod run;
mod served;

use std::time::Duration;

use clap::Parser;
use explain_client::{Client, Compression, proto};

use self::args::{Cli, Command, Connection, WireCompression};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = execute(cli).await {
        eprintln!("explain: {error}");
        std::process::exit(1);
    }
}

async fn execute(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let client = connect(&cli.connection).await?;
    match cli.command {
        Command::Info { json } => info(&client, json).await,
        Command::Classify { images, top_k, json } => classify(&client, &images, top_k, json).await,
        Command::Run(options) => run::run(&client, &options).await,
        Command::Eval(options) => {
            let other = match &options.compare_endpoint {
                Some(endpoint) => {
                    Some(connect(&Connection { endpoint: endpoint.clone(), ..cli.connection.clone() }).await?)
                }
                None => None,
            };
            eval::eval(&client, other.as_ref(), &options).await
        }
    }
}

async fn connect(connection: &Connection) -> Result<Client, Box<dyn std::error::Error>> {
    let mut builder =
        Client::builder(connection.endpoint.clone()).timeout(Duration::from_secs(connection.timeout_secs));
    if let Some(path) = &connection.ca_cert {
        builder = builder.ca_certificate(std::fs::read(path)?);
    }
    if let (Some(certificate), Some(key)) = (&connection.client_cert, &connection.client_key) {
        builder = builder.client_identity(std::fs::read(certificate)?, std::fs::read(key)?);
    }
    if let Some(token) = &connection.token {
        builder = builder.bearer_token(token.clone());
    }
    builder = match connection.compression {
        Some(WireCompression::Gzip) => builder.compression(Compression::Gzip),
        Some(WireCompression::Zstd) => builder.compression(Compression::Zstd),
        None => builder,
    };
    Ok(builder.build().await?)
}

async fn info(client: &Client, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    let info = client.model_info().await?;
    if json {
        let layers: Vec<_> = info
            .layers
            .iter()
            .map(|l| serde_json::json!({"name": l.name, "shape": l.shape, "tensor": l.tensor}))
            .collect();
        let input = info.input.clone().unwrap_or_default();
        println!(
            "{}",
            serde_json::json!({
                "name": info.name, "sha256": info.sha256, "input_shape": input.shape, "mean": input.mean,
                "std": input.std, "resize_size": input.resize_size, "layers": layers, "num_classes": info.num_classes,
                "labels": info.labels, "execution_provider": info.execution_provider,
                "gradients_available": info.gradients_available,
            })
        );
        return Ok(());
    }
    let input = info.input.unwrap_or_default();
    println!("model        {} (sha256 {})", info.name, info.sha256);
    println!(
        "input        {:?}, resize {}, mean {:?}, std {:?}",
        input.shape, input.resize_size, input.mean, input.std
    );
    println!("classes      {}{}", info.num_classes, if info.labels.is_empty() { " (no labels)" } else { "" });
    println!("provider     {}", info.execution_provider);
    match info.gradients_available {
        true => println!("gradients    available"),
        false => println!("gradients    unavailable: {}", info.gradients_unavailable_reason),
    }
    println!("layers");
    for layer in info.layers {
        println!("  {:<12} {:?}", layer.name, layer.shape);
    }
    Ok(())
}

async fn classify(
    client: &Client,
    images: &[std::path::PathBuf],
    top_k: u32,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    for path in images {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let image = explain_client::ImageInput::from(bytes).into_proto();
        let response = client.classify(proto::ClassifyRequest { image: Some(image), top_k }).await?;
        let classes = response.prediction.map(|p| p.top_classes).unwrap_or_default();
        if json {
            let classes: Vec<_> = classes
                .iter()
                .map(|c| serde_json::json!({"index": c.index, "label": c.label, "probability": c.probability, "logit": c.logit}))
                .collect();
            println!("{}", serde_json::json!({"image": path, "top_classes": classes}));
        } else {
            let best: Vec<String> = classes
                .iter()
                .map(|c| {
                    format!(
                        "{} {:.3}",
                        if c.label.is_empty() { c.index.to_string() } else { c.label.clone() },
                        c.probability
                    )
                })
                .collect();
            println!("{}: {}", path.display(), best.join(", "));
        }
    }
    Ok(())
}
