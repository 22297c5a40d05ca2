//! What only the PostgreSQL queue has: several nodes on one database, leases taken over from a
//! dead node, LISTEN/NOTIFY waking idle nodes, start-up errors naming the URL (password
//! redacted), and an outage while serving (refused, then recovered). Against a real server
//! (`fnbox_testkit::pg`, Debian's `postgresql`).

#[macro_use]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::{fast, wait_final, worker_settings, Fake, Running};
use fnbox_async::{
    AsyncState, AsyncStore, AttemptOutcome, InvokeSource, PgOptions, StoreError, INTERRUPTED_ERROR,
};
use fnbox_testkit::pg;
use tokio::time::Instant;

async fn database(hint: &'static str) -> String {
    tokio::task::spawn_blocking(move || pg::shared().create_database(hint))
        .await
        .unwrap()
}

fn db_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

async fn psql(url: &str, sql: &str) -> String {
    let (db, sql) = (db_name(url), sql.to_string());
    tokio::task::spawn_blocking(move || pg::shared().psql(&db, &sql))
        .await
        .unwrap()
}

fn short_lease() -> PgOptions {
    PgOptions {
        lease: Duration::from_millis(600),
        ..PgOptions::default()
    }
}

#[tokio::test]
async fn two_nodes_share_the_work_and_run_each_invocation_once() {
    let url = database("two_nodes").await;
    let a = AsyncStore::connect(&url, PgOptions::default())
        .await
        .unwrap();
    let b = AsyncStore::connect(&url, PgOptions::default())
        .await
        .unwrap();
    let (fa, fb) = (Fake::new(), Fake::new());
    fa.delay(Duration::from_millis(5));
    fb.delay(Duration::from_millis(5));
    let wa = Running::start(&a, &fa, worker_settings(fast(1)));
    let wb = Running::start(&b, &fb, worker_settings(fast(1)));
    for i in 0..200 {
        let via = if i % 2 == 0 { &a } else { &b };
        via.enqueue(
            "f",
            &format!("r{i}"),
            Bytes::from(format!("{{\"i\":{i}}}")),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    }
    for i in 0..200 {
        let s = wait_final(&a, &format!("r{i}")).await;
        assert_eq!(s.state, AsyncState::Succeeded, "{s:?}");
        assert_eq!(s.attempts, 1);
    }
    let mut runs: HashMap<String, u32> = HashMap::new();
    for c in fa.calls().into_iter().chain(fb.calls()) {
        *runs.entry(c.request_id).or_default() += 1;
    }
    assert_eq!(runs.len(), 200);
    assert!(runs.values().all(|&n| n == 1), "each ran once: {runs:?}");
    assert!(
        !fa.calls().is_empty() && !fb.calls().is_empty(),
        "both nodes took work: {} and {}",
        fa.calls().len(),
        fb.calls().len()
    );
    let counts = b.counts().await.unwrap();
    assert_eq!(
        (counts.succeeded, counts.queued, counts.running),
        (200, 0, 0)
    );
    wa.stop().await;
    wb.stop().await;
}

#[tokio::test]
async fn a_dead_nodes_attempt_is_taken_over_after_its_lease_and_counted_interrupted() {
    let url = database("lease").await;
    let store = AsyncStore::connect(&url, short_lease()).await.unwrap();
    for id in ["dead", "alive"] {
        store
            .enqueue(
                "f",
                id,
                Bytes::from_static(b"{}"),
                InvokeSource::FunctionGraph,
            )
            .await
            .unwrap();
    }
    // As a node that claimed them and died (its lease over) / is alive (lease far ahead).
    psql(
        &url,
        "UPDATE invocations SET state = 'running', owner = 'gone-node', started_at_ms = 1,
             lease_until_ms = CASE request_id WHEN 'dead' THEN 1 ELSE 9000000000000 END",
    )
    .await;
    let fake = Fake::new();
    let w = Running::start(&store, &fake, worker_settings(fast(1)));
    let s = wait_final(&store, "dead").await;
    assert_eq!(s.state, AsyncState::Succeeded, "{s:?}");
    assert_eq!((s.attempts, s.interrupts), (2, 1));
    let outcomes: Vec<_> = s.history.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [AttemptOutcome::Interrupted, AttemptOutcome::Success]
    );
    assert_eq!(s.history[0].detail.as_deref(), Some(INTERRUPTED_ERROR));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let alive = store.status("alive").await.unwrap().unwrap();
    assert_eq!(
        alive.state,
        AsyncState::Running,
        "a live lease is not taken over"
    );
    assert!(fake.calls_for("alive").is_empty());
    w.stop().await;
}

#[tokio::test]
async fn a_node_that_lost_its_lease_records_nothing() {
    let url = database("lost_lease").await;
    let a = AsyncStore::connect(&url, short_lease()).await.unwrap();
    let fa = Fake::new();
    fa.delay(Duration::from_secs(3));
    let wa = Running::start(&a, &fa, worker_settings(fast(1)));
    a.enqueue(
        "f",
        "r1",
        Bytes::from_static(b"{}"),
        InvokeSource::FunctionGraph,
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fa.calls().is_empty() {
        assert!(Instant::now() < deadline, "node a never started r1");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another node took it over (as if a's renewals had not reached the database).
    psql(
        &url,
        "UPDATE invocations SET owner = 'other-node', lease_until_ms = 9000000000000",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let s = a.status("r1").await.unwrap().unwrap();
    assert_eq!(s.state, AsyncState::Running, "a did not end it: {s:?}");
    assert!(s.history.is_empty(), "{:?}", s.history);
    wa.stop().await;
}

#[tokio::test]
async fn an_idle_node_is_woken_by_notify_not_by_its_poll() {
    let url = database("notify").await;
    let front = AsyncStore::connect(&url, PgOptions::default())
        .await
        .unwrap();
    let idle = AsyncStore::connect(&url, PgOptions::default())
        .await
        .unwrap();
    let fake = Fake::new();
    let mut settings = worker_settings(fast(1));
    settings.poll_interval = Duration::from_secs(60);
    let w = Running::start(&idle, &fake, settings);
    // Let the idle worker go to sleep on an empty queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    front
        .enqueue(
            "f",
            "r1",
            Bytes::from_static(b"{}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    let s = wait_final(&front, "r1").await;
    assert_eq!(s.state, AsyncState::Succeeded);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "picked up in {:?} with a 60 s poll: the notification woke it",
        t0.elapsed()
    );
    assert_eq!(fake.calls().len(), 1);
    w.stop().await;
}

#[tokio::test]
async fn unreachable_database_fails_at_start_naming_the_url_without_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://fnbox:hunter2@127.0.0.1:{port}/queue");
    let err = AsyncStore::connect(&url, PgOptions::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Postgres { .. }), "{err:?}");
    assert!(
        msg.contains(&format!("postgres://fnbox:***@127.0.0.1:{port}/queue")),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("cannot connect"), "{msg}");

    let err = AsyncStore::connect("postgres://u:pw@127.0.0.1:notaport/q", PgOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a PostgreSQL connection URL"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_migrations_run_once() {
    let url = database("schema").await;
    // Several nodes starting together migrate once.
    let (a, b, c) = tokio::join!(
        AsyncStore::connect(&url, PgOptions::default()),
        AsyncStore::connect(&url, PgOptions::default()),
        AsyncStore::connect(&url, PgOptions::default()),
    );
    drop((a.unwrap(), b.unwrap(), c.unwrap()));
    assert_eq!(
        psql(&url, "SELECT version FROM fnbox_schema_version").await,
        fnbox_async::postgres::PG_SCHEMA_VERSION.to_string()
    );
    psql(&url, "UPDATE fnbox_schema_version SET version = 99").await;
    let err = AsyncStore::connect(&url, PgOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("postgres://postgres:***@127.0.0.1"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test]
async fn an_outage_refuses_accepts_and_the_node_recovers() {
    // Blocking calls on the test's (current-thread) runtime on purpose: the server stops when
    // the thread that started it ends, so it must be this one.
    let mut server = pg::Postgres::start();
    let url = server.url("postgres");
    let store = AsyncStore::connect(&url, short_lease()).await.unwrap();
    let fake = Fake::new();
    let w = Running::start(&store, &fake, worker_settings(fast(1)));
    store
        .enqueue(
            "f",
            "before",
            Bytes::from_static(b"{}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    assert_eq!(
        wait_final(&store, "before").await.state,
        AsyncState::Succeeded
    );

    server.stop();
    let err = store
        .enqueue(
            "f",
            "during",
            Bytes::from_static(b"{}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");

    server.resume();
    // The pool reconnects on the next use; allow a stale connection to fail once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store
            .enqueue(
                "f",
                "after",
                Bytes::from_static(b"{}"),
                InvokeSource::FunctionGraph,
            )
            .await
        {
            Ok(()) => break,
            Err(StoreError::Unavailable { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("not recovered: {e}"),
        }
    }
    assert_eq!(
        wait_final(&store, "after").await.state,
        AsyncState::Succeeded
    );
    assert!(
        store.status("during").await.unwrap().is_none(),
        "never accepted"
    );
    w.stop().await;
    drop(server);
}
