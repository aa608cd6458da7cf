//! The `greenlight` command: parses the command line, validates settings,
//! and hands over to the library. Configuration problems exit with code 2.

use clap::Parser;
use greenlight::app;
use greenlight::config::{Cli, Command, ConfigError};
use std::process::ExitCode;

fn config_failure(e: ConfigError) -> ExitCode {
    eprintln!("greenlight: configuration error: {e}");
    ExitCode::from(2)
}

/// Runs what `start` starts until SIGTERM or SIGINT, then stops it gracefully.
async fn until_signal(start: impl std::future::Future<Output = anyhow::Result<app::Running>>) -> anyhow::Result<()> {
    let running = start.await?;
    app::terminated().await;
    tracing::info!("stopping");
    running.stop().await;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,octocrab=off".into()))
        .with_writer(std::io::stderr)
        .init();
    if matches!(cli.command, Command::Serve(_) | Command::Worker(_)) {
        // Before any thread or child (the embedded Redis) starts, so all inherit it.
        greenlight::runner::limits::protect_service();
    }
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    let outcome = match cli.command {
        Command::Serve(args) => match args.validate() {
            Ok(config) => runtime.block_on(until_signal(app::start(config, app::Deps::default()))),
            Err(e) => return config_failure(e),
        },
        Command::Worker(args) => match args.validate() {
            Ok(config) => runtime.block_on(until_signal(app::start_worker(config, app::Deps::default()))),
            Err(e) => return config_failure(e),
        },
        Command::Secret(args) => match args.validate() {
            Ok((url, key)) => {
                runtime.block_on(greenlight::secret_command::run(args.action, &url, key, &mut std::io::stdin(), &mut std::io::stdout()))
            }
            Err(e) => return config_failure(e),
        },
        Command::Build(args) => match args.validate() {
            Ok(request) => runtime.block_on(greenlight::build_command::create(request, &mut std::io::stdout())),
            Err(e) => return config_failure(e),
        },
        Command::Exec(args) => match args.validate() {
            Ok(options) => {
                return match runtime.block_on(greenlight::exec::run(options, &mut std::io::stdout())) {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::FAILURE,
                    Err(e) => {
                        eprintln!("greenlight: {e:#}");
                        ExitCode::from(2)
                    }
                };
            }
            Err(e) => return config_failure(e),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("greenlight: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
