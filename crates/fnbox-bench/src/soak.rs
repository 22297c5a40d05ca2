//! `fnbox-bench soak`: fnbox under sustained load and chaos, then stopped and killed, with
//! what it leaves behind counted (docs/reliability.md).
//!
//! ```text
//! cargo build --release -p fnbox-cli -p rust-hello -p fnbox-bench
//! target/release/fnbox-bench soak                      # 10 minutes at 1000 inv/s
//! target/release/fnbox-bench soak --seconds 20 --rate 200 --debug   # the CI smoke
//! ```
//!
//! 1. `fnbox serve` (`--no-ui`) serves `soak` (rust-hello with a telemetry-subscribing
//!    extension, the bench's own `listener`) and `soak-oom` (Python, 128 MB, allocates 400 MB);
//! 2. clients send sync invocations at `--rate` (1 in 100 asynchronous); every `--chaos-every`
//!    seconds a random runtime or extension process of fnbox is SIGKILLed, and every third time
//!    `soak-oom` is invoked instead (an OOM kill);
//! 3. every sample period: fnbox's RSS and open fds, invocations/s; at the end, answers by
//!    status, the slowest answer, async invocations accepted vs finished (from the next start's
//!    own count line), the OOM answers;
//! 4. SIGTERM: exit code, then processes, memory groups left; restart on the same data dir;
//!    load for 3 s; SIGKILL: processes alive 1 s later; restart (the start-up sweep): groups and
//!    processes left; SIGTERM again.
//!
//! Exit status 1 when anything is left behind, a status other than 200 (the chaos answers
//! `FSS.0408`/function errors with 200 + `X-Is-Func-Err`) exceeds 1 % of answers, or async
//! invocations were lost.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Arguments of `soak`.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// Minutes of load.
    #[arg(long, default_value_t = 10)]
    pub minutes: u64,
    /// Seconds of load instead of --minutes (short runs, the CI smoke).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Invocations per second the clients aim at.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Concurrent clients (and instances: max_instances of `soak`).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds between chaos events (a kill; every third one an OOM).
    #[arg(long, default_value_t = 2)]
    pub chaos_every: u64,
    /// Seconds between samples of RSS and fds.
    #[arg(long, default_value_t = 10)]
    pub sample_every: u64,
    /// Use target/debug binaries (default target/release).
    #[arg(long)]
    pub debug: bool,
    /// Where fnbox and rust-hello are (overrides --debug).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    by_status: BTreeMap<String, u64>,
    slowest: Duration,
    async_accepted: u64,
    oom_answers: BTreeMap<String, u64>,
    kills: u64,
}

pub fn soak(args: SoakArgs) -> anyhow::Result<()> {
    let bin_dir = args.bin_dir.clone().unwrap_or_else(|| {
        crate::helpers::target_dir().join(if args.debug { "debug" } else { "release" })
    });
    let fnbox = bin_dir.join("fnbox");
    let hello = bin_dir.join("rust-hello");
    for b in [&fnbox, &hello] {
        if !b.is_file() {
            bail!(
                "{} is missing: cargo build{} -p fnbox-cli -p rust-hello",
                b.display(),
                if args.debug { "" } else { " --release" }
            );
        }
    }
    let me = std::env::current_exe()?;
    let tmp = tempfile::Builder::new().prefix("fnbox-soak").tempdir()?;
    let config = write_packages(tmp.path(), &hello, &me, args.clients)?;
    let data = tmp.path().join("data");
    let load_for = Duration::from_secs(args.seconds.unwrap_or(args.minutes * 60));

    println!(
        "soak: {load_for:?} at {} inv/s, {} clients, chaos every {}s; fnbox {}",
        args.rate,
        args.clients,
        args.chaos_every,
        fnbox.display()
    );
    let mut serve = Server::start(&fnbox, &config, &data, tmp.path())?;
    let rt = tokio::runtime::Runtime::new()?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let done = Arc::new(AtomicU64::new(0));
    rt.block_on(load(
        &args,
        &serve,
        load_for,
        tmp.path(),
        tally.clone(),
        done.clone(),
    ))?;
    let queue_empty = rt.block_on(wait_async_drained(&serve, Duration::from_secs(120)));

    let mut failed = Vec::new();
    let t = tally.lock().unwrap();
    let total: u64 = t.by_status.values().sum();
    println!("answers by status: {:?} (total {total})", t.by_status);
    println!("slowest answer: {:?}", t.slowest);
    println!("OOM invocations answered: {:?}", t.oom_answers);
    println!("processes killed: {}", t.kills);
    let not_ok: u64 = t
        .by_status
        .iter()
        .filter(|(s, _)| s.as_str() != "200" && s.as_str() != "202")
        .map(|(_, n)| n)
        .sum();
    if total == 0 || not_ok * 100 > total {
        failed.push(format!("{not_ok} of {total} answers were not 200/202"));
    }
    let accepted = t.async_accepted;
    drop(t);
    if !queue_empty {
        failed.push("the async queue did not drain within 120 s".into());
    }

    // SIGTERM: a clean stop leaves nothing.
    let pid = serve.pid();
    let code = serve.terminate(Duration::from_secs(60))?;
    let left = leftovers(tmp.path(), pid);
    println!("after SIGTERM: exit {code:?}; {left}");
    if code != Some(0) {
        failed.push(format!("fnbox serve exited {code:?} on SIGTERM"));
    }
    if !left.is_empty() {
        failed.push(format!("after SIGTERM: {left}"));
    }

    // Restart: the async counts of the first run; then load, SIGKILL, check 1 s later.
    let serve = Server::start(&fnbox, &config, &data, tmp.path())?;
    let serve_addr = serve.addr.clone();
    let counts = serve.async_line.clone();
    println!("restart: {counts}");
    let finished = parse_finished(&counts);
    println!("async invocations: {accepted} accepted, {finished:?} finished");
    if finished != Some(accepted) {
        failed.push(format!(
            "async: {accepted} accepted but {finished:?} finished"
        ));
    }
    // Busy when killed: the load goes on across the SIGKILL (its own tally: answers after the
    // kill are connection errors by design).
    let short = SoakArgs {
        seconds: Some(6),
        chaos_every: 3600,
        sample_every: 3600,
        ..args
    };
    let busy = Arc::new(Mutex::new(Tally::default()));
    let pid = serve.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        serve.kill();
    });
    rt.block_on(load(
        &short,
        &Server::attach(pid, &serve_addr),
        Duration::from_secs(6),
        tmp.path(),
        busy.clone(),
        done.clone(),
    ))?;
    killer.join().expect("killer thread");
    let accepted_2 = busy.lock().unwrap().async_accepted;
    println!(
        "load across the SIGKILL: {:?}",
        busy.lock().unwrap().by_status
    );
    std::thread::sleep(Duration::from_secs(1));
    let left = leftovers(tmp.path(), pid);
    println!("1 s after SIGKILL: {left}");
    if !left.processes.is_empty() {
        failed.push(format!("1 s after SIGKILL: {left}"));
    }
    let mut serve = Server::start(&fnbox, &config, &data, tmp.path())?;
    let left = leftovers(tmp.path(), pid);
    println!(
        "restart after SIGKILL ({accepted_2} more async accepted): {}; of the killed run: {left}",
        serve.async_line
    );
    if !left.is_empty() {
        failed.push(format!("after SIGKILL + restart: {left}"));
    }
    rt.block_on(wait_async_drained(&serve, Duration::from_secs(120)));
    let pid = serve.pid();
    let code = serve.terminate(Duration::from_secs(60))?;
    let left = leftovers(tmp.path(), pid);
    println!("final SIGTERM: exit {code:?}; {left}");
    if !left.is_empty() || code != Some(0) {
        failed.push(format!("final SIGTERM: exit {code:?}; {left}"));
    }
    let serve = Server::start(&fnbox, &config, &data, tmp.path())?;
    println!("final counts: {}", serve.async_line);
    let finished = parse_finished(&serve.async_line);
    if finished != Some(accepted + accepted_2) {
        failed.push(format!(
            "async over both runs: {} accepted, {finished:?} finished",
            accepted + accepted_2
        ));
    }
    drop(serve);

    if failed.is_empty() {
        println!("soak: OK");
        Ok(())
    } else {
        for f in &failed {
            println!("soak: FAILED: {f}");
        }
        bail!("{} check(s) failed", failed.len())
    }
}

/// `(N queued, M succeeded, K failed; …)` → `M + K` when nothing is queued.
fn parse_finished(line: &str) -> Option<u64> {
    let num = |word: &str| -> Option<u64> {
        let i = line.find(&format!(" {word}"))?;
        line[..i]
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    (num("queued")? == 0).then_some(num("succeeded")? + num("failed")?)
}

fn write_packages(tmp: &Path, hello: &Path, me: &Path, clients: usize) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let soak = tmp.join("soak");
    std::fs::create_dir_all(soak.join("extension"))?;
    std::fs::write(
        soak.join("function.yaml"),
        "func_name: soak\nruntime: Custom\nmemory_size: 128\ntimeout: 10\n",
    )?;
    std::fs::write(
        soak.join("bootstrap"),
        format!("#!/bin/bash\nexec {hello:?}\n"),
    )?;
    std::fs::set_permissions(
        soak.join("bootstrap"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    std::fs::write(
        soak.join("extension/extensionSoak.sh"),
        format!(
            "#!/bin/bash\nexec {me:?} listener --out {:?} --delay-ms 0 \"$0\"\n",
            tmp.join("listener.count")
        ),
    )?;
    let oom = tmp.join("soak-oom");
    std::fs::create_dir_all(&oom)?;
    std::fs::write(
        oom.join("function.yaml"),
        "func_name: soak-oom\nruntime: Python3.9\nhandler: index.handler\nmemory_size: 128\ntimeout: 10\n",
    )?;
    std::fs::write(
        oom.join("index.py"),
        "def handler(event, context):\n    blocks = [bytearray(16 << 20) for _ in range(25)]\n    return len(blocks)\n",
    )?;
    let config = tmp.join("soak.yaml");
    std::fs::write(
        &config,
        format!(
            "functions:\n  - path: {soak:?}\n    max_instances: {}\n  - path: {oom:?}\n    max_instances: 2\n",
            clients.max(1)
        ),
    )?;
    Ok(config)
}

/// A running `fnbox serve`.
struct Server {
    child: Option<Child>,
    pid: i32,
    addr: String,
    async_line: String,
}

impl Server {
    fn start(fnbox: &Path, config: &Path, data: &Path, tmp: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(fnbox)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--no-ui"])
            .args(["--async-retry-delay", "1s"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(tmp.join("serve.stderr"))?)
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut async_line = String::new();
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                let _ = child.kill();
                bail!(
                    "fnbox serve exited before listening; see {}",
                    tmp.join("serve.stderr").display()
                );
            }
            if line.starts_with("async invocations:") {
                async_line = line.trim().to_string();
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        };
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        Ok(Self {
            pid: child.id() as i32,
            child: Some(child),
            addr,
            async_line,
        })
    }

    /// A handle on a server another owner runs (for its address and pid only).
    fn attach(pid: i32, addr: &str) -> Self {
        Self {
            child: None,
            pid,
            addr: addr.to_string(),
            async_line: String::new(),
        }
    }

    fn pid(&self) -> i32 {
        self.pid
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn signal(&self, sig: libc::c_int) {
        if self.child.is_none() {
            return;
        }
        // SAFETY: kill(2) takes no pointers; the pid is our own unreaped child's.
        unsafe {
            libc::kill(self.pid, sig);
        }
    }

    /// SIGTERM and wait; the exit code.
    fn terminate(&mut self, within: Duration) -> anyhow::Result<Option<i32>> {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().context("not running")?;
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(st) = child.try_wait()? {
                return Ok(st.code());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(None)
    }

    fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.terminate(Duration::from_secs(30));
        }
    }
}

fn client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(http)
}

/// Posts `body`; the status (or the error's kind) and the `X-Cff-Function-Error`-free answer.
async fn post(client: &HttpClient, url: &str, body: &'static [u8]) -> (String, Bytes) {
    let req = match hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
    {
        Ok(r) => r,
        Err(e) => return (format!("bad request: {e}"), Bytes::new()),
    };
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16().to_string();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            (status, body)
        }
        Err(_) => ("connection error".into(), Bytes::new()),
    }
}

async fn load(
    args: &SoakArgs,
    serve: &Server,
    load_for: Duration,
    tmp: &Path,
    tally: Arc<Mutex<Tally>>,
    done: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let end = Instant::now() + load_for;
    let sync_url = serve.url("/v2/soak/fgs/functions/soak/invocations");
    let async_url = serve.url("/v2/soak/fgs/functions/soak/invocations-async");
    let oom_url = serve.url("/v2/soak/fgs/functions/soak-oom/invocations");
    let per_client = Duration::from_secs_f64(args.clients as f64 / args.rate.max(1) as f64);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let (client, sync_url, async_url, tally, done) = (
            client(),
            sync_url.clone(),
            async_url.clone(),
            tally.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(per_client);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = c as u64;
            while Instant::now() < end {
                tick.tick().await;
                i += 1;
                let asynchronous = i % 100 == 0 || i == 50;
                let t = Instant::now();
                let (status, _) = if asynchronous {
                    post(&client, &async_url, b"{\"async\":true}").await
                } else {
                    post(&client, &sync_url, b"{\"soak\":true}").await
                };
                let took = t.elapsed();
                let mut t = tally.lock().unwrap();
                if asynchronous && status == "202" {
                    t.async_accepted += 1;
                }
                *t.by_status.entry(status).or_default() += 1;
                t.slowest = t.slowest.max(took);
                drop(t);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Chaos.
    let (chaos_tally, pid, tmp_dir) = (tally.clone(), serve.pid(), tmp.to_path_buf());
    let every = Duration::from_secs(args.chaos_every.max(1));
    let chaos = tokio::spawn(async move {
        let client = client();
        let mut n = 0u64;
        let mut seed = pid as u64 ^ 0x9e37_79b9_7f4a_7c15;
        loop {
            tokio::time::sleep(every.min(end.saturating_duration_since(Instant::now()))).await;
            if Instant::now() >= end {
                return;
            }
            n += 1;
            if n % 3 == 0 {
                let (status, body) = post(&client, &oom_url, b"{}").await;
                let kind = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.get("errorType")
                            .and_then(|t| t.as_str())
                            .map(String::from)
                    })
                    .unwrap_or_else(|| format!("status {status}"));
                *chaos_tally
                    .lock()
                    .unwrap()
                    .oom_answers
                    .entry(kind)
                    .or_default() += 1;
                continue;
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let victims = instance_processes(&tmp_dir);
            if victims.is_empty() {
                continue;
            }
            let victim = victims[(seed % victims.len() as u64) as usize];
            // SAFETY: kill(2) takes no pointers; the pid was read from /proc just now (it may
            // have exited since: then kill fails with ESRCH, which is fine).
            if unsafe { libc::kill(victim, libc::SIGKILL) } == 0 {
                chaos_tally.lock().unwrap().kills += 1;
            }
        }
    });
    // Samples.
    let start = Instant::now();
    let mut last = done.load(Ordering::Relaxed);
    let sample = Duration::from_secs(args.sample_every.max(1));
    while Instant::now() < end {
        tokio::time::sleep(sample.min(end.saturating_duration_since(Instant::now()))).await;
        let now = done.load(Ordering::Relaxed);
        if args.sample_every >= load_for.as_secs() {
            break; // no sampling asked for this run
        }
        println!(
            "t={:>5.0}s  fnbox rss {:>6.1} MB  fds {:>4}  {:>6.0} inv/s",
            start.elapsed().as_secs_f64(),
            rss_kib(serve.pid()) as f64 / 1024.0,
            fd_count(serve.pid()),
            (now - last) as f64 / sample.as_secs_f64()
        );
        last = now;
    }
    for t in tasks {
        t.await?;
    }
    chaos.await?;
    Ok(())
}

/// Polls `/metrics` until no async invocation is queued or running.
/// Waits until `/metrics` says nothing is queued or running. fnbox serve samples the queue's
/// depth every 5 s, so a reading is only trusted once a sample taken after the last accept can
/// be in it: an invocation accepted just before the load ended is otherwise missed by a stale
/// zero (the CI smoke once saw "1 queued" at the restart after a drained-looking wait).
async fn wait_async_drained(serve: &Server, within: Duration) -> bool {
    let client = client();
    let end = Instant::now() + within;
    tokio::time::sleep(SERVE_DEPTH_SAMPLE + Duration::from_secs(1)).await;
    while Instant::now() < end {
        let req = hyper::Request::get(serve.url("/metrics")).body(Full::new(Bytes::new()));
        if let Ok(req) = req {
            if let Ok(resp) = client.request(req).await {
                if let Ok(body) = resp.into_body().collect().await {
                    let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                    let pending = text.lines().any(|l| {
                        l.starts_with("fnbox_async_invocations{")
                            && (l.contains("\"queued\"") || l.contains("\"running\""))
                            && !l.trim_end().ends_with(" 0")
                    });
                    if !pending && text.contains("fnbox_async_invocations{") {
                        return true;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

/// `fnbox serve`'s async depth sampling period (`ASYNC_DEPTH_EVERY` in fnbox-cli).
const SERVE_DEPTH_SAMPLE: Duration = Duration::from_secs(5);

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Runtime and extension processes of the soak's packages (their cwd or command line is in
/// the run's directory), never fnbox itself.
fn instance_processes(tmp: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let tmp_s = tmp.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|p| p.starts_with(tmp))
                .unwrap_or(false);
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&tmp_s))
                .unwrap_or(false);
            let is_serve = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == b"serve"))
                .unwrap_or(false);
            (cwd || cmd) && !is_serve
        })
        .collect()
}

/// What a stopped fnbox left.
struct Left {
    processes: Vec<i32>,
    groups: Vec<PathBuf>,
}

impl Left {
    fn is_empty(&self) -> bool {
        self.processes.is_empty() && self.groups.is_empty()
    }
}

impl std::fmt::Display for Left {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} process(es) left {:?}, {} memory group(s) left {:?} (network namespaces live only in processes)",
            self.processes.len(),
            self.processes,
            self.groups.len(),
            self.groups
        )
    }
}

fn leftovers(tmp: &Path, serve_pid: i32) -> Left {
    Left {
        processes: instance_processes(tmp),
        groups: memory_groups_of(serve_pid),
    }
}

/// Memory groups (fnbox-limits: `<base>/fnbox/<pid>-<start>/<group>`) of the fnbox run `pid`.
fn memory_groups_of(pid: i32) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name() == "fnbox" {
                for run in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                    let name = run.file_name().to_string_lossy().into_owned();
                    if name.starts_with(&format!("{pid}-")) {
                        found.push(run.path());
                    }
                }
            } else if depth < 3 {
                stack.push((p, depth + 1));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::parse_finished;

    #[test]
    fn the_start_up_count_line_gives_finished() {
        let line = "async invocations: /d/async.sqlite3 (0 queued, 12 succeeded, 3 failed; 0 interrupted by the last stop put back in the queue)";
        assert_eq!(parse_finished(line), Some(15));
        let line = "async invocations: /d/async.sqlite3 (2 queued, 12 succeeded, 3 failed; 2 interrupted by the last stop put back in the queue)";
        assert_eq!(parse_finished(line), None);
    }
}
