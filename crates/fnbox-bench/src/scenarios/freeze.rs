//! Freeze's cost on the warm path (issue 19 item 4): a Lambda echo function with `freeze:` on
//! and off, served by one `fnbox serve`, timed in interleaved blocks (A, B, A, B, …) so that
//! drift of the machine hits both alike. The row gives the median of the per-round p50 ratios
//! and their spread (lowest – highest).

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use super::{ms, sequential, Bins, Counts, HttpClient, Row, Serve};
use crate::stats::p50_p99;

/// Rounds of A/B blocks.
const ROUNDS: usize = 6;

/// The two packages: the same Lambda echo runtime (`fnbox-bench lambda-echo`), freeze on/off.
fn packages(bins: &Bins, tmp: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for (name, freeze) in [
        ("bench-lambda-frozen", "true"),
        ("bench-lambda-thawed", "false"),
    ] {
        let dir = tmp.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("function.yaml"),
            format!("func_name: {name}\ndialect: lambda\nruntime: provided.al2\nmemory_size: 128\ntimeout: 10\nfreeze: {freeze}\n"),
        )?;
        let boot = dir.join("bootstrap");
        std::fs::write(
            &boot,
            format!("#!/bin/bash\nexec {:?} lambda-echo\n", bins.me),
        )?;
        std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755))?;
        out.push(dir);
    }
    let thawed = out.pop().context("two packages")?;
    let frozen = out.pop().context("two packages")?;
    Ok((frozen, thawed))
}

/// The row: warm p50 with freeze on ÷ off, interleaved.
pub(super) async fn rows(
    bins: &Bins,
    tmp: &Path,
    c: &Counts,
    client: &HttpClient,
) -> anyhow::Result<Vec<Row>> {
    eprintln!("fnbox-bench: Lambda warm path, freeze on vs off (interleaved)");
    let (frozen, thawed) = packages(bins, tmp)?;
    let serve = Serve::spawn(
        bins,
        tmp,
        "freeze",
        &[(&frozen, "max_instances: 1"), (&thawed, "max_instances: 1")],
    )?;
    // Lambda's own Invoke API, as Lambda tools call it.
    let uri = |name: &str| -> anyhow::Result<hyper::Uri> {
        Ok(format!(
            "http://{}/2015-03-31/functions/{name}/invocations",
            serve.addr
        )
        .parse()?)
    };
    let on = uri("bench-lambda-frozen")?;
    let off = uri("bench-lambda-thawed")?;
    let per_block = (c.sequential / ROUNDS).max(5);
    let (mut all_on, mut all_off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Warm-up only before the first block of each; the instances stay warm.
        let warm = if round == 0 { c.warmup } else { 0 };
        let a = sequential(client, &on, warm, per_block).await?;
        let b = sequential(client, &off, warm, per_block).await?;
        ratios.push(p50_p99(&a).0 / p50_p99(&b).0);
        all_on.extend(a);
        all_off.extend(b);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
    let (on50, on99) = p50_p99(&all_on);
    let (off50, off99) = p50_p99(&all_off);
    // The mode `fnbox serve` printed: detected the same way on the same machine.
    let controller =
        fnbox_limits::FreezeController::detect(&fnbox_limits::MemoryController::detect());
    let (mode, mode_line) = (controller.mode(), controller.describe());
    Ok(vec![Row {
        scenario: format!(
            "Lambda echo, freeze on: warm p50 ÷ freeze off (interleaved A/B; {mode})"
        ),
        fnbox: format!("{} (p99 {})", ms(on50), ms(on99)),
        baseline: format!("{} (p99 {}) with freeze: false", ms(off50), ms(off99)),
        ratio: format!("{median:.3} (rounds {lo:.3}–{hi:.3})"),
        target: "— (cost of freeze)".into(),
        met: None,
        data: json!({"p50_ms": on50, "p99_ms": on99, "off_p50_ms": off50, "off_p99_ms": off99,
                     "ratio_median": median, "ratio_min": lo, "ratio_max": hi,
                     "rounds": ROUNDS, "per_block": per_block, "mode": mode_line}),
    }])
}

/// `lambda-echo`: a Lambda runtime-API client answering every event with itself (keep-alive
/// connection, like the real runtime clients).
pub fn lambda_echo() -> anyhow::Result<()> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .map_err(|_| anyhow::anyhow!("AWS_LAMBDA_RUNTIME_API is not set: run me under fnbox"))?;
    let base = format!("http://{api}/2018-06-01/runtime/invocation");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        loop {
            let next = hyper::Request::get(format!("{base}/next")).body(Full::default())?;
            let resp = client.request(next).await?;
            let id = resp
                .headers()
                .get("lambda-runtime-aws-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let event = resp.into_body().collect().await?.to_bytes();
            if id.is_empty() {
                continue;
            }
            let post =
                hyper::Request::post(format!("{base}/{id}/response")).body(Full::new(event))?;
            client.request(post).await?.into_body().collect().await?;
        }
    })
}
