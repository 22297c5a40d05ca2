//! Several `fnbox serve` nodes on one PostgreSQL queue (issue 17), with the real binary and a
//! real PostgreSQL server (`fnbox_testkit::pg`, Debian's `postgresql`):
//! - throughput with 1, 2 and 3 nodes (printed: accepted/s, completed/s);
//! - 1,000 async invocations accepted through three nodes, one SIGKILLed mid-way: every
//!   invocation succeeds, none is lost, each ran once per recorded attempt, the killed node's
//!   attempts were taken over after the lease, any node's status route reports every one;
//! - start-up errors naming the URL with the password redacted;
//! - the database going away while serving: 503, never a lost 202, and recovery.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use fnbox_testkit::pg::Postgres;
use fnbox_testkit::serve::Serve;
use fnbox_testkit::{http, FixturePackage};
use nix::sys::signal::Signal;
use tokio::time::Instant;

const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

/// Records each run in `runs.log` (in the package dir, shared by the nodes), then answers.
/// Invocations 400..480 (the ones sent while waiting for node 2 to hold an attempt) take
/// 0.5 s, so the attempt the test sees running is still running when the SIGKILL lands; the
/// others answer at once.
const WORK: &str = r#"
while next; do
  echo "$REQUEST_ID" >> runs.log
  case "$BODY" in *'"i":4'[0-7][0-9]'}'*) sleep 0.5 ;; esac
  respond "$REQUEST_ID" '{"ok":true}'
done
"#;

fn package() -> FixturePackage {
    FixturePackage::bash("func_name: work\ntimeout: 10\nmax_instances: 4\n", WORK)
}

/// `n` nodes on `url`, with a short lease. Started on this (runtime) thread: a served
/// process gets SIGTERM when the thread that started it ends, so not on a blocking-pool
/// thread that may retire mid-test.
async fn nodes(pkg: &FixturePackage, url: &str, n: usize, lease: &str) -> Vec<Serve> {
    let pkg = pkg.path().to_str().unwrap();
    tokio::task::block_in_place(|| {
        (0..n)
            .map(|_| {
                // The nodes' runs meet in one file of the package directory, which containment
                // makes read-only (and per-instance /tmp private): this test counts runs across
                // servers, not containment.
                Serve::start_with_env(
                    FNBOX,
                    &[pkg, "--queue", url, "--queue-lease", lease],
                    &[("FNBOX_CONTAINMENT", "off")],
                )
            })
            .collect()
    })
}

/// Accepts one async invocation through `addr`; its request id.
async fn accept(addr: SocketAddr, i: usize) -> Result<String, (u16, String)> {
    let r = http::post(
        addr,
        "/v2/p/fgs/functions/work/invocations-async",
        format!("{{\"i\":{i}}}"),
    )
    .await
    .map_err(|e| (0, e.to_string()))?;
    if r.code() != 202 {
        return Err((r.code(), r.text()));
    }
    Ok(r.json()["request_id"].as_str().unwrap().to_string())
}

/// Accepts `count` invocations round-robin through `addrs`, 24 at a time.
async fn accept_all(addrs: &[SocketAddr], range: std::ops::Range<usize>) -> Vec<String> {
    let mut ids = Vec::new();
    let all: Vec<usize> = range.collect();
    for chunk in all.chunks(24) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| tokio::spawn(accept(addrs[i % addrs.len()], i)))
            .collect();
        for t in tasks {
            ids.push(t.await.unwrap().expect("202"));
        }
    }
    ids
}

/// FunctionGraph's list route: how many invocations have `status`.
async fn count(addr: SocketAddr, status: &str) -> u64 {
    let r = http::get(
        addr,
        &format!("/v2/p/fgs/functions/work/async-invocations?status={status}&limit=1"),
    )
    .await
    .unwrap();
    assert_eq!(r.code(), 200, "{}", r.text());
    r.json()["count"].as_u64().unwrap()
}

async fn wait_succeeded(addr: SocketAddr, n: u64, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let done = count(addr, "SUCCESS").await;
        if done >= n {
            assert_eq!(done, n);
            return;
        }
        assert!(
            Instant::now() < end,
            "only {done} of {n} succeeded in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server of the test's own, started on this thread (see [`nodes`]).
async fn start_pg() -> Postgres {
    tokio::task::block_in_place(Postgres::start)
}

async fn psql(pg: &Postgres, db: &str, sql: &str) -> String {
    // Synchronous and short: a psql child process.
    tokio::task::block_in_place(|| pg.psql(db, sql))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throughput_with_one_two_and_three_nodes() {
    let pg = start_pg().await;
    let pkg = package();
    const N: usize = 300;
    for n in 1..=3 {
        let db = format!("tp{n}");
        psql(&pg, "postgres", &format!("CREATE DATABASE {db}")).await;
        let url = pg.url(&db);
        let serves = nodes(&pkg, &url, n, "5s").await;
        let addrs: Vec<_> = serves.iter().map(|s| s.addr).collect();
        let t0 = Instant::now();
        let ids = accept_all(&addrs, 0..N).await;
        let accepted = t0.elapsed();
        wait_succeeded(addrs[0], N as u64, Duration::from_secs(120)).await;
        let completed = t0.elapsed();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), N);
        println!(
            "queue throughput, {n} node(s), {N} async invocations: accepted {:.0}/s, completed {:.0}/s",
            N as f64 / accepted.as_secs_f64(),
            N as f64 / completed.as_secs_f64()
        );
        tokio::task::block_in_place(|| serves.into_iter().for_each(Serve::stop));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_killed_every_invocation_succeeds_once_per_attempt() {
    const N: usize = 1000;
    const LEASE_MS: i64 = 1000;
    let pg = start_pg().await;
    psql(&pg, "postgres", "CREATE DATABASE multi").await;
    let url = pg.url("multi");
    let pkg = package();
    let mut serves = nodes(&pkg, &url, 3, "1s").await;
    let addrs: Vec<_> = serves.iter().map(|s| s.addr).collect();
    let t0 = Instant::now();

    // The first 400 through all three nodes.
    let mut ids = accept_all(&addrs, 0..400).await;
    // Kill node 2 while it holds attempts (its claims are owned by "<pid>-…").
    let victim = serves.remove(2);
    let pid = victim.child.id();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let mine = psql(
            &pg,
            "multi",
            &format!(
                "SELECT count(*) FROM invocations WHERE state = 'running' AND owner LIKE '{pid}-%'"
            ),
        )
        .await;
        if mine != "0" {
            break;
        }
        // Keep it busy: more work through all three.
        let next = ids.len();
        if next < 700 {
            ids.extend(accept_all(&addrs, next..next + 24).await);
        }
        assert!(Instant::now() < end, "node 2 never held an attempt");
    }
    victim.signal(Signal::SIGKILL);
    let killed_at_ms = psql(
        &pg,
        "multi",
        "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint",
    )
    .await
    .parse::<i64>()
    .unwrap();
    let (code, _) = tokio::task::block_in_place(|| victim.wait(Duration::from_secs(10)));
    assert_eq!(code, None, "killed by a signal");
    // The rest through the two survivors.
    let survivors: Vec<_> = serves.iter().map(|s| s.addr).collect();
    let next = ids.len();
    ids.extend(accept_all(&survivors, next..N).await);
    let accepted = t0.elapsed();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), N, "unique ids");

    wait_succeeded(survivors[0], N as u64, Duration::from_secs(120)).await;
    let completed = t0.elapsed();
    println!(
        "queue: {N} async invocations through 3 nodes, one SIGKILLed: accepted {:.0}/s, completed {:.0}/s",
        N as f64 / accepted.as_secs_f64(),
        N as f64 / completed.as_secs_f64()
    );

    // Any node's status route reports every invocation, succeeded; attempts = one success
    // plus the interrupted ones.
    let mut interrupted = 0;
    for (k, id) in ids.iter().enumerate() {
        let r = http::get(
            survivors[k % survivors.len()],
            &format!("/v2/p/fgs/functions/work/async-invocations/{id}"),
        )
        .await
        .unwrap();
        assert_eq!(r.code(), 200, "{id}: {}", r.text());
        let v = r.json();
        assert_eq!(v["state"], "succeeded", "{v}");
        let outcomes: Vec<&str> = v["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes.last(), Some(&"success"), "{v}");
        assert!(
            outcomes[..outcomes.len() - 1]
                .iter()
                .all(|o| *o == "interrupted"),
            "{v}"
        );
        assert_eq!(v["attempts"], outcomes.len(), "{v}");
        interrupted += outcomes.len() - 1;
    }
    assert!(
        interrupted >= 1,
        "the killed node's attempts were taken over"
    );
    // Taken over only after the lease: the victim renewed its leases every third of it, so
    // the last renewal was at most a third before the kill.
    let early = psql(
        &pg,
        "multi",
        &format!(
            "SELECT count(*) FROM attempts WHERE outcome = 'interrupted' AND ended_at_ms < {}",
            killed_at_ms + LEASE_MS * 2 / 3 - 50
        ),
    )
    .await;
    assert_eq!(early, "0", "no takeover before the lease ran out");

    // Each ran once per recorded attempt: at least once, at most its attempts, and exactly
    // once when nothing interrupted it.
    let log = std::fs::read_to_string(pkg.path().join("runs.log")).unwrap();
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for line in log.lines() {
        *runs.entry(line.trim()).or_default() += 1;
    }
    let attempts: HashMap<String, usize> = psql(
        &pg,
        "multi",
        "SELECT request_id || ' ' || attempts FROM invocations",
    )
    .await
    .lines()
    .map(|l| {
        let (id, n) = l.split_once(' ').unwrap();
        (id.to_string(), n.parse().unwrap())
    })
    .collect();
    assert_eq!(attempts.len(), N);
    for id in &ids {
        let ran = runs.get(id.as_str()).copied().unwrap_or(0);
        let recorded = attempts[id];
        assert!(
            ran >= 1 && ran <= recorded,
            "{id}: ran {ran}, recorded {recorded}"
        );
        if recorded == 1 {
            assert_eq!(ran, 1, "{id} ran more often than recorded");
        }
    }
    println!("queue: {interrupted} attempt(s) of the killed node re-run by the others");
    tokio::task::block_in_place(|| serves.into_iter().for_each(Serve::stop));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queue_urls_fail_at_start_with_the_url_redacted() {
    let pkg = package();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://fnbox:hunter2@127.0.0.1:{port}/queue");
    let out = tokio::process::Command::new(FNBOX)
        .args([
            "serve",
            pkg.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--queue", &url])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("postgres://fnbox:***@127.0.0.1:{port}/queue")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let out = tokio::process::Command::new(FNBOX)
        .args([
            "serve",
            pkg.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--queue", "mysql://u:secret@h/db"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--queue: must be a PostgreSQL URL"), "{err}");
    assert!(!err.contains("secret"), "{err}");

    // A database with a newer schema.
    let pg = start_pg().await;
    psql(&pg, "postgres", "CREATE DATABASE newer").await;
    psql(
        &pg,
        "newer",
        "CREATE TABLE fnbox_schema_version (version INTEGER NOT NULL); \
         INSERT INTO fnbox_schema_version VALUES (42)",
    )
    .await;
    let out = tokio::process::Command::new(FNBOX)
        .args([
            "serve",
            pkg.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--queue", &pg.url("newer")])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("schema version 42"), "{err}");
    assert!(err.contains(":***@127.0.0.1"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_and_the_node_recovers() {
    let mut pg = start_pg().await;
    let pkg = package();
    let url = pg.url("postgres");
    let serves = nodes(&pkg, &url, 1, "2s").await;
    let addr = serves[0].addr;
    let before = accept(addr, 0).await.expect("202 while the database is up");

    tokio::task::block_in_place(|| pg.stop());
    let (code, body) = accept(addr, 1)
        .await
        .expect_err("no 202 without the database");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("FSS.0503") && body.contains("unavailable"),
        "{body}"
    );
    assert!(!body.contains("s3cret"), "{body}");

    tokio::task::block_in_place(|| pg.resume());
    let end = Instant::now() + Duration::from_secs(20);
    let after = loop {
        match accept(addr, 2).await {
            Ok(id) => break id,
            Err((503, _)) if Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("not recovered: {e:?}"),
        }
    };
    wait_succeeded(addr, 2, Duration::from_secs(30)).await;
    for id in [before, after] {
        let r = http::get(
            addr,
            &format!("/v2/p/fgs/functions/work/async-invocations/{id}"),
        )
        .await
        .unwrap();
        assert_eq!(r.json()["state"], "succeeded", "{}", r.text());
    }
    assert_eq!(
        count(addr, "SUCCESS").await,
        2,
        "only the accepted ones exist"
    );
    tokio::task::block_in_place(|| serves.into_iter().for_each(Serve::stop));
}
