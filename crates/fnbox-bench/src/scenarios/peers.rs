//! The peer row: the conformance crate's `lambda_runtime` echo behind `cargo lambda watch
//! --only-lambda-apis` and behind `fnbox serve` (`dialect: lambda`), called by one sequential
//! Python `http.client` client that alternates between the two (A/B/A/B rounds, one process,
//! one keep-alive connection to each), so both see the same machine at the same moments.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use super::{Bins, Counts, Proc, Row, Serve};
use crate::helpers::{target_dir, workspace_root};
use crate::stats::{range, Summary};
use crate::Options;

/// The cargo-lambda release the peer row installs (a binary wheel on PyPI).
pub const CARGO_LAMBDA_VERSION: &str = "1.9.2";

/// The scenario label, also what the smoke test looks for.
const SCENARIO: &str = "peer: lambda_runtime echo, sequential Python http.client \
                        (p50 / p90 / p99 / mean / share > 10 ms)";

/// The client: `rounds per_round warmup hostA portA pathA hostB portB pathB`; prints one JSON
/// object `{"a": [[ns, ...] per round], "b": [...]}`. Round r calls A `per_round` times, then
/// B; warm-up calls go to both first.
const CLIENT: &str = r#"
import http.client, json, sys, time
rounds, per_round, warmup = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
targets = [(sys.argv[4], int(sys.argv[5]), sys.argv[6]), (sys.argv[7], int(sys.argv[8]), sys.argv[9])]
conns = [http.client.HTTPConnection(h, p) for h, p, _ in targets]
body = b'{"bench":true}'
hdrs = {"Content-Type": "application/json"}
def call(i):
    c = conns[i]
    c.request("POST", targets[i][2], body, hdrs)
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"{targets[i]}: HTTP {r.status}: {data[:300]!r}")
for i in (0, 1):
    for _ in range(warmup):
        call(i)
out = {"a": [], "b": []}
clock = time.perf_counter_ns
for _ in range(rounds):
    for i, key in ((0, "a"), (1, "b")):
        samples = []
        for _ in range(per_round):
            t = clock()
            call(i)
            samples.append(clock() - t)
        out[key].append(samples)
print(json.dumps(out))
"#;

/// Where the peer's pieces are, or why the row cannot run.
struct Peer {
    cargo_lambda: PathBuf,
    echo: PathBuf,
}

/// The peer row; a row saying why when the peer cannot run here.
pub(super) async fn peer_row(
    o: &Options,
    bins: &Bins,
    tmp: &Path,
    c: &Counts,
) -> anyhow::Result<Row> {
    eprintln!("fnbox-bench: peer row (cargo-lambda vs fnbox serve, dialect lambda)");
    let peer = match prepare(o) {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("fnbox-bench: skipping the peer row: {reason:#}");
            return Ok(Row {
                scenario: SCENARIO.into(),
                fnbox: format!("skipped: {reason:#}"),
                baseline: "—".into(),
                ratio: "—".into(),
                target: "every figure below cargo-lambda's".into(),
                met: None,
                data: json!({"skipped": format!("{reason:#}")}),
            });
        }
    };
    measure(&peer, bins, tmp, c).await
}

/// Finds (or builds / installs, unless the run may not) the echo binary and cargo-lambda.
fn prepare(o: &Options) -> anyhow::Result<Peer> {
    if Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        bail!("python3 is not installed (the peer row's client is Python's http.client)");
    }
    let conf_dir = std::env::var_os("FNBOX_CONFORMANCE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("conformance/target/release"));
    let echo = conf_dir.join("echo");
    if !echo.is_file() {
        if o.no_build || o.smoke {
            bail!(
                "{} is missing (build it with `cd conformance && cargo build --release --bin \
                 echo`, or run without --no-build/--smoke)",
                echo.display()
            );
        }
        eprintln!("fnbox-bench: building the conformance echo (lambda_runtime, release)");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .current_dir(workspace_root().join("conformance"))
            .args(["build", "--release", "--locked", "--bin", "echo"])
            .status()
            .context("running cargo build in conformance/")?;
        if !st.success() || !echo.is_file() {
            bail!("building the conformance echo failed: {st}");
        }
    }
    let venv = target_dir().join("peers-venv");
    let cargo_lambda = venv.join("bin/cargo-lambda");
    if !cargo_lambda.is_file() {
        if o.smoke {
            bail!(
                "cargo-lambda is not installed at {} (a full run installs it from PyPI)",
                cargo_lambda.display()
            );
        }
        eprintln!(
            "fnbox-bench: installing cargo-lambda {CARGO_LAMBDA_VERSION} from PyPI into {}",
            venv.display()
        );
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("cargo-lambda=={CARGO_LAMBDA_VERSION}"))
                .status()
                .is_ok_and(|s| s.success());
        if !ok || !cargo_lambda.is_file() {
            bail!(
                "installing cargo-lambda {CARGO_LAMBDA_VERSION} with pip into {} failed \
                 (python3-venv missing, or PyPI unreachable)",
                venv.display()
            );
        }
    }
    Ok(Peer { cargo_lambda, echo })
}

/// A free loopback port (bound, then released: cargo-lambda takes a port number).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something accepts on `port`.
async fn wait_listening(port: u16, what: &str, proc: &mut Proc) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Ok(Some(st)) = proc.0.try_wait() {
            bail!("{what} exited before listening: {st}");
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on 127.0.0.1:{port} within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn measure(peer: &Peer, bins: &Bins, tmp: &Path, c: &Counts) -> anyhow::Result<Row> {
    // cargo-lambda reads a Cargo manifest from its working directory even with
    // --only-lambda-apis: an empty package is enough.
    let manifest = tmp.join("peer-manifest");
    std::fs::create_dir_all(manifest.join("src"))?;
    std::fs::write(
        manifest.join("Cargo.toml"),
        "[package]\nname = \"peer\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )?;
    std::fs::write(manifest.join("src/main.rs"), "fn main() {}\n")?;
    let port = free_port()?;
    let log = tmp.join("cargo-lambda.log");
    let mut watch = Proc(
        Command::new(&peer.cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string()])
            .current_dir(&manifest)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(tmp.join("cargo-lambda.stderr"))?)
            .spawn()
            .context("starting cargo lambda watch")?,
    );
    wait_listening(port, "cargo lambda watch", &mut watch).await?;
    let _function = Proc(
        Command::new(&peer.echo)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/_")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(tmp.join("peer-echo.out"))?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting the echo under cargo-lambda")?,
    );

    // fnbox serve, Lambda dialect, the very same binary.
    let pkg = tmp.join("bench-echo");
    std::fs::create_dir_all(&pkg)?;
    std::fs::write(
        pkg.join("function.yaml"),
        "func_name: bench-echo\ndialect: lambda\nruntime: provided.al2023\nmemory_size: 128\n\
         timeout: 10\n",
    )?;
    super::write_exec(
        &pkg.join("bootstrap"),
        &format!("#!/bin/bash\nexec {:?}\n", peer.echo),
    )?;
    let serve = Serve::spawn(bins, tmp, "peer-fnbox", &[(&pkg, "max_instances: 1")])?;

    let rounds = c.rounds.max(1);
    let per_round = (c.sequential / rounds).max(1);
    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .args([
            rounds.to_string(),
            per_round.to_string(),
            c.warmup.to_string(),
        ])
        .args([
            "127.0.0.1".to_string(),
            port.to_string(),
            "/2015-03-31/functions/_/invocations".to_string(),
        ])
        .args([
            serve.addr.ip().to_string(),
            serve.addr.port().to_string(),
            "/2015-03-31/functions/bench-echo/invocations".to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running the Python client")?;
    if !out.status.success() {
        bail!(
            "the Python client failed ({}); cargo-lambda log: {}",
            out.status,
            log.display()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("client output")?;
    let series = |key: &str| -> anyhow::Result<Vec<Vec<Duration>>> {
        v[key]
            .as_array()
            .context("client output")?
            .iter()
            .map(|round| {
                round.as_array().context("client output").map(|r| {
                    r.iter()
                        .map(|ns| Duration::from_nanos(ns.as_u64().unwrap_or(0)))
                        .collect()
                })
            })
            .collect()
    };
    let (peer_rounds, fnbox_rounds) = (series("a")?, series("b")?);
    let all = |r: &[Vec<Duration>]| r.concat();
    let p = Summary::of(&all(&peer_rounds));
    let f = Summary::of(&all(&fnbox_rounds));
    let round_ratios: Vec<f64> = peer_rounds
        .iter()
        .zip(&fnbox_rounds)
        .map(|(a, b)| Summary::of(b).p50 / Summary::of(a).p50)
        .collect();
    let (lo, hi) = range(&round_ratios);
    let fmt = |s: &Summary| {
        format!(
            "{:.3} / {:.3} / {:.3} / {:.3} ms / {:.1} %",
            s.p50,
            s.p90,
            s.p99,
            s.mean,
            s.over_10ms * 100.0
        )
    };
    let met = f.p50 < p.p50
        && f.p90 < p.p90
        && f.p99 < p.p99
        && f.mean < p.mean
        && f.over_10ms <= p.over_10ms;
    Ok(Row {
        scenario: SCENARIO.into(),
        fnbox: format!("{} (fnbox serve, dialect lambda)", fmt(&f)),
        baseline: format!(
            "{} (cargo-lambda {CARGO_LAMBDA_VERSION} watch --only-lambda-apis)",
            fmt(&p)
        ),
        ratio: format!(
            "{:.2} / {:.2} / {:.2} / {:.2} × (p50 per round {lo:.2}–{hi:.2}, {rounds} rounds)",
            f.p50 / p.p50,
            f.p90 / p.p90,
            f.p99 / p.p99,
            f.mean / p.mean
        ),
        target: "every figure below cargo-lambda's".into(),
        met: Some(met),
        data: json!({
            "fnbox": summary_json(&f), "peer": summary_json(&p),
            "peer_name": format!("cargo-lambda {CARGO_LAMBDA_VERSION}"),
            "p50_ratio_per_round": round_ratios, "rounds": rounds, "per_round": per_round,
            "calls_each": rounds * per_round,
        }),
    })
}

fn summary_json(s: &Summary) -> serde_json::Value {
    json!({"p50_ms": s.p50, "p90_ms": s.p90, "p99_ms": s.p99, "mean_ms": s.mean,
           "share_over_10ms": s.over_10ms})
}
