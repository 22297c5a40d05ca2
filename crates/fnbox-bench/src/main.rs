//! `fnbox-bench`: fnbox's benchmark. Every fnbox figure is printed next to a baseline measured
//! in the same run on the same machine (see docs/benchmarks.md for the method).
//!
//! ```text
//! cargo run --release -p fnbox-bench            # full run: builds fnbox + rust-hello (release)
//! cargo run -p fnbox-bench -- --smoke --debug   # tiny counts, debug binaries (what CI runs)
//! ```
//!
//! Options: `--smoke` (tiny counts), `--debug` (use debug binaries), `--no-build` (do not run
//! cargo), `--json PATH` (default `target/fnbox-bench.json`), `--only GROUP,..` (run only
//! `warm`, `throughput`, `cold`, `telemetry`, `hot` or `memory`, for profiling).
//!
//! The same binary also plays the helper processes of the scenarios (hidden sub-commands):
//! `baseline-server` (the minimal hyper server), `listener` (a no-op or slow telemetry
//! extension), `emit-runtime` (a custom runtime printing N `[Function]` lines per invocation)
//! and `emit` (the same lines, printed without fnbox, for the line-read baseline).

mod helpers;
mod scenarios;
mod stats;

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("baseline-server") => helpers::baseline_server(),
        Some("listener") => helpers::listener(&args[1..]),
        Some("emit-runtime") => helpers::emit_runtime(),
        Some("emit") => helpers::emit(&args[1..]),
        _ => {
            let opts = Options::parse(&args)?;
            scenarios::run(opts)
        }
    }
}

/// Command-line options of a benchmark run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tiny counts: proves every scenario runs, measures nothing.
    pub smoke: bool,
    /// Use (and build) debug binaries instead of release.
    pub debug: bool,
    /// Do not run cargo.
    pub no_build: bool,
    /// Where the JSON goes.
    pub json: PathBuf,
    /// Run only these scenario groups (`warm`, `throughput`, `cold`, `telemetry`, `hot`,
    /// `memory`); all when empty. For profiling one scenario.
    pub only: Vec<String>,
}

impl Options {
    /// Whether scenario group `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut opts = Options {
            smoke: false,
            debug: false,
            no_build: false,
            json: helpers::target_dir().join("fnbox-bench.json"),
            only: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--smoke" => opts.smoke = true,
                "--debug" => opts.debug = true,
                "--no-build" => opts.no_build = true,
                "--json" => {
                    opts.json = it
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("--json needs a path"))?
                        .into()
                }
                "--only" => opts.only.extend(
                    it.next()
                        .ok_or_else(|| anyhow::anyhow!("--only needs a scenario group"))?
                        .split(',')
                        .map(str::to_owned),
                ),
                "-h" | "--help" => {
                    println!(
                        "usage: fnbox-bench [--smoke] [--debug] [--no-build] [--json PATH] [--only GROUP,..]\n\
                         see docs/benchmarks.md"
                    );
                    std::process::exit(0);
                }
                other => anyhow::bail!("unknown argument {other:?} (try --help)"),
            }
        }
        Ok(opts)
    }
}
