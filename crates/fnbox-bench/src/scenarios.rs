//! The scenarios, the processes they start, the table and the JSON.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use fnbox_engine::{Engine, EngineConfig, InvokeRequest, InvokeResult};
use fnbox_limits::MemoryController;
use fnbox_serve::{FunctionSpec, Registry};
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::helpers::workspace_root;
use crate::stats::{p50_p99, range};
use crate::Options;

pub(crate) mod freeze;
mod peers;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How much of everything a run does.
struct Counts {
    warmup: usize,
    sequential: usize,
    throughput_for: Duration,
    /// Interleaved series: this many A/B/A/B rounds share the `sequential` calls.
    rounds: usize,
    clients: usize,
    cold: usize,
    lines: u64,
    warm_instances: u32,
}

impl Counts {
    fn new(smoke: bool) -> Self {
        if smoke {
            Counts {
                warmup: 3,
                sequential: 20,
                throughput_for: Duration::from_millis(300),
                rounds: 2,
                clients: 32,
                cold: 2,
                lines: 2_000,
                warm_instances: 3,
            }
        } else {
            Counts {
                warmup: 200,
                sequential: 3_000,
                throughput_for: Duration::from_secs(3),
                rounds: 10,
                clients: 32,
                cold: 40,
                lines: 1_000_000,
                warm_instances: 50,
            }
        }
    }
}

/// One line of the table (and one object of the JSON).
struct Row {
    scenario: String,
    fnbox: String,
    baseline: String,
    ratio: String,
    target: String,
    met: Option<bool>,
    data: Value,
}

/// The binaries a run uses.
struct Bins {
    fnbox: PathBuf,
    rust_hello: PathBuf,
    me: PathBuf,
}

pub fn run(opts: Options) -> anyhow::Result<()> {
    let profile = opts.profile();
    if !opts.no_build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "-p", "fnbox-cli", "-p", "rust-hello"]);
        if !opts.debug {
            cmd.arg("--release");
        }
        eprintln!("fnbox-bench: building fnbox and rust-hello ({profile})");
        let st = cmd.status().context("running cargo build")?;
        if !st.success() {
            bail!("cargo build failed: {st}");
        }
    }
    let dir = opts.bin_dir();
    let bins = Bins {
        fnbox: dir.join("fnbox"),
        rust_hello: dir.join("rust-hello"),
        me: std::env::current_exe()?,
    };
    for b in [&bins.fnbox, &bins.rust_hello] {
        if !b.is_file() {
            bail!(
                "{} is missing (run without --no-build, or point --bin-dir at the binaries)",
                b.display()
            );
        }
    }
    let counts = Counts::new(opts.smoke);
    let tmp = tempfile::Builder::new().prefix("fnbox-bench").tempdir()?;
    let rt = tokio::runtime::Runtime::new()?;
    let rows = rt.block_on(all(&opts, &bins, &counts, tmp.path()));
    if std::env::var_os("FNBOX_BENCH_KEEP").is_some() {
        eprintln!("fnbox-bench: keeping {}", tmp.keep().display());
    }
    let rows = rows?;
    print_table(&rows, opts.smoke);
    let json = json!({
        "smoke": opts.smoke,
        "profile": profile,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
        "rows": rows.iter().map(|r| json!({
            "scenario": r.scenario, "fnbox": r.fnbox, "baseline": r.baseline,
            "ratio": r.ratio, "target": r.target, "met": r.met, "data": r.data,
        })).collect::<Vec<_>>(),
    });
    if let Some(parent) = opts.json.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&opts.json, serde_json::to_vec_pretty(&json)?)?;
    println!("json: {}", opts.json.display());
    Ok(())
}

fn print_table(rows: &[Row], smoke: bool) {
    let mut out = std::io::stdout().lock();
    if smoke {
        let _ = writeln!(out, "(smoke run: tiny counts, the figures mean nothing)");
    }
    let _ = writeln!(
        out,
        "| scenario | fnbox | baseline (same run) | ratio | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "—",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.scenario, r.fnbox, r.baseline, r.ratio, r.target, met
        );
    }
}

fn ms(v: f64) -> String {
    format!("{v:.3} ms")
}

async fn all(o: &Options, bins: &Bins, c: &Counts, tmp: &Path) -> anyhow::Result<Vec<Row>> {
    let pk = Packages::write(bins, tmp)?;
    let client = client();
    let mut rows = Vec::new();

    // Baseline: the minimal hyper server, in its own process like fnbox; the relay floor:
    // rust-hello behind the least a runtime-API platform does. The three latency series
    // (loopback, relay, fnbox warm) are taken first, interleaved in rounds, before any
    // throughput phase: measured one after the other, a series taken right after 32 clients
    // hammered a server came out up to twice as slow as the same server measured quiet.
    let (mut base_tp, mut relay_tp) = (0.0, 0.0);
    if o.runs("warm") || o.runs("throughput") {
        let base = BaselineServer::spawn(&bins.me)?;
        let base_uri: Uri = format!("http://{}/", base.addr).parse()?;
        let relay = Relay::spawn(bins, 2)?;
        let relay_uri = relay.uri()?;
        let warm = if o.runs("warm") {
            eprintln!("fnbox-bench: warm sequential (interleaved with loopback and relay)");
            let serve = Serve::spawn(bins, tmp, "warm", &[(&pk.hello, "max_instances: 1")])?;
            let uri = serve.invoke_uri("bench-hello")?;
            Some((serve, uri))
        } else {
            None
        };
        let mut uris = vec![base_uri.clone(), relay_uri.clone()];
        uris.extend(warm.as_ref().map(|(_, uri)| uri.clone()));
        let series = interleaved(&client, &uris, c).await?;
        let (b50, b99) = p50_p99(&series[0].concat());
        let relay50 = p50_p99(&series[1].concat()).0;
        if let Some(fnbox) = series.get(2) {
            // 1. Warm sequential invoke through the front door.
            let (f50, f99) = p50_p99(&fnbox.concat());
            let ratio = f50 / b50;
            rows.push(Row {
                scenario: "warm invoke, sequential (p50 / p99)".into(),
                fnbox: format!("{} / {}", ms(f50), ms(f99)),
                baseline: format!(
                    "{} / {} (loopback round trip); relay floor p50 {}",
                    ms(b50),
                    ms(b99),
                    ms(relay50)
                ),
                ratio: format!(
                    "{ratio:.2}× (p50); floor {:.2}×, fnbox {:.2}× the floor",
                    relay50 / b50,
                    f50 / relay50
                ),
                target: "p50 ≤ 4× loopback".into(),
                met: Some(ratio <= 4.0),
                data: json!({"p50_ms": f50, "p99_ms": f99, "baseline_p50_ms": b50,
                             "baseline_p99_ms": b99, "relay_p50_ms": relay50,
                             "n": c.sequential, "rounds": c.rounds}),
            });
        }
        drop(warm);
        base_tp = throughput(&client, &base_uri, c.clients, c.throughput_for).await?;
        drop(base);
        relay_tp = throughput(&client, &relay_uri, c.clients, c.throughput_for).await?;
    }

    // 2. Throughput, 32 clients, max_instances 2, concurrent_num 1 and 16.
    for conc in [1u32, 16] {
        if !o.runs("throughput") {
            break;
        }
        eprintln!("fnbox-bench: throughput concurrent_num {conc}");
        let serve = Serve::spawn(
            bins,
            tmp,
            &format!("tp{conc}"),
            &[(
                &pk.hello,
                &format!("max_instances: 2\n    reserved_instances: 2\n    concurrent_num: {conc}"),
            )],
        )?;
        let uri = serve.invoke_uri("bench-hello")?;
        let tp = throughput(&client, &uri, c.clients, c.throughput_for).await?;
        rows.push(Row {
            scenario: format!(
                "warm throughput, {} clients, max_instances 2, concurrent_num {conc}",
                c.clients
            ),
            fnbox: format!("{tp:.0} inv/s"),
            baseline: format!(
                "{base_tp:.0} req/s (minimal server); relay floor {relay_tp:.0} inv/s"
            ),
            ratio: format!(
                "{:.2}; floor {:.2}, fnbox {:.2} of the floor",
                tp / base_tp,
                relay_tp / base_tp,
                tp / relay_tp
            ),
            target: "≥ 0.20 of the minimal server".into(),
            met: Some(tp / base_tp >= 0.20),
            data: json!({"per_s": tp, "baseline_per_s": base_tp, "relay_per_s": relay_tp,
                         "clients": c.clients, "concurrent_num": conc, "max_instances": 2}),
        });
    }

    // 3. Cold start: a new instance per invocation (engine in-process, as fnbox serve does).
    if o.runs("restore") {
        eprintln!("fnbox-bench: restore vs cold start");
        let r = crate::restore::restore_vs_cold(tmp, c.cold.min(20)).await?;
        let ratio = r.restore_p50_ms / r.cold_p50_ms;
        rows.push(Row {
            scenario: "restore vs cold start, Python, init ≥ 300 ms (p50 to first response)".into(),
            fnbox: format!("{} restore (fork from template)", ms(r.restore_p50_ms)),
            baseline: format!("{} cold start (same function, no snapshot)", ms(r.cold_p50_ms)),
            ratio: format!("{ratio:.3}×"),
            target: "restore ≤ 0.1× cold".into(),
            met: Some(ratio <= 0.1),
            data: json!({"restore_p50_ms": r.restore_p50_ms, "cold_p50_ms": r.cold_p50_ms, "n": r.n}),
        });
    }

    if o.runs("cold") {
        eprintln!("fnbox-bench: cold start");
        let cold = cold_starts(&pk.hello, c.cold).await?;
        let cold_base = spawn_baseline(&pk.hello.join("bootstrap"), c.cold)?;
        let (f50, f99) = p50_p99(&cold);
        let (b50c, b99c) = p50_p99(&cold_base);
        let overhead = f50 - b50c;
        rows.push(Row {
            scenario: "cold start to first response (p50 / p99)".into(),
            fnbox: format!("{} / {}", ms(f50), ms(f99)),
            baseline: format!("{} / {} (spawn → first HTTP request)", ms(b50c), ms(b99c)),
            ratio: format!("+{} (fnbox's part, p50)", ms(overhead)),
            target: "fnbox's part < 5 ms".into(),
            met: Some(overhead < 5.0),
            data: json!({"p50_ms": f50, "p99_ms": f99, "baseline_p50_ms": b50c,
                     "baseline_p99_ms": b99c, "overhead_p50_ms": overhead, "n": c.cold}),
        });
    }

    // 4. Telemetry throughput: N [Function] lines to a no-op listener.
    if o.runs("telemetry") {
        eprintln!("fnbox-bench: telemetry throughput");
        let raw_rate = line_read_baseline(&bins.me, c.lines, &tmp.join("lines.out"))?;
        let (rate, delivered, dropped, answered) = telemetry_rate(bins, tmp, &pk, c).await?;
        let read_rate = c.lines as f64 / answered.as_secs_f64();
        let all_accounted = delivered + dropped >= c.lines;
        let met =
            all_accounted && dropped == 0 && read_rate >= 1_000_000.0 && rate >= 0.9 * read_rate;
        rows.push(Row {
            scenario: format!("telemetry: {} [Function] lines → no-op listener", c.lines),
            fnbox: format!(
                "{rate:.0} events/s delivered ({delivered} delivered, {dropped} dropped); \
                 fnbox read the lines at {read_rate:.0}/s"
            ),
            baseline: format!("{raw_rate:.0} lines/s (piped to a file)"),
            ratio: format!(
                "read {:.2} of the pipe; delivered {:.2} of read",
                read_rate / raw_rate,
                rate / read_rate
            ),
            target: "0 dropped; read ≥ 1000000 lines/s; delivered ≥ 0.9 × read".into(),
            met: Some(met),
            data: json!({"events_per_s": rate, "delivered": delivered, "dropped": dropped,
                     "fnbox_read_lines_per_s": read_rate,
                     "baseline_lines_per_s": raw_rate, "lines": c.lines}),
        });
    }

    // 5–6. Hot path with a fast and a slow listener and an extension that only registers,
    // each against "without", all four servers up at once and called in A/B/A/B rounds.
    if o.runs("hot") {
        eprintln!("fnbox-bench: hot path with listeners (interleaved)");
        let cases = [
            (&pk.hello, "bench-hello", "without extension"),
            (
                &pk.hello_fast,
                "bench-hello-fast",
                "subscribed no-op listener",
            ),
            (
                &pk.hello_slow,
                "bench-hello-slow",
                "slow listener (1 s per batch)",
            ),
            (
                &pk.hello_ext,
                "bench-hello-ext",
                "extension registered (invoke pushes only)",
            ),
        ];
        let mut servers = Vec::new();
        let mut uris = Vec::new();
        for (pkg, name, _) in cases {
            let serve = Serve::spawn(
                bins,
                tmp,
                &format!("hot-{name}"),
                &[(pkg, "max_instances: 1")],
            )?;
            uris.push(serve.invoke_uri(name)?);
            servers.push(serve);
        }
        let series = interleaved(&client, &uris, c).await?;
        for (i, (_, _, label)) in cases.iter().enumerate().skip(1) {
            rows.push(ab_row(
                &format!("hot path, {label}: warm p50 ÷ without"),
                "without extension",
                &series[0],
                &series[i],
                1.10,
            ));
        }
    }

    // 7. The browser timeline: off, on without a page, on with one live stream.
    if o.runs("ui") {
        rows.extend(ui_rows(bins, tmp, &pk, c, &client).await?);
    }

    // 8. Hot path with OTLP export on: to a dead endpoint (connection refused) and to a live
    // receiver (a separate process that accepts every export), against "OTLP off",
    // interleaved.
    if o.runs("otlp") {
        eprintln!("fnbox-bench: hot path with OTLP export (interleaved)");
        let receiver = BaselineServer::spawn(&bins.me)?;
        let live = format!("http://{}", receiver.addr);
        let hello = [(pk.hello.as_path(), "max_instances: 1")];
        let off = Serve::spawn(bins, tmp, "otlp-off", &hello)?;
        let dead = Serve::spawn_with(
            bins,
            tmp,
            "otlp-dead",
            &hello,
            &[],
            "otlp:\n  endpoint: http://127.0.0.1:1\n",
        )?;
        let on = Serve::spawn_with(
            bins,
            tmp,
            "otlp-live",
            &hello,
            &[],
            &format!("otlp:\n  endpoint: {live}\n"),
        )?;
        let uris = [
            off.invoke_uri("bench-hello")?,
            dead.invoke_uri("bench-hello")?,
            on.invoke_uri("bench-hello")?,
        ];
        let series = interleaved(&client, &uris, c).await?;
        for (i, label) in [
            (1, "OTLP to a dead endpoint"),
            (2, "OTLP to a live receiver"),
        ] {
            rows.push(ab_row(
                &format!("hot path, {label}: warm p50 ÷ OTLP off"),
                "with OTLP off",
                &series[0],
                &series[i],
                1.10,
            ));
        }
    }

    // 8b. Lambda's freeze on the warm path (scenarios/freeze.rs).
    if o.runs("freeze") {
        rows.extend(freeze::rows(bins, tmp, c, &client).await?);
    }

    // 9. The peer: the same lambda_runtime function behind cargo-lambda and behind fnbox.
    if o.runs("peers") {
        rows.push(peers::peer_row(o, bins, tmp, c).await?);
    }

    // 9. Memory of the fnbox process.
    if !o.runs("memory") {
        return Ok(rows);
    }
    eprintln!("fnbox-bench: memory");
    let idle = {
        let serve = Serve::spawn(bins, tmp, "idle", &[(&pk.hello, "max_instances: 1")])?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        serve.rss_kib()?
    };
    rows.push(Row {
        scenario: "memory: fnbox RSS idle".into(),
        fnbox: format!("{:.1} MB", idle as f64 / 1024.0),
        baseline: "—".into(),
        ratio: "—".into(),
        target: "≤ 20 MB".into(),
        met: Some((idle as f64 / 1024.0) <= 20.0),
        data: json!({"rss_kib": idle}),
    });
    let n = c.warm_instances;
    let warm = {
        let serve = Serve::spawn(
            bins,
            tmp,
            "mem",
            &[(
                &pk.hello,
                &format!("max_instances: {n}\n    reserved_instances: {n}"),
            )],
        )?;
        let uri = serve.invoke_uri("bench-hello")?;
        call(&client, &uri).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        serve.rss_kib()?
    };
    let per_instance = (warm.saturating_sub(idle)) as f64 / n as f64;
    rows.push(Row {
        scenario: format!("memory: fnbox RSS with {n} warm instances"),
        fnbox: format!("{:.1} MB", warm as f64 / 1024.0),
        baseline: "—".into(),
        ratio: format!("{per_instance:.0} KB per instance"),
        target: "≤ 150 KB per instance".into(),
        met: Some(per_instance <= 150.0),
        data: json!({"rss_kib": warm, "instances": n, "per_instance_kib": per_instance}),
    });
    Ok(rows)
}

/// The packages a run serves, written into the temporary directory.
struct Packages {
    hello: PathBuf,
    hello_fast: PathBuf,
    hello_slow: PathBuf,
    hello_ext: PathBuf,
    emit: PathBuf,
    emit_count: PathBuf,
}

impl Packages {
    fn write(bins: &Bins, tmp: &Path) -> anyhow::Result<Self> {
        let hello_boot = format!("#!/bin/bash\nexec {:?}\n", bins.rust_hello);
        let emit_boot = format!("#!/bin/bash\nexec {:?} emit-runtime\n", bins.me);
        let hello = package(tmp, "bench-hello", &hello_boot, None, 10)?;
        let fast = tmp.join("fast.count");
        let slow = tmp.join("slow.count");
        let emit_count = tmp.join("emit.count");
        let hello_fast = package(
            tmp,
            "bench-hello-fast",
            &hello_boot,
            Some((&fast, "--delay-ms 0", &bins.me)),
            10,
        )?;
        let hello_slow = package(
            tmp,
            "bench-hello-slow",
            &hello_boot,
            Some((&slow, "--delay-ms 1000", &bins.me)),
            10,
        )?;
        let hello_ext = package(
            tmp,
            "bench-hello-ext",
            &hello_boot,
            Some((&tmp.join("ext.count"), "--no-subscribe", &bins.me)),
            10,
        )?;
        let emit = package(
            tmp,
            "bench-emit",
            &emit_boot,
            Some((&emit_count, "--delay-ms 0", &bins.me)),
            300,
        )?;
        Ok(Packages {
            hello,
            hello_fast,
            hello_slow,
            hello_ext,
            emit,
            emit_count,
        })
    }
}

/// Writes an executable script.
fn write_exec(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn package(
    tmp: &Path,
    name: &str,
    bootstrap: &str,
    listener: Option<(&Path, &str, &Path)>,
    timeout: u32,
) -> anyhow::Result<PathBuf> {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("function.yaml"),
        // Not contained: the listener writes its counts to a host file (a contained extension's
        // /tmp is its own), and every package of a comparison must run alike.
        format!("func_name: {name}\nruntime: Custom\nmemory_size: 128\ntimeout: {timeout}\ncontainment: off\n"),
    )?;
    write_exec(&dir.join("bootstrap"), bootstrap)?;
    if let Some((out, args, me)) = listener {
        std::fs::create_dir_all(dir.join("extension"))?;
        std::fs::write(
            dir.join("extension/extensionBench.sh"),
            format!("#!/bin/bash\nexec {me:?} listener --out {out:?} {args} \"$0\"\n"),
        )?;
    }
    Ok(dir)
}

fn client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(http)
}

async fn call_with(client: &HttpClient, uri: &Uri, body: Bytes) -> anyhow::Result<Bytes> {
    let req = hyper::Request::post(uri.clone())
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("{uri}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

async fn call(client: &HttpClient, uri: &Uri) -> anyhow::Result<Bytes> {
    call_with(client, uri, Bytes::from_static(b"{}")).await
}

async fn sequential(
    client: &HttpClient,
    uri: &Uri,
    warmup: usize,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..warmup {
        call(client, uri).await?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call(client, uri).await?;
        v.push(t.elapsed());
    }
    Ok(v)
}

async fn throughput(
    client: &HttpClient,
    uri: &Uri,
    clients: usize,
    dur: Duration,
) -> anyhow::Result<f64> {
    // Warm every connection (and, for fnbox, every instance) first.
    let mut warm = Vec::new();
    for _ in 0..clients {
        let (client, uri) = (client.clone(), uri.clone());
        warm.push(tokio::spawn(async move { call(&client, &uri).await }));
    }
    for w in warm {
        w.await??;
    }
    let start = Instant::now();
    let end = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, uri) = (client.clone(), uri.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                call(&client, &uri).await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// A child process killed (SIGTERM, then SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) takes no pointers. The pid is our own child's, not reaped yet (only
        // the try_wait/wait below reap it), so the number cannot belong to another process.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `child`'s stdout until a line containing `marker`; the rest is drained in a thread.
fn wait_for_line(child: &mut Child, marker: &str) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("no stdout")?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("process exited before printing {marker:?}");
        }
        if line.contains(marker) {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
            return Ok(line);
        }
    }
}

struct BaselineServer {
    _proc: Proc,
    addr: SocketAddr,
}

impl BaselineServer {
    fn spawn(me: &Path) -> anyhow::Result<Self> {
        Self::spawn_helper(me, "baseline-server")
    }

    fn spawn_helper(me: &Path, helper: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(me)
            .arg(helper)
            .stdout(Stdio::piped())
            .spawn()?;
        let line = wait_for_line(&mut child, "listening ");
        let proc = Proc(child);
        let addr = line?.trim().trim_start_matches("listening ").parse()?;
        Ok(BaselineServer { _proc: proc, addr })
    }
}

/// The relay floor (`relay-server`) with `runtimes` rust-hello processes pulling from it.
struct Relay {
    _runtimes: Vec<Proc>,
    server: BaselineServer,
}

impl Relay {
    fn spawn(bins: &Bins, runtimes: usize) -> anyhow::Result<Self> {
        let server = BaselineServer::spawn_helper(&bins.me, "relay-server")?;
        let runtimes = (0..runtimes)
            .map(|_| {
                Command::new(&bins.rust_hello)
                    .env("RUNTIME_API_ADDR", server.addr.to_string())
                    .stdout(Stdio::null())
                    .spawn()
                    .map(Proc)
            })
            .collect::<Result<_, _>>()?;
        Ok(Relay {
            _runtimes: runtimes,
            server,
        })
    }

    fn uri(&self) -> anyhow::Result<Uri> {
        Ok(format!("http://{}/invoke", self.server.addr).parse()?)
    }
}

/// `fnbox serve` with a generated config.
struct Serve {
    proc: Proc,
    addr: SocketAddr,
    err_log: PathBuf,
}

impl Serve {
    fn spawn(
        bins: &Bins,
        tmp: &Path,
        tag: &str,
        functions: &[(&Path, &str)],
    ) -> anyhow::Result<Self> {
        Self::spawn_with(bins, tmp, tag, functions, &[], "")
    }

    /// [`Serve::spawn`] with extra `fnbox serve` arguments (`args`) and more top-level config
    /// (`top`: YAML lines, e.g. an `otlp:` key).
    fn spawn_with(
        bins: &Bins,
        tmp: &Path,
        tag: &str,
        functions: &[(&Path, &str)],
        args: &[&str],
        top: &str,
    ) -> anyhow::Result<Self> {
        let mut yaml = format!("{top}functions:\n");
        for (path, extra) in functions {
            yaml.push_str(&format!("  - path: {path:?}\n    {extra}\n"));
        }
        let cfg = tmp.join(format!("{tag}.yaml"));
        std::fs::write(&cfg, yaml)?;
        let err_log = tmp.join(format!("{tag}.stderr"));
        let mut child = Command::new(&bins.fnbox)
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            // Each server gets its own async store in the run's temp dir, never the cwd.
            .arg("--data-dir")
            .arg(tmp.join(format!("{tag}.data")))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(if tag == "emit" {
                // The function's million lines are echoed on stderr: /dev/null is the
                // cheapest sink (a file or a terminal costs far more than fnbox does).
                Stdio::null()
            } else {
                std::fs::File::create(&err_log)?.into()
            })
            .spawn()?;
        let line = wait_for_line(&mut child, "listening on http://");
        let proc = Proc(child);
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                let tail = std::fs::read_to_string(&err_log).unwrap_or_default();
                let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                bail!("fnbox serve ({tag}): {e}; stderr (last lines, reversed):\n{tail}");
            }
        };
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .context("no address in the listening line")?
            .parse()?;
        Ok(Serve {
            proc,
            addr,
            err_log,
        })
    }

    fn invoke_uri(&self, name: &str) -> anyhow::Result<Uri> {
        Ok(format!(
            "http://{}/v2/bench/fgs/functions/default:{name}/invocations",
            self.addr
        )
        .parse()?)
    }

    /// VmRSS of the fnbox process only, KiB.
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.0.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no VmRSS (stderr in {})", self.err_log.display()))
    }
}

/// Starts a fresh instance per invocation with fnbox's engine (as `fnbox serve` configures it)
/// and times start + first invocation.
async fn cold_starts(pkg: &Path, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut config = EngineConfig::new(MemoryController::detect());
    config.host_path = std::env::var("PATH").ok();
    let engine = Engine::new(config);
    let registry = Registry::load(&engine, &[FunctionSpec::from_arg(pkg)])?;
    let served = registry
        .get("bench-hello")
        .context("bench-hello not loaded")?
        .clone();
    let mut v = Vec::with_capacity(n);
    for i in 0..n + 1 {
        let t = Instant::now();
        let inst = served.function().start_instance(None).await?;
        let out = inst
            .invoke(InvokeRequest::sync(Bytes::from_static(b"{}")))
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let d = t.elapsed();
        inst.shutdown().await;
        if !matches!(out.result, InvokeResult::Ok(_)) {
            bail!("cold invoke failed: {:?}", out.result);
        }
        if i > 0 {
            v.push(d); // the first one warms the page cache
        }
    }
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(v)
}

/// Spawns `bootstrap` with `RUNTIME_API_ADDR` pointing at a bare listener and times until its
/// first HTTP request has arrived (headers read).
fn spawn_baseline(bootstrap: &Path, n: usize) -> anyhow::Result<Vec<Duration>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut v = Vec::with_capacity(n);
    for i in 0..n + 1 {
        let t = Instant::now();
        let child = Command::new(bootstrap)
            .env("RUNTIME_API_ADDR", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let proc = Proc(child);
        let (mut conn, _) = listener.accept()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let k = conn.read(&mut chunk)?;
            if k == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        let d = t.elapsed();
        drop(conn);
        drop(proc);
        if i > 0 {
            v.push(d);
        }
    }
    Ok(v)
}

/// Lines/s of `emit N` read line by line from a pipe and written to a file.
fn line_read_baseline(me: &Path, n: u64, out: &Path) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut child = Command::new(me)
        .args(["emit", &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let reader = BufReader::new(child.stdout.take().context("stdout")?);
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut count = 0u64;
    for line in reader.lines() {
        let line = line?;
        file.write_all(line.as_bytes())?;
        file.write_all(b"\n")?;
        count += 1;
    }
    file.flush()?;
    child.wait()?;
    let rate = count as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(out);
    Ok(rate)
}

/// `(function_events, total_events, dropped_records, unix_nanos_of_last_batch)`.
fn read_counts(path: &Path) -> Option<(u64, u64, u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut it = text.split_whitespace();
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

/// Invokes the emitting function once (warm) and waits for the listener to have every line;
/// returns (events/s delivered, function events delivered, records dropped).
async fn telemetry_rate(
    bins: &Bins,
    tmp: &Path,
    pk: &Packages,
    c: &Counts,
) -> anyhow::Result<(f64, u64, u64, Duration)> {
    let serve = Serve::spawn(bins, tmp, "emit", &[(&pk.emit, "max_instances: 1")])?;
    let uri = serve.invoke_uri("bench-emit")?;
    let client = client();
    call_with(&client, &uri, Bytes::from_static(br#"{"lines":0}"#)).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = read_counts(&pk.emit_count).map(|c| c.0).unwrap_or(0);
    let t0 = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let start = Instant::now();
    call_with(
        &client,
        &uri,
        Bytes::from(format!("{{\"lines\":{}}}", c.lines)),
    )
    .await?;
    // The function has printed everything and fnbox has read it all (pipes are small).
    let answered = start.elapsed();
    let stall = Duration::from_secs(3);
    let mut last_change = Instant::now();
    let mut last = None;
    loop {
        let now = read_counts(&pk.emit_count);
        if let Some((f, _, d, _)) = now {
            if f - before + d >= c.lines {
                last = now;
                break;
            }
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() > stall || start.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (f, _, d, at) = last.unwrap_or((before, 0, 0, t0));
    let delivered = f - before;
    let secs = (at.saturating_sub(t0)) as f64 / 1e9;
    let rate = if secs > 0.0 {
        delivered as f64 / secs
    } else {
        0.0
    };
    Ok((rate, delivered, d, answered))
}

/// Warm sequential p50 with the timeline off (`--no-ui`), on with no page connected, and on
/// with one live stream (`GET /api/events`) read as a browser would: three servers called in
/// A/B/C rounds.
async fn ui_rows(
    bins: &Bins,
    tmp: &Path,
    pk: &Packages,
    c: &Counts,
    client: &HttpClient,
) -> anyhow::Result<Vec<Row>> {
    eprintln!("fnbox-bench: hot path with the browser timeline (interleaved)");
    let hello = [(pk.hello.as_path(), "max_instances: 1")];
    let off = Serve::spawn_with(bins, tmp, "ui-off", &hello, &["--no-ui"], "")?;
    let idle = Serve::spawn(bins, tmp, "ui-on", &hello)?;
    let watched = Serve::spawn(bins, tmp, "ui-watched", &hello)?;
    let (received, stream) = sse_reader(watched.addr).await?;
    let uris = [
        off.invoke_uri("bench-hello")?,
        idle.invoke_uri("bench-hello")?,
        watched.invoke_uri("bench-hello")?,
    ];
    let series = interleaved(client, &uris, c).await?;
    stream.abort();
    let bytes = received.load(std::sync::atomic::Ordering::Relaxed);
    if bytes == 0 {
        bail!("the live stream sent nothing while it was watched");
    }
    let mut watched_row = ab_row(
        "hot path, one page connected (/api/events): warm p50 ÷ no page",
        "without a page",
        &series[1],
        &series[2],
        1.10,
    );
    watched_row
        .fnbox
        .push_str(&format!("; {bytes} bytes streamed"));
    watched_row.data["streamed_bytes"] = json!(bytes);
    Ok(vec![
        ab_row(
            "hot path, timeline on, no page connected: warm p50 ÷ --no-ui",
            "with --no-ui",
            &series[0],
            &series[1],
            1.05,
        ),
        watched_row,
    ])
}

/// Sequential calls to every target in turn: after `warmup` calls to each, `rounds` rounds
/// in which each target gets `sequential / rounds` calls (A/B/C/A/B/C…), so a machine that
/// gets busier during the run slows every series alike. Returns, per target, its samples per
/// round.
async fn interleaved(
    client: &HttpClient,
    uris: &[Uri],
    c: &Counts,
) -> anyhow::Result<Vec<Vec<Vec<Duration>>>> {
    let rounds = c.rounds.max(1);
    let per_round = (c.sequential / rounds).max(1);
    for uri in uris {
        for _ in 0..c.warmup {
            call(client, uri).await?;
        }
    }
    let mut out = vec![Vec::with_capacity(rounds); uris.len()];
    for _ in 0..rounds {
        for (uri, series) in uris.iter().zip(&mut out) {
            let mut v = Vec::with_capacity(per_round);
            for _ in 0..per_round {
                let t = Instant::now();
                call(client, uri).await?;
                v.push(t.elapsed());
            }
            series.push(v);
        }
    }
    Ok(out)
}

/// A row comparing interleaved series `b` with `a`: the ratio of the p50s over all rounds,
/// and the spread of the per-round ratios (how much the machine moved during the run).
fn ab_row(
    scenario: &str,
    a_label: &str,
    a: &[Vec<Duration>],
    b: &[Vec<Duration>],
    target: f64,
) -> Row {
    let (a50, a99) = p50_p99(&a.concat());
    let (b50, b99) = p50_p99(&b.concat());
    let ratio = b50 / a50;
    let per_round: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(ra, rb)| p50_p99(rb).0 / p50_p99(ra).0)
        .collect();
    let (lo, hi) = range(&per_round);
    Row {
        scenario: scenario.into(),
        fnbox: format!("{} (p99 {})", ms(b50), ms(b99)),
        baseline: format!("{} {a_label}", ms(a50)),
        ratio: format!(
            "{ratio:.3} (rounds {lo:.2}–{hi:.2}, {} rounds)",
            per_round.len()
        ),
        target: format!("≤ {target:.2}"),
        met: Some(ratio <= target),
        data: json!({
            "p50_ms": b50, "p99_ms": b99, "base_p50_ms": a50, "base_p99_ms": a99,
            "ratio": ratio, "ratio_per_round": per_round, "rounds": per_round.len(),
        }),
    }
}

/// Connects to `/api/events` and reads it in a task until aborted; counts the bytes.
async fn sse_reader(
    addr: SocketAddr,
) -> anyhow::Result<(
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    tokio::task::JoinHandle<()>,
)> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let uri: Uri = format!("http://{addr}/api/events").parse()?;
    let resp = client.get(uri).await?;
    if !resp.status().is_success() {
        bail!("/api/events: {}", resp.status());
    }
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = received.clone();
    let task = tokio::spawn(async move {
        let mut body = resp.into_body();
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                count.fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    Ok((received, task))
}
