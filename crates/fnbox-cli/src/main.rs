//! `fnbox`: the command line. Parses arguments, loads packages, and hands everything else to
//! the engine; errors map to the documented exit codes in one place ([`ExitCode`]).

mod echo;
mod invoke;
mod run;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode as ProcessExit;

use clap::{Parser, Subcommand, ValueEnum};

/// Documented exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything worked.
    Ok = 0,
    /// A function invocation failed (handler error, timeout, crash, out of memory).
    FunctionFailed = 1,
    /// Bad usage or an invalid package (nothing was started).
    Usage = 2,
    /// The function could not be initialised (after 3 attempts).
    InitFailed = 3,
    /// fnbox itself failed (I/O, internal error).
    Internal = 4,
}

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
}

fn main() -> ProcessExit {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match cli.command {
        Command::Validate { package } => validate(&package),
        Command::Run(args) => block_on(run::run(args)),
        Command::Serve(args) => block_on(serve::serve(args)),
        Command::Invoke(args) => block_on(invoke::invoke(args)),
    };
    ProcessExit::from(code as u8)
}

fn block_on(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::Internal
        }
    }
}

fn validate(package: &std::path::Path) -> ExitCode {
    match fnbox_package::load(package) {
        Ok(p) => {
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
            ExitCode::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::Usage
        }
    }
}
