//! `explaind`: the explain service's executable.

use anyhow::Context;
use clap::Parser;
use explain_service::{
    config::{Cli, Command, ServeConfig},
    server, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.log).context("invalid --log-filter")?;
    match cli.command {
        Command::Serve(config) => serve(&config).await,
    }
}

/// Serves until SIGTERM or SIGINT, then drains; fails if the model cannot be loaded.
async fn serve(config: &ServeConfig) -> anyhow::Result<()> {
    let mut running = server::start(config.serve_options()).await?;
    let trigger = running.take_shutdown_trigger().context("shutdown trigger already taken")?;
    tokio::spawn(async move {
        match shutdown_signal().await {
            Ok(()) => {
                let _ = trigger.send(());
            }
            Err(error) => tracing::error!(%error, "cannot listen for shutdown signals"),
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
