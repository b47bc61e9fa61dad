//! The `podvisor` binary: parses the command line, sets up logging and runs
//! the chosen command. Everything else lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use podvisor::runtime::credentials::CredentialStore;
use podvisor::settings::{self, LogFormat, RunArgs};

#[derive(Parser)]
#[command(
    name = "podvisor",
    version,
    about = "Keeps Kubernetes Pod manifests running on one Docker engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node agent on a directory of Pod manifests.
    Run(RunArgs),
    /// Check Pod manifests as `run` reads them, without an engine (exit 0: valid, 1: problems).
    Validate(podvisor::cli::validate::ValidateArgs),
    /// Show what the next sync would do on this node, doing nothing (exit 0: nothing, 2: changes, 1: error).
    ///
    /// Takes the flags of `run`; it reads the manifest directory and the engine, and asks a
    /// running daemon's read-only port for back-off times.
    Plan(RunArgs),
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: a log file or journald gets
    // plain text (NO_COLOR is honoured too).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain => builder.init(),
    }
}

/// Warnings only, without times: for the commands that print a report.
fn init_quiet_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    podvisor::host::memory::limit_arenas();
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => {
            init_quiet_tracing();
            let report = podvisor::cli::validate::run(&args);
            print!("{}", report.stdout);
            eprint!("{}", report.stderr);
            ExitCode::from(report.exit)
        }
        Command::Plan(args) => {
            let env = std::env::vars().collect();
            let settings = match settings::resolve(&args, &env) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("podvisor plan: {e}");
                    return ExitCode::from(podvisor::cli::plan::EXIT_ERROR);
                }
            };
            init_quiet_tracing();
            ExitCode::from(podvisor::cli::plan::run(&settings))
        }
        Command::Run(args) => {
            let env = std::env::vars().collect();
            let settings = match settings::resolve(&args, &env) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("podvisor: {e}");
                    return ExitCode::from(settings::EXIT_CODE as u8);
                }
            };
            let credentials = match &settings.image_credential_file {
                Some(path) => match CredentialStore::load(path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("podvisor: invalid --image-credential-file: {e}");
                        return ExitCode::from(settings::EXIT_CODE as u8);
                    }
                },
                None => CredentialStore::default(),
            };
            init_tracing(settings.log_format);
            let system = actix::System::new();
            match system.block_on(podvisor::daemon::run(settings, credentials)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("podvisor: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
