//! `explaind`: the explain service's executable.

use anyhow::Context;
use clap::Parser;
use explain_service::{
    augment::Backward,
    config::{AugmentConfig, Cli, Command, GraphChoice, RandomiseConfig, ServeConfig},
    engine::OrtOptions,
    explain::{METHODS, build_gradient_graph, measure_shapes},
    model::{Model, ModelSource, layers::Naming},
    server, telemetry,
};
use prost::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init(&cli.log)?;
    let outcome = match cli.command {
        Command::Serve(config) => serve(&config).await,
        Command::Augment(config) => augment(&config),
        Command::Randomise(config) => randomise(&config),
    };
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.context("flushing telemetry")?;
    outcome
}

/// Writes the chosen graph of `config.model` to `config.output`, or with `--check` prints what the
/// model supports.
fn augment(config: &AugmentConfig) -> anyhow::Result<()> {
    let model = Model::load(&ModelSource::File(config.model.clone()), config.input_size)
        .with_context(|| format!("cannot read {}", config.model.display()))?;
    let Some(output) = config.output.as_ref().filter(|_| !config.check) else {
        return match check(&model, &config.ort_options())? {
            true => Ok(()),
            false => std::process::exit(1),
        };
    };
    let graph = match config.graph {
        GraphChoice::Gradient => {
            build_gradient_graph(&model, &model.input.name, Backward::Gradient, &config.ort_options())?
        }
        GraphChoice::Head => {
            let head = model.head_layer().context("only ResNets have a head-gradient graph")?;
            build_gradient_graph(&model, &head.tensor, Backward::Gradient, &config.ort_options())?
        }
        GraphChoice::DeepLift => {
            build_gradient_graph(&model, &model.input.name, Backward::DeepLift, &config.ort_options())?
        }
        GraphChoice::Forward => model.forward_graph().encode_to_vec(),
    };
    std::fs::write(output, &graph).with_context(|| format!("cannot write {}", output.display()))?;
    tracing::info!(
        output = %output.display(), bytes = graph.len(), layers = model.layers.layers.len(),
        graph = ?config.graph, "graph written"
    );
    Ok(())
}

/// Prints the model's input and layers and whether its gradient and DeepLift graphs can be built
/// (why not, if not); returns whether it has gradients.
fn check(model: &Model, ort: &OrtOptions) -> anyhow::Result<bool> {
    println!("model: {} (sha256 {})", model.name, model.sha256);
    println!("input: `{}`, 3 × {} × {}", model.input.name, model.input.height, model.input.width);
    let names: Vec<&str> = model.layers.layers.iter().map(|layer| layer.name.as_str()).collect();
    let naming = match model.layers.naming {
        Naming::ResNet => "named as torchvision's ResNet",
        Naming::TensorNames => "named by their ONNX tensors",
        Naming::ModulePaths => "named by their PyTorch modules",
    };
    println!("layers ({}, {naming}): {}", names.len(), names.join(", "));
    let shapes = measure_shapes(model, ort)?;
    let mut gradients = true;
    for (what, backward) in [("gradients", Backward::Gradient), ("DeepLift", Backward::DeepLift)] {
        match model.gradient_graph(&shapes, &model.input.name, backward) {
            Ok(_) => println!("{what}: yes"),
            Err(error) => {
                gradients &= backward != Backward::Gradient;
                println!("{what}: no: {error}");
            }
        }
    }
    let served = METHODS.iter().filter(|(_, needs_gradients)| gradients || !needs_gradients);
    println!("methods: {}", served.map(|(name, _)| *name).collect::<Vec<_>>().join(", "));
    Ok(gradients)
}

/// Writes `config.model` with its weights redrawn from `config.from` up to `config.output`.
fn randomise(config: &RandomiseConfig) -> anyhow::Result<()> {
    let source = config.model.clone().map_or(ModelSource::Embedded, ModelSource::File);
    let model = Model::load(&source, config.input_size).with_context(|| format!("cannot read {source:?}"))?;
    let copy = model.randomised(&config.from, config.seed)?.encode_to_vec();
    std::fs::write(&config.output, &copy).with_context(|| format!("cannot write {}", config.output.display()))?;
    tracing::info!(output = %config.output.display(), from = %config.from, seed = config.seed, "randomised copy written");
    Ok(())
}

/// Serves until SIGTERM or SIGINT, then drains (a second signal exits at once); fails if the
/// model cannot be loaded.
async fn serve(config: &ServeConfig) -> anyhow::Result<()> {
    let mut running = server::start(config.serve_options()).await?;
    let trigger = running.take_shutdown_trigger().context("shutdown trigger already taken")?;
    tokio::spawn(async move {
        if let Err(error) = shutdown_signal().await {
            tracing::error!(%error, "cannot listen for shutdown signals");
            return;
        }
        let _ = trigger.send(());
        // A second signal means the operator will not wait for the drain.
        if shutdown_signal().await.is_ok() {
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(130);
        }
    });
    running.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
