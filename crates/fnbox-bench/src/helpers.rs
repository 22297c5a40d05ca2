//! The helper processes the scenarios start: the baseline server, the telemetry listener
//! extension, the line-emitting runtime and the plain line emitter.

use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fnbox_extension::{Buffering, Extension, Stream};
use fnbox_wire::fg::{headers, paths};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The workspace's target directory (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("target"),
    }
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}

/// The payload both the baseline server and rust-hello answer with for an `{}` event.
const HELLO: &[u8] = br#"{"hello":{}}"#;

/// `baseline-server`: a minimal hyper HTTP/1 server on 127.0.0.1:0 answering every request
/// with a small JSON body. Prints `listening <addr>` and serves until killed. Same runtime
/// flavour as `fnbox serve` (multi-threaded tokio).
pub fn baseline_server() -> anyhow::Result<()> {
    serve_loopback(|| {
        service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
            let _ = req.into_body().collect().await;
            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(HELLO))))
        })
    })
}

/// Binds 127.0.0.1:0, prints `listening <addr>` (what the scenarios wait for) and serves every
/// connection over HTTP/1 with the service `make` builds for it, on a multi-threaded tokio
/// runtime (the flavour of `fnbox serve`, so both sides of a comparison schedule alike).
fn serve_loopback<S, E>(make: impl Fn() -> S) -> anyhow::Result<()>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<Full<Bytes>>,
            Error = E,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let svc = make();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

/// `relay-server`: the least any platform with a runtime API does per invocation, and nothing
/// more. A caller's request is queued, handed to the next runtime long-poll
/// (`GET /v1/runtime/invocation/request`, with a request id) and answered with the body the
/// runtime posts back (`POST …/response/{id}`). No limits, telemetry, pools, deadlines or logs.
/// Run with the unchanged rust-hello runtimes, it is the floor of fnbox's throughput and warm
/// rows on this machine: three HTTP exchanges and two processes per invocation. Prints
/// `listening <addr>` and serves until killed; same runtime flavour as `fnbox serve`.
pub fn relay_server() -> anyhow::Result<()> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use tokio::sync::{mpsc, oneshot};

    type Pending = Mutex<HashMap<u64, oneshot::Sender<Bytes>>>;
    struct Relay {
        queue: mpsc::Sender<(Bytes, oneshot::Sender<Bytes>)>,
        next: tokio::sync::Mutex<mpsc::Receiver<(Bytes, oneshot::Sender<Bytes>)>>,
        pending: Pending,
        ids: AtomicU64,
    }
    async fn handle(
        relay: Arc<Relay>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> anyhow::Result<hyper::Response<Full<Bytes>>> {
        let path = req.uri().path().to_string();
        let body = req.into_body().collect().await?.to_bytes();
        if path == paths::NEXT {
            let (event, answer) = relay
                .next
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("relay closed"))?;
            let id = relay.ids.fetch_add(1, Ordering::Relaxed);
            relay
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, answer);
            let mut resp = hyper::Response::new(Full::new(event));
            resp.headers_mut()
                .insert(headers::REQUEST_ID, hyper::header::HeaderValue::from(id));
            return Ok(resp);
        }
        if let Some(id) = path.strip_prefix(paths::RESPONSE_PREFIX) {
            let answer = id.parse().ok().and_then(|id: u64| {
                relay
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id)
            });
            if let Some(answer) = answer {
                let _ = answer.send(body);
            }
            return Ok(hyper::Response::new(Full::default()));
        }
        // Anything else is a caller's invocation.
        let (tx, rx) = oneshot::channel();
        relay
            .queue
            .send((body, tx))
            .await
            .map_err(|_| anyhow::anyhow!("relay closed"))?;
        Ok(hyper::Response::new(Full::new(rx.await?)))
    }

    let (queue, next) = mpsc::channel(1024);
    let relay = Arc::new(Relay {
        queue,
        next: tokio::sync::Mutex::new(next),
        pending: Mutex::new(HashMap::new()),
        ids: AtomicU64::new(1),
    });
    serve_loopback(move || {
        let relay = relay.clone();
        service_fn(move |req| handle(relay.clone(), req))
    })
}

/// Arguments of `listener`.
#[derive(clap::Args, Debug)]
pub struct ListenerArgs {
    /// File the counts are written to.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Sleep this long per batch (the slow listener).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub delay_ms: u64,
    /// Only register (and receive the invoke pushes): an extension without telemetry.
    #[arg(long)]
    pub no_subscribe: bool,
    /// The launcher script's path (its `$0`); its file name is the extension's name.
    pub launcher: PathBuf,
}

/// `listener --out FILE [--delay-ms N] [--no-subscribe] <launcher>`: a telemetry extension
/// subscribed to the platform and function streams that counts events and sleeps N ms per
/// batch; after every batch it rewrites FILE with `function_events total_events
/// dropped_records unix_nanos`, the time being that of the last batch that carried function
/// events. With `--no-subscribe` it only registers (and receives the invoke pushes): the cost
/// of an extension without telemetry.
pub fn listener(args: ListenerArgs) -> anyhow::Result<()> {
    let ListenerArgs {
        out,
        delay_ms,
        no_subscribe,
        launcher,
    } = args;
    let subscribe = !no_subscribe;
    let name = fnbox_extension::launcher_name(&launcher)
        .ok_or_else(|| anyhow::anyhow!("listener: {} has no file name", launcher.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let counts = Arc::new([
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ]);
    rt.block_on(async move {
        let buffering = Buffering {
            max_items: Some(10_000),
            max_bytes: Some(1_048_576),
            timeout_ms: Some(25),
        };
        let ext = Extension::builder(name).invoke_address("127.0.0.1:8081");
        if !subscribe {
            return ext.run().await;
        }
        ext.telemetry_raw(
            "127.0.0.1:8082",
            &[Stream::Platform, Stream::Function],
            Some(buffering),
            move |events| {
                let counts = counts.clone();
                let out = out.clone();
                async move {
                    let mut functions = 0;
                    let mut dropped = 0;
                    for e in &events {
                        let text = e.get();
                        if text.contains("\"platform.logsDropped\"") {
                            dropped += serde_json::from_str::<serde_json::Value>(text)
                                .ok()
                                .and_then(|v| {
                                    v.pointer("/record/droppedRecords")
                                        .or_else(|| v.pointer("/droppedRecords"))
                                        .and_then(|d| d.as_u64())
                                })
                                .unwrap_or(0);
                        } else if text.contains("\"function\"") {
                            functions += 1;
                        }
                    }
                    if functions == 0 {
                        // Only batches that carry lines move the "last delivery" time.
                        let f = counts[0].load(Ordering::Relaxed);
                        let t = counts[1].fetch_add(events.len() as u64, Ordering::Relaxed)
                            + events.len() as u64;
                        let d = counts[2].fetch_add(dropped, Ordering::Relaxed) + dropped;
                        let at = counts[3].load(Ordering::Relaxed);
                        write_counts(&out, f, t, d, at);
                        if delay_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        }
                        return;
                    }
                    let f = counts[0].fetch_add(functions, Ordering::Relaxed) + functions;
                    let t = counts[1].fetch_add(events.len() as u64, Ordering::Relaxed)
                        + events.len() as u64;
                    let d = counts[2].fetch_add(dropped, Ordering::Relaxed) + dropped;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_nanos() as u64;
                    counts[3].store(now, Ordering::Relaxed);
                    write_counts(&out, f, t, d, now);
                    if delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    }
                }
            },
        )
        .run()
        .await
    })?;
    Ok(())
}

/// Atomically replaces the listener's count file.
fn write_counts(out: &std::path::Path, f: u64, t: u64, d: u64, at: u64) {
    let tmp = out.with_extension("tmp");
    if std::fs::write(&tmp, format!("{f} {t} {d} {at}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, out);
    }
}

/// A `[Function]` line of the telemetry scenario (about 60 bytes).
fn line(out: &mut impl Write, i: u64) -> std::io::Result<()> {
    writeln!(
        out,
        "[Function] bench line {i:08} lorem ipsum dolor sit amet"
    )
}

/// `emit N`: prints N `[Function]` lines to stdout and exits (the line-read baseline).
pub fn emit(n: u64) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    for i in 0..n {
        line(&mut out, i)?;
    }
    out.flush()?;
    Ok(())
}

/// `emit-runtime`: a FunctionGraph custom runtime that, per invocation with event
/// `{"lines": N}`, prints N `[Function]` lines (64 KiB buffered) and answers `{"lines": N}`.
pub fn emit_runtime() -> anyhow::Result<()> {
    let addr = std::env::var("RUNTIME_API_ADDR")
        .map_err(|_| anyhow::anyhow!("RUNTIME_API_ADDR is not set: run me under fnbox"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        loop {
            let next = hyper::Request::get(format!("http://{addr}{}", paths::NEXT))
                .body(Full::default())?;
            let resp = client.request(next).await?;
            let id = resp
                .headers()
                .get(headers::REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let event = resp.into_body().collect().await?.to_bytes();
            if id.is_empty() {
                continue;
            }
            let n = serde_json::from_slice::<serde_json::Value>(&event)
                .ok()
                .and_then(|v| v.get("lines").and_then(|n| n.as_u64()))
                .unwrap_or(0);
            // Blocking writes on purpose: this runtime has nothing else to do meanwhile.
            {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
                for i in 0..n {
                    line(&mut out, i)?;
                }
                out.flush()?;
            }
            let post = hyper::Request::post(format!("http://{addr}{}{id}", paths::RESPONSE_PREFIX))
                .body(Full::new(Bytes::from(format!("{{\"lines\":{n}}}"))))?;
            client.request(post).await?.into_body().collect().await?;
        }
    })
}
