//! The store on its own: start-up checks, limits, schema, recovery, listing.

#[macro_use]
mod common;

use common::Queue;

use std::io::Write;

use bytes::Bytes;
use fnbox_async::{
    AsyncState, AsyncStore, AttemptOutcome, InvokeSource, ListFilter, StoreError, DB_FILE_NAME,
    INTERRUPTED_ERROR, MAX_PAYLOAD, SCHEMA_VERSION,
};

fn raw(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(DB_FILE_NAME)).unwrap()
}

#[tokio::test]
async fn enqueue_commits_before_returning_and_status_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::open(dir.path()).unwrap();
    store
        .enqueue(
            "hello",
            "req-1",
            Bytes::from_static(b"{\"k\":\"v\"}"),
            InvokeSource::FunctionGraph,
        )
        .await
        .unwrap();
    // Visible to another connection (another process would see the same): it is committed.
    let n: i64 = raw(dir.path())
        .query_row(
            "SELECT COUNT(*) FROM invocations WHERE request_id = 'req-1' AND state = 'queued'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    let s = store.status("req-1").await.unwrap().expect("status");
    assert_eq!(s.state, AsyncState::Queued);
    assert_eq!(s.function, "hello");
    assert_eq!(s.source, InvokeSource::FunctionGraph);
    assert_eq!(s.attempts, 0);
    assert_eq!(s.payload_size, 9);
    assert_eq!(s.fg_status(), "WAIT");
    assert!(s.next_attempt_at_ms.is_some());
    assert!(store.status("nope").await.unwrap().is_none());
    let json = s.to_json();
    assert_eq!(json["state"], "queued");
    assert_eq!(json["status"], "WAIT");

    // WAL and FULL sync are in force.
    let conn = raw(dir.path());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

async fn payload_limit_is_256_kib(q: Queue) {
    let (store, _q) = q.open().await;
    assert_eq!(MAX_PAYLOAD, 256 * 1024);
    store
        .enqueue(
            "f",
            "at-limit",
            Bytes::from(vec![b'a'; MAX_PAYLOAD]),
            InvokeSource::Lambda,
        )
        .await
        .expect("exactly 256 KiB is accepted");
    let err = store
        .enqueue(
            "f",
            "over",
            Bytes::from(vec![b'a'; MAX_PAYLOAD + 1]),
            InvokeSource::Lambda,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PayloadTooLarge { size, limit } if size == MAX_PAYLOAD + 1 && limit == MAX_PAYLOAD),
        "{err}"
    );
    assert!(
        store.status("over").await.unwrap().is_none(),
        "nothing stored"
    );
    assert_eq!(
        store
            .status("at-limit")
            .await
            .unwrap()
            .unwrap()
            .payload_size,
        MAX_PAYLOAD
    );
}

async fn duplicate_and_invalid_request_ids_are_refused(q: Queue) {
    let (store, _q) = q.open().await;
    store
        .enqueue("f", "same", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap();
    let err = store
        .enqueue("f", "same", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateRequestId(ref id) if id == "same"),
        "{err}"
    );
    let err = store
        .enqueue("f", "", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequestId(_)), "{err}");
}

/// Root ignores permission bits, so `chmod 0555` would not stop a write in CI (which runs as
/// root). A data dir *under a regular file* cannot be created by anyone: `mkdir` fails with
/// ENOTDIR for root too.
#[test]
fn unwritable_data_dir_is_a_clear_start_up_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let data_dir = file.path().join("sub");
    let err = AsyncStore::open(&data_dir).unwrap_err();
    eprintln!("start-up error: {err}");
    assert!(
        matches!(err, StoreError::DataDirUnwritable { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&data_dir.display().to_string()), "{msg}");
    assert!(msg.contains("must be a writable directory"), "{msg}");

    // The data dir is itself a regular file.
    let err = AsyncStore::open(file.path()).unwrap_err();
    eprintln!("start-up error: {err}");
    assert!(
        matches!(err, StoreError::DataDirUnwritable { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&file.path().display().to_string()));

    // The database path is taken by a directory: SQLite cannot open it, for root too.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(DB_FILE_NAME)).unwrap();
    let err = AsyncStore::open(dir.path()).unwrap_err();
    eprintln!("start-up error: {err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().join(DB_FILE_NAME).display().to_string()),
        "{msg}"
    );
}

#[test]
fn corrupt_database_is_a_clear_start_up_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    // Random bytes (a fixed pseudo-random sequence, so failures reproduce).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..16384)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    let err = AsyncStore::open(dir.path()).unwrap_err();
    eprintln!("start-up error: {err}");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("corrupt"), "{msg}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file is not touched"
    );
}

#[tokio::test]
async fn damaged_pages_are_caught_by_the_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = AsyncStore::open(dir.path()).unwrap();
        for i in 0..200 {
            store
                .enqueue(
                    "f",
                    &format!("r{i}"),
                    Bytes::from(vec![b'x'; 2000]),
                    InvokeSource::Cli,
                )
                .await
                .unwrap();
        }
    }
    // Fold the WAL into the main file, then scribble over a page in the middle.
    {
        let conn = raw(dir.path());
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let path = dir.path().join(DB_FILE_NAME);
    let mut data = std::fs::read(&path).unwrap();
    let page = 4096;
    assert!(data.len() > 40 * page);
    for b in &mut data[20 * page..21 * page] {
        *b = 0xA5;
    }
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let err = AsyncStore::open(dir.path()).unwrap_err();
    eprintln!("start-up error: {err}");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_second_fnbox_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = AsyncStore::open(dir.path()).unwrap();
    let err = AsyncStore::open(dir.path()).unwrap_err();
    eprintln!("start-up error: {err}");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&first.location()), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "names the holder: {msg}"
    );
    drop(first);
    AsyncStore::open(dir.path()).expect("free again once the first closed");
}

#[test]
fn schema_is_versioned_and_a_newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(AsyncStore::open(dir.path()).unwrap());
    let v: i64 = raw(dir.path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    // Re-opening at the same version migrates nothing and works.
    drop(AsyncStore::open(dir.path()).unwrap());

    raw(dir.path())
        .execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    let err = AsyncStore::open(dir.path()).unwrap_err();
    eprintln!("start-up error: {err}");
    assert!(
        matches!(err, StoreError::TooNew { found, supported, .. } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer than this fnbox"), "{err}");
}

#[tokio::test]
async fn invocations_left_running_are_requeued_at_open_with_the_attempt_counted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = AsyncStore::open(dir.path()).unwrap();
        for id in ["a", "b", "c"] {
            store
                .enqueue("f", id, Bytes::new(), InvokeSource::FunctionGraph)
                .await
                .unwrap();
        }
    }
    // As a killed fnbox leaves them: two claimed, one done.
    raw(dir.path())
        .execute_batch(
            "UPDATE invocations SET state = 'running', started_at_ms = 1 WHERE request_id IN ('a', 'b');
             UPDATE invocations SET state = 'succeeded', attempts = 1, finished_at_ms = 2,
                 condition = 'Success' WHERE request_id = 'c';",
        )
        .unwrap();
    let store = AsyncStore::open(dir.path()).unwrap();
    assert_eq!(store.recovered_at_open(), 2);
    for id in ["a", "b"] {
        let s = store.status(id).await.unwrap().unwrap();
        assert_eq!(s.state, AsyncState::Queued, "{id}");
        assert_eq!(s.attempts, 1);
        assert_eq!(s.interrupts, 1);
        assert_eq!(s.last_error.as_deref(), Some(INTERRUPTED_ERROR));
        assert_eq!(s.history.len(), 1);
        assert_eq!(s.history[0].outcome, AttemptOutcome::Interrupted);
        assert_eq!(s.history[0].attempt, 1);
    }
    let c = store.status("c").await.unwrap().unwrap();
    assert_eq!(c.state, AsyncState::Succeeded, "done stays done");
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.queued, counts.running, counts.succeeded), (2, 0, 1));
}

async fn list_filters_and_pages_like_functiongraph(q: Queue) {
    let (store, _q) = q.open().await;
    for i in 0..5 {
        store
            .enqueue(
                "f",
                &format!("f{i}"),
                Bytes::new(),
                InvokeSource::FunctionGraph,
            )
            .await
            .unwrap();
    }
    store
        .enqueue("g", "g0", Bytes::new(), InvokeSource::FunctionGraph)
        .await
        .unwrap();
    let page = store
        .list(ListFilter {
            function: Some("f".into()),
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.count, 5);
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].request_id, "f4", "newest first");
    assert_eq!(page.next_marker, 2);
    let entry = page.items[0].to_fg_list_entry();
    assert_eq!(entry["status"], "WAIT");
    assert_eq!(entry["error_code"], 0);
    assert_eq!(entry["request_id"], "f4");
    let one = store
        .list(ListFilter {
            request_id: Some("g0".into()),
            state: Some(AsyncState::Queued),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.count, 1);
    assert_eq!(one.items[0].function, "g");
    let json = page.to_fg_json();
    assert_eq!(json["count"], 5);
    assert_eq!(json["next_marker"], 2);
    assert_eq!(json["invocations"].as_array().unwrap().len(), 2);
    assert_eq!(
        fnbox_async::parse_fg_time("2024-03-14T10:00:00"),
        Some(1_710_410_400_000)
    );
    assert_eq!(fnbox_async::parse_fg_time("yesterday"), None);
}

async fn depth_by_function_counts_what_waits_per_function(q: Queue) {
    let (store, _q) = q.open().await;
    assert_eq!(store.depth_by_function().await.unwrap(), vec![]);
    for (function, id) in [("g", "g0"), ("f", "f0"), ("f", "f1"), ("f", "f2")] {
        store
            .enqueue(function, id, Bytes::new(), InvokeSource::FunctionGraph)
            .await
            .unwrap();
    }
    let depth = store.depth_by_function().await.unwrap();
    let got: Vec<_> = depth
        .iter()
        .map(|d| (d.function.as_str(), d.queued, d.running))
        .collect();
    assert_eq!(got, vec![("f", 3, 0), ("g", 1, 0)]);
}

#[tokio::test]
async fn depth_by_function_counts_running_and_leaves_finished_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = AsyncStore::open(dir.path()).unwrap();
    for (function, id) in [("f", "a"), ("f", "b"), ("g", "c"), ("h", "d")] {
        store
            .enqueue(function, id, Bytes::new(), InvokeSource::FunctionGraph)
            .await
            .unwrap();
    }
    // One attempt in flight for f, g's only row finished, h untouched.
    raw(dir.path())
        .execute_batch(
            "UPDATE invocations SET state = 'running', started_at_ms = 1 WHERE request_id = 'a';
             UPDATE invocations SET state = 'succeeded', attempts = 1, finished_at_ms = 2,
                 condition = 'Success' WHERE request_id = 'c';",
        )
        .unwrap();
    let depth = store.depth_by_function().await.unwrap();
    let got: Vec<_> = depth
        .iter()
        .map(|d| (d.function.as_str(), d.queued, d.running))
        .collect();
    assert_eq!(got, vec![("f", 1, 1), ("h", 1, 0)]);
}

both!(
    depth_by_function_counts_what_waits_per_function,
    payload_limit_is_256_kib,
    duplicate_and_invalid_request_ids_are_refused,
    list_filters_and_pages_like_functiongraph,
);
