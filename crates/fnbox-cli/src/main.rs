//! `fnbox`: the command line. Parses arguments, loads packages, and hands everything else to
//! the engine. Subcommands return [`MainError`]; [`main`] alone prints it and maps it to the
//! documented exit code ([`ExitCode`]).

mod config_flags;
mod contain;
mod echo;
mod error;
mod exttest;
mod http_limits;
mod invoke;
mod otel;
mod platform_lines;
mod result;
mod run;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode as ProcessExit;

use clap::{Parser, Subcommand, ValueEnum};
pub use error::{ExitCode, InvocationFailure, MainError};

#[derive(Parser, Debug)]
#[command(
    name = "fnbox",
    version,
    about = "A local FunctionGraph / Lambda execution environment: runtime, extension and telemetry APIs, real limits."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// fnbox's own log level (error, warn, info, debug, trace), or a tracing filter.
    #[arg(long, global = true, env = "FNBOX_LOG", default_value = "warn")]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Initialise one instance of a function package and invoke it.
    Run(RunArgs),
    /// Check a function package without running it.
    Validate {
        /// Package directory or .zip.
        package: PathBuf,
    },
    /// Serve functions through the FunctionGraph and Lambda invoke APIs, with instance pools.
    Serve(serve::ServeArgs),
    /// Invoke a function of a running `fnbox serve`.
    Invoke(invoke::InvokeArgs),
    /// Put an extension through the platform's bad days (timeouts, crashes, bursts, slow
    /// platform, shutdown) and score it.
    TestExtension(exttest::TestExtensionArgs),
}

/// How memory limits are enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MemoryModeArg {
    /// cgroup when possible, RSS sampling otherwise.
    Auto,
    /// cgroup (v2 or v1) or fail.
    Cgroup,
    /// RSS sampling of the instance's processes.
    Rss,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Package directory or .zip.
    pub package: PathBuf,
    /// Event JSON.
    #[arg(long, conflicts_with = "event_file")]
    pub event: Option<String>,
    /// File holding the event.
    #[arg(long)]
    pub event_file: Option<PathBuf>,
    /// Invocations to run in the one instance.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub times: u32,
    /// How memory limits are enforced.
    #[arg(long, value_enum, default_value_t = MemoryModeArg::Auto)]
    pub memory_mode: MemoryModeArg,
    /// Directory for fnbox's state, created when needed: zip packages are extracted under
    /// `packages/` (removed at exit, or by the next start after a kill).
    #[arg(long, env = "FNBOX_DATA_DIR", default_value = "./.fnbox")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub otlp: otel::OtlpArgs,
    #[command(flatten)]
    pub config: config_flags::ConfigArgs,
}

fn main() -> ProcessExit {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Validate { package } => validate(&package),
        Command::Run(args) => block_on(run::run(args)),
        Command::Serve(args) => block_on(serve::serve(args)),
        Command::Invoke(args) => block_on(invoke::invoke(args)),
        Command::TestExtension(args) => block_on(exttest::test_extension(args)),
    };
    // The one place where an error is printed and becomes an exit code.
    let code = match result {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            e.exit_code()
        }
    };
    ProcessExit::from(code as u8)
}

fn block_on(f: impl std::future::Future<Output = Result<(), MainError>>) -> Result<(), MainError> {
    tokio::runtime::Runtime::new()
        .map_err(MainError::Runtime)?
        .block_on(f)
}

fn validate(package: &std::path::Path) -> Result<(), MainError> {
    let p = fnbox_package::load(package)?;
    let c = &p.config;
    println!(
        "{}: ok: function '{}' ({}), runtime {}, handler {}, memory {} MB, timeout {} s, {} extension(s)",
        package.display(),
        c.func_name,
        c.urn(),
        c.runtime_name,
        c.handler,
        c.memory_size,
        c.timeout,
        p.extensions.len()
    );
    for note in &p.notes {
        println!("note: {note}");
    }
    Ok(())
}
