//! A real Prometheus (Debian's `prometheus` package, installed by `.ci/run`) scrapes
//! `fnbox serve`'s `GET /metrics` and its HTTP API reads the counters and the duration
//! histogram back; `/metrics` sits behind the token like every route.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fnbox_testkit::serve::Serve;
use fnbox_testkit::{http, FixturePackage};

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

const OK: &str = r#"
while next; do
  respond "$REQUEST_ID" '{"ok":true}'
done
"#;

/// Prometheus, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Starts Prometheus on a loopback port with a temporary config and data dir, scraping
/// `target` every second.
async fn prometheus(target: &str) -> Prometheus {
    let bin = which("prometheus").unwrap_or_else(|| {
        panic!("prometheus is not installed: apt-get install prometheus (Debian; .ci/run does it)")
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: fnbox\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port().await);
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let p = Prometheus {
        child,
        addr,
        _dir: dir,
    };
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut ready = false;
    while !ready && tokio::time::Instant::now() < end {
        ready = tokio::net::TcpStream::connect(p.addr.as_str())
            .await
            .is_ok();
        if !ready {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(ready, "prometheus did not listen on {}", p.addr);
    p
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The value of the single series `query` returns, polled until it equals `want` (30 s).
async fn query_until(prom: &Prometheus, query: &str, want: f64) -> f64 {
    let mut last = f64::NAN;
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < end {
        let url = format!(
            "http://{}/api/v1/query?query={}",
            prom.addr,
            query
                .bytes()
                .map(|b| if b.is_ascii_alphanumeric() || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                })
                .collect::<String>()
        );
        if let Ok(r) = http::send("GET", &url, &[], "", Duration::from_secs(5)).await {
            let v = r.json();
            if let Some(s) = v["data"]["result"][0]["value"][1].as_str() {
                last = s.parse().unwrap_or(f64::NAN);
                if last == want {
                    return last;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_fnbox_and_reads_the_counters_back() {
    let pkg = FixturePackage::bash("func_name: scraped\n", OK);
    let path = pkg.path().to_str().unwrap().to_string();
    let s = tokio::task::block_in_place(|| Serve::start(FNBOX, &[&path]));
    let prom = prometheus(&s.addr.to_string()).await;
    for _ in 0..5 {
        let r = http::send(
            "POST",
            &format!("{}/v2/local/fgs/functions/scraped/invocations", s.url()),
            &[],
            "{}",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(r.code(), 200, "{}", r.text());
    }
    let n = query_until(&prom, "faas_invocations_total{faas_name=\"scraped\"}", 5.0).await;
    assert_eq!(n, 5.0, "faas_invocations_total");
    let n = query_until(
        &prom,
        "faas_invoke_duration_seconds_count{faas_name=\"scraped\"}",
        5.0,
    )
    .await;
    assert_eq!(n, 5.0, "faas_invoke_duration_seconds_count");
    // Every invocation took less than 10 s: all 5 are in the le="10" bucket.
    let n = query_until(
        &prom,
        "faas_invoke_duration_seconds_bucket{faas_name=\"scraped\",le=\"10.0\"}",
        5.0,
    )
    .await;
    assert_eq!(n, 5.0, "faas_invoke_duration_seconds_bucket");
    let up = query_until(&prom, "up{job=\"fnbox\"}", 1.0).await;
    assert_eq!(up, 1.0);
    // The async queue's depth is exported too (sampled by the server; nothing is queued).
    for state in ["queued", "running"] {
        let q = format!("fnbox_async_invocations{{state=\"{state}\"}}");
        assert_eq!(query_until(&prom, &q, 0.0).await, 0.0, "{q}");
    }
    tokio::task::block_in_place(|| s.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_when_one_is_set() {
    let pkg = FixturePackage::bash("func_name: guarded\n", OK);
    let path = pkg.path().to_str().unwrap().to_string();
    let s = tokio::task::block_in_place(|| Serve::start(FNBOX, &[&path, "--token", "s3cret"]));
    let url = format!("{}/metrics", s.url());
    let r = http::send("GET", &url, &[], "", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.code(), 401, "{}", r.text());
    let r = http::send(
        "GET",
        &url,
        &[("X-Auth-Token", "s3cret")],
        "",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(r.code(), 200);
    assert!(
        r.text().contains("fnbox_observations_lost_total 0"),
        "{}",
        r.text()
    );
    tokio::task::block_in_place(|| s.stop());
}
