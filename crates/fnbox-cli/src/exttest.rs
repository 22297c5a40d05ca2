//! `fnbox test-extension`: the command line of `fnbox-exttest`. Prints the scorecard, writes it
//! as JSON with `--json`, exits 1 when a scenario fails.

use std::path::PathBuf;
use std::time::Duration;

use fnbox_limits::MemoryController;

use crate::{MainError, MemoryModeArg};

/// `fnbox test-extension` arguments.
#[derive(clap::Args, Debug)]
pub struct TestExtensionArgs {
    /// A function package (its extensions are tested) or a directory of extensions
    /// (FunctionGraph: extension*.sh; Lambda: executables).
    pub target: PathBuf,
    /// Dialect of a directory of extensions (a package says its own).
    #[arg(long, value_parser = ["functiongraph", "lambda"])]
    pub dialect: Option<String>,
    /// Scenarios to run (default: all): cold-start, warm, burst, timeout, crash, oom,
    /// slow-platform, shutdown, bad-answers.
    #[arg(long = "scenario", num_args = 1.., value_parser = parse_scenario)]
    pub scenarios: Vec<fnbox_exttest::Scenario>,
    /// Write the scorecard as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Invocations of the warm scenario.
    #[arg(long, default_value_t = fnbox_exttest::WARM_INVOCATIONS, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub warm_invocations: u32,
    /// `[Function]` lines the burst scenario prints in one invocation.
    #[arg(long, default_value_t = fnbox_exttest::BURST_LINES, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub burst_lines: u32,
    /// slow-platform: how late each invoke notice (push / INVOKE) is sent, e.g. 1s, 250ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub push_delay: Duration,
    /// slow-platform: how long each batch's body is held after its request head.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub batch_delay: Duration,
    /// How memory limits are enforced.
    #[arg(long, value_enum, default_value_t = MemoryModeArg::Auto)]
    pub memory_mode: MemoryModeArg,
}

fn parse_scenario(s: &str) -> Result<fnbox_exttest::Scenario, String> {
    fnbox_exttest::Scenario::parse(s)
}

/// Runs the scenarios, prints the scorecard.
pub async fn test_extension(args: TestExtensionArgs) -> Result<(), MainError> {
    let memory = match args.memory_mode {
        MemoryModeArg::Auto => MemoryController::detect(),
        MemoryModeArg::Rss => MemoryController::rss_sampling("--memory-mode rss"),
        MemoryModeArg::Cgroup => MemoryController::cgroup().map_err(MainError::Cgroup)?,
    };
    let mut opts = fnbox_exttest::Options::new(args.target, memory);
    opts.dialect = args.dialect.as_deref().map(|d| match d {
        "lambda" => fnbox_package::Dialect::Lambda,
        _ => fnbox_package::Dialect::FunctionGraph,
    });
    opts.scenarios = args.scenarios;
    opts.warm_invocations = args.warm_invocations;
    opts.burst_lines = args.burst_lines;
    opts.push_delay = args.push_delay;
    opts.batch_delay = args.batch_delay;
    let card = fnbox_exttest::run(opts).await?;
    print!("{}", card.render());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&card).expect("the scorecard serializes");
        std::fs::write(path, text + "\n").map_err(|source| {
            MainError::ExtTest(fnbox_exttest::ExtTestError::Io {
                path: path.clone(),
                source,
            })
        })?;
    }
    if card.failed() {
        let failed: Vec<&str> = card
            .scenarios
            .iter()
            .filter(|s| s.verdict == fnbox_exttest::Verdict::Fail)
            .map(|s| s.scenario.as_str())
            .collect();
        return Err(MainError::ExtensionFailed(failed.join(", ")));
    }
    Ok(())
}
