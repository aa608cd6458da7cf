//! The `greenlight` command: parses the command line, validates settings,
//! and hands over to the library. Configuration problems exit with code 2.

use clap::{CommandFactory, FromArgMatches};
use greenlight::app;
use greenlight::config::{Cli, Command, ConfigError, Generated, LogFormat, ServeArgs};
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: intake allocates and frees a few
/// buffers of tens of kilobytes per delivery (the body, the trigger, Redis
/// replies) from many threads, where glibc spent about a tenth of intake's
/// CPU (`malloc_consolidate`, `unlink_chunk`; `cargo bench --bench core_path`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Says why greenlight stops: one plain line, or with
/// `GREENLIGHT_LOG_FORMAT=json` one JSON log line like every other.
fn report(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("greenlight: {message}"),
        LogFormat::Json => tracing::error!("{message}"),
    }
}

fn config_failure(format: LogFormat, e: ConfigError) -> ExitCode {
    report(format, &format!("configuration error: {e}"));
    ExitCode::from(2)
}

/// Runs what `start` starts until SIGTERM or SIGINT, then stops it gracefully.
async fn until_signal(start: impl std::future::Future<Output = anyhow::Result<app::Running>>) -> anyhow::Result<()> {
    let stopped = app::terminated();
    let running = start.await?;
    stopped.await;
    tracing::info!("stopping");
    running.stop().await;
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,octocrab=off".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

/// Says once, when they are made, where generated secrets are kept.
fn tell_generated(generated: &Generated) {
    let file = generated.file.display();
    if generated.api_token {
        tracing::warn!(
            "generated GREENLIGHT_API_TOKEN, the API's admin token and the build pages' login: it is kept in {file} (field api_token; `greenlight config` shows where each setting comes from)"
        );
    }
    if generated.secret_key {
        tracing::warn!(
            "generated GREENLIGHT_SECRET_KEY, which repository secrets are sealed with: it is kept in {file}; back that file up"
        );
    }
}

/// `greenlight config`: one line per setting.
fn print_settings(args: &ServeArgs, matches: &clap::ArgMatches, format: LogFormat) -> ExitCode {
    let stored = match greenlight::config::stored::load(&args.common.data_dir) {
        Ok(stored) => stored,
        Err(e) => return config_failure(format, e),
    };
    let command = Cli::command();
    let sub = command.find_subcommand("config").expect("the config subcommand exists");
    let sub_matches = matches.subcommand_matches("config").expect("config was parsed");
    for line in greenlight::config::report::settings(sub, sub_matches, &stored) {
        println!("{line}");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log_format);
    if matches!(cli.command, Command::Serve(_) | Command::Worker(_)) {
        // Before any thread or child (the embedded Redis) starts, so all inherit it.
        greenlight::runner::limits::protect_service();
    }
    let runtime = tokio::runtime::Runtime::new().expect("starting the tokio runtime");
    let outcome = match cli.command {
        Command::Serve(args) => {
            // Validated first, so that settings with a mistake generate nothing.
            let validated = args.validate().and_then(|config| match args.prepare()? {
                Some(generated) => {
                    tell_generated(&generated);
                    args.validate()
                }
                None => Ok(config),
            });
            match validated {
                Ok(config) => runtime.block_on(until_signal(app::start(config, app::Deps::default()))),
                Err(e) => return config_failure(cli.log_format, e),
            }
        }
        Command::Worker(args) => match args.validate() {
            Ok(config) => runtime.block_on(until_signal(app::start_worker(config, app::Deps::default()))),
            Err(e) => return config_failure(cli.log_format, e),
        },
        Command::Config(args) => return print_settings(&args, &matches, cli.log_format),
        Command::Secret(args) => match args.validate() {
            Ok((url, key)) => {
                runtime.block_on(greenlight::secret_command::run(args.action, &url, key, &mut std::io::stdin(), &mut std::io::stdout()))
            }
            Err(e) => return config_failure(cli.log_format, e),
        },
        Command::Build(args) => match args.validate() {
            Ok(request) => runtime.block_on(greenlight::build_command::create(request, &mut std::io::stdout())),
            Err(e) => return config_failure(cli.log_format, e),
        },
        Command::Exec(args) => match args.validate() {
            Ok(options) => {
                return match runtime.block_on(greenlight::exec::run(options, &mut std::io::stdout())) {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::FAILURE,
                    Err(e) => {
                        report(cli.log_format, &format!("{e:#}"));
                        ExitCode::from(2)
                    }
                };
            }
            Err(e) => return config_failure(cli.log_format, e),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(cli.log_format, &format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
