//! `fnbox-bench`: fnbox's benchmark. Every fnbox figure is printed next to a baseline measured
//! in the same run on the same machine (see docs/benchmarks.md for the method).
//!
//! ```text
//! cargo run --release -p fnbox-bench            # full run: builds fnbox + rust-hello (release)
//! cargo run -p fnbox-bench -- --smoke --debug   # tiny counts, debug binaries (what CI runs)
//! ```
//!
//! The same binary also plays the helper processes of the scenarios (sub-commands the bench
//! starts itself): `baseline-server` (the minimal hyper server), `listener` (a no-op or slow
//! telemetry extension), `emit-runtime` (a custom runtime printing N `[Function]` lines per
//! invocation) and `emit` (the same lines, printed without fnbox, for the line-read baseline).

// A measuring tool: it times other processes by the wall clock, partly from plain threads
// (clients, emitters), never inside the engine; tokio's clock and sleeps are not what it wants.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod helpers;
mod restore;
mod scenarios;
mod soak;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// fnbox's benchmark: invoke overhead, cold start, concurrency, telemetry cost and memory, each
/// next to a physical baseline measured in the same run (docs/benchmarks.md).
#[derive(Parser, Debug)]
#[command(
    name = "fnbox-bench",
    args_conflicts_with_subcommands = true,
    subcommand_help_heading = "Helper processes (the scenarios start these themselves)"
)]
struct Cli {
    #[command(flatten)]
    options: Options,
    #[command(subcommand)]
    helper: Option<Helper>,
}

/// The helper processes the scenarios start (not meant to be run by hand).
#[derive(Subcommand, Debug)]
enum Helper {
    /// A minimal hyper HTTP/1 server on 127.0.0.1:0 (the warm-invoke baseline); prints
    /// `listening <addr>` and serves until killed.
    BaselineServer,
    /// The least a runtime-API platform does (queue, long-poll hand-off, answer), on
    /// 127.0.0.1:0: the floor of the throughput rows; prints `listening <addr>`.
    RelayServer,
    /// A telemetry extension that counts events and writes the counts to --out.
    Listener(helpers::ListenerArgs),
    /// A FunctionGraph custom runtime printing N `[Function]` lines per `{"lines": N}` event.
    EmitRuntime,
    /// A Lambda runtime answering every event with itself (the freeze rows).
    LambdaEcho,
    /// Prints N `[Function]` lines to stdout (the line-read baseline).
    Emit {
        /// How many lines.
        #[arg(default_value_t = 0)]
        lines: u64,
    },
    /// Not a helper: the soak and chaos run (sustained load, kills, OOMs, then SIGTERM and
    /// SIGKILL with leftovers counted; docs/reliability.md).
    Soak(soak::SoakArgs),
}

/// Scenario groups `--only` accepts.
const GROUPS: [&str; 11] = [
    "warm",
    "throughput",
    "cold",
    "telemetry",
    "hot",
    "ui",
    "otlp",
    "freeze",
    "memory",
    "peers",
    "restore",
];

/// Command-line options of a benchmark run.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// Tiny counts: proves every scenario runs, measures nothing (CI runs this).
    #[arg(long)]
    pub smoke: bool,
    /// Build and use debug binaries instead of release.
    #[arg(long)]
    pub debug: bool,
    /// Do not run `cargo build`: use the fnbox and rust-hello binaries already in the bin dir.
    #[arg(long)]
    pub no_build: bool,
    /// Where the fnbox and rust-hello binaries are [default: the workspace's target/release,
    /// or target/debug with --debug, where the build puts them].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Where the JSON results go.
    #[arg(long, value_name = "PATH", default_value_os_t = helpers::target_dir().join("fnbox-bench.json"))]
    pub json: PathBuf,
    /// Run only these scenario groups (comma-separated or repeated), for profiling; all when
    /// absent.
    #[arg(long, value_name = "GROUP,..", value_delimiter = ',', value_parser = GROUPS)]
    pub only: Vec<String>,
    /// Run the peer row (the same lambda_runtime echo behind cargo-lambda and behind fnbox);
    /// same as `--only peers` added to the groups. A full run includes it too.
    #[arg(long)]
    pub peers: bool,
}

impl Options {
    /// Whether scenario group `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        if self.peers && name == "peers" {
            return true;
        }
        (self.only.is_empty() && !self.peers) || self.only.iter().any(|o| o == name)
    }

    /// `debug` or `release`.
    pub fn profile(&self) -> &'static str {
        if self.debug {
            "debug"
        } else {
            "release"
        }
    }

    /// The directory holding the fnbox and rust-hello binaries.
    pub fn bin_dir(&self) -> PathBuf {
        self.bin_dir
            .clone()
            .unwrap_or_else(|| helpers::target_dir().join(self.profile()))
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.helper {
        Some(Helper::BaselineServer) => helpers::baseline_server(),
        Some(Helper::RelayServer) => helpers::relay_server(),
        Some(Helper::Listener(args)) => helpers::listener(args),
        Some(Helper::EmitRuntime) => helpers::emit_runtime(),
        Some(Helper::Emit { lines }) => helpers::emit(lines),
        Some(Helper::LambdaEcho) => scenarios::freeze::lambda_echo(),
        Some(Helper::Soak(args)) => soak::soak(args),
        None => scenarios::run(cli.options),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("fnbox-bench").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_options_parse() {
        let cli = parse(&[
            "--smoke",
            "--debug",
            "--no-build",
            "--bin-dir",
            "/b",
            "--json",
            "/o.json",
            "--only",
            "warm,hot",
            "--only",
            "cold",
        ])
        .unwrap();
        let o = cli.options;
        assert!(o.smoke && o.debug && o.no_build);
        assert_eq!(o.bin_dir(), PathBuf::from("/b"));
        assert_eq!(o.json, PathBuf::from("/o.json"));
        assert_eq!(o.only, ["warm", "hot", "cold"]);
        assert!(o.runs("hot") && !o.runs("memory"));
        assert!(parse(&["--only", "nope"]).is_err(), "unknown group");
        let defaults = parse(&[]).unwrap().options;
        assert!(defaults.runs("memory"));
        assert!(defaults.bin_dir().ends_with("release"));
        assert!(defaults.runs("peers"), "a full run includes the peer row");
        let peers = parse(&["--peers"]).unwrap().options;
        assert!(
            peers.runs("peers") && !peers.runs("warm"),
            "--peers alone: the peer row"
        );
        let both = parse(&["--peers", "--only", "hot"]).unwrap().options;
        assert!(both.runs("peers") && both.runs("hot") && !both.runs("warm"));
    }

    #[test]
    fn helper_subcommands_parse() {
        match parse(&[
            "listener",
            "--out",
            "/c",
            "--delay-ms",
            "1000",
            "/x/extension1.sh",
        ])
        .unwrap()
        .helper
        {
            Some(Helper::Listener(a)) => {
                assert_eq!(a.out, PathBuf::from("/c"));
                assert_eq!(a.delay_ms, 1000);
                assert!(!a.no_subscribe);
                assert_eq!(a.launcher, PathBuf::from("/x/extension1.sh"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["emit", "42"]).unwrap().helper,
            Some(Helper::Emit { lines: 42 })
        ));
        assert!(matches!(
            parse(&["emit-runtime"]).unwrap().helper,
            Some(Helper::EmitRuntime)
        ));
        assert!(matches!(
            parse(&["baseline-server"]).unwrap().helper,
            Some(Helper::BaselineServer)
        ));
        assert!(
            parse(&["--smoke", "emit"]).is_err(),
            "options belong to a run"
        );
    }
}
