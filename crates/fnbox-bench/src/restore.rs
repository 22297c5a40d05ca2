//! "restore vs cold start" (issue 18): a built-in Python function (FunctionGraph dialect) whose
//! init takes ≥ 300 ms (imports plus an initializer), started cold (every instance runs init)
//! and restored (`snapshot: true`: instances fork from the initialized template), in the same
//! run. The figure is the time from asking for an instance to its first response.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fnbox_engine::{Engine, EngineConfig, Function, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;

use crate::stats::p50_p99;

/// The function: heavy-ish imports and a 350 ms initializer.
const CODE: &str = r#"
import decimal, email.parser, http.client, json, random, statistics, time, xml.dom.minidom

CACHE = None

def init(context):
    global CACHE
    time.sleep(0.35)  # stands for loading a model, warming a cache, opening pools
    CACHE = {i: random.random() for i in range(1000)}

def handler(event, context):
    return {"cached": len(CACHE)}
"#;

/// p50 of cold starts and of restores, milliseconds, and the samples taken of each.
pub struct RestoreFigures {
    /// p50 time to first response of a cold start.
    pub cold_p50_ms: f64,
    /// p50 time to first response of a restore.
    pub restore_p50_ms: f64,
    /// Samples of each.
    pub n: usize,
}

fn function(dir: &Path, snapshot: bool) -> anyhow::Result<Function> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("index.py"), CODE)?;
    std::fs::write(
        dir.join("function.yaml"),
        format!(
            "func_name: bench-restore\nruntime: Python3.9\nhandler: index.handler\n\
             initializer_handler: index.init\ninitializer_timeout: 10\nsnapshot: {snapshot}\n"
        ),
    )?;
    let package = Arc::new(fnbox_package::load(dir)?);
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    Ok(Function::new(
        Engine::new(config),
        package,
        Arc::new(fnbox_fg::FunctionGraph),
    )?)
}

/// Times `n` instance starts + first invocations (the instance is shut down after each).
async fn starts(f: &Function, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let inst = f.start_instance(None).await?;
        let out = inst
            .invoke(InvokeRequest::sync(Bytes::from_static(b"{}")))
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let d = t.elapsed();
        inst.shutdown().await;
        anyhow::ensure!(
            matches!(out.result, InvokeResult::Ok(_)),
            "invoke failed: {:?}",
            out.result
        );
        v.push(d);
    }
    Ok(v)
}

/// Runs both, `n` samples each (plus one unmeasured start each: page cache, template).
pub async fn restore_vs_cold(tmp: &Path, n: usize) -> anyhow::Result<RestoreFigures> {
    let cold = function(&tmp.join("restore-cold"), false)?;
    starts(&cold, 1).await?;
    let cold = starts(&cold, n).await?;
    let snap = function(&tmp.join("restore-snap"), true)?;
    // The first instance builds the template (its init is a cold start too); the rest restore.
    let template = starts(&snap, 1).await?;
    let kept = snap.start_instance(None).await?; // keeps one instance, as a pool does
    let restored = starts(&snap, n).await?;
    kept.shutdown().await;
    let (c50, _) = p50_p99(&cold);
    let (r50, _) = p50_p99(&restored);
    anyhow::ensure!(
        template[0] > Duration::from_millis(300),
        "the snapshot's init took {:?}: the function's init must take ≥ 300 ms",
        template[0]
    );
    Ok(RestoreFigures {
        cold_p50_ms: c50,
        restore_p50_ms: r50,
        n,
    })
}
