//! Test helper for `tests/crash.rs` (not installed, not part of fnbox): a miniature `fnbox
//! serve` that the test SIGKILLs and restarts on the same data dir.
//!
//! ```text
//! fnbox-async-crashtest <data_dir> <log_file> <run_tag> <enqueue_count> <id_prefix>
//! ```
//! Opens the store, starts the worker with a fake invoker, enqueues `enqueue_count`
//! invocations (ids `<id_prefix>-NNNN`, alternating functions `fa` and `fb`) while the worker
//! runs, and exits 0 once nothing is queued or running. It appends one line per event to
//! `log_file`, each with a single `write` on an `O_APPEND` file (so a SIGKILL never leaves half a
//! line, and lines survive the kill in the page cache):
//! - `accepted <id> <run> <ms>` after `enqueue` returned (the moment serve would answer 202);
//! - `start <id> <run> <ms>` when the fake function starts;
//! - `done <id> <run> <ms>` when it has finished its work, before the worker records it.
//!
//! Settings: FunctionGraph's default of one attempt (interruptions do not use it), at most
//! [`CONCURRENCY`] invocations per function in flight, [`WORK`] of "work" per invocation.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fnbox_async::{
    AsyncStore, AsyncWorker, FunctionSettings, InvokeAttempt, InvokeSource, Invoker, WorkerSettings,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// In-flight invocations per function.
const CONCURRENCY: u32 = 4;
/// Time each fake invocation takes.
const WORK: Duration = Duration::from_millis(30);

struct Log(File);

impl Log {
    fn line(&self, kind: &str, id: &str, run: &str) {
        let ms = fnbox_async::store::now_ms();
        let line = format!("{kind} {id} {run} {ms}\n");
        // One write(2) of a short line on an O_APPEND file: atomic, never interleaved.
        let _ = (&self.0).write_all(line.as_bytes());
    }
}

struct SlowEcho {
    log: Arc<Log>,
    run: String,
}

impl Invoker for SlowEcho {
    async fn invoke(&self, _function: &str, request_id: &str, payload: Bytes) -> InvokeAttempt {
        self.log.line("start", request_id, &self.run);
        tokio::time::sleep(WORK).await;
        self.log.line("done", request_id, &self.run);
        InvokeAttempt::Success(payload)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!(
            "usage: {} <data_dir> <log_file> <run_tag> <enqueue_count> <id_prefix>",
            args[0]
        );
        return ExitCode::from(64);
    }
    let data_dir = PathBuf::from(&args[1]);
    let run = args[3].clone();
    let Ok(count) = args[4].parse::<u32>() else {
        eprintln!("enqueue_count must be a number");
        return ExitCode::from(64);
    };
    let prefix = &args[5];
    let log = match OpenOptions::new().create(true).append(true).open(&args[2]) {
        Ok(f) => Arc::new(Log(f)),
        Err(e) => {
            eprintln!("cannot open log {}: {e}", args[2]);
            return ExitCode::from(2);
        }
    };
    let store = match AsyncStore::open(&data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    println!("opened recovered={}", store.recovered_at_open());

    let settings = WorkerSettings {
        default: FunctionSettings {
            max_concurrency: CONCURRENCY,
            max_interrupted_attempts: 10,
            ..FunctionSettings::functiongraph()
        },
        poll_interval: Duration::from_millis(50),
        ..WorkerSettings::default()
    };
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let invoker = SlowEcho {
        log: log.clone(),
        run: run.clone(),
    };
    if let Err(e) = AsyncWorker::spawn(
        store.clone(),
        invoker,
        settings,
        tracker.clone(),
        cancel.clone(),
    ) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }

    for i in 0..count {
        let id = format!("{prefix}-{i:04}");
        let function = if i % 2 == 0 { "fa" } else { "fb" };
        let payload = Bytes::from(format!("{{\"id\":\"{id}\"}}"));
        if let Err(e) = store
            .enqueue(function, &id, payload, InvokeSource::FunctionGraph)
            .await
        {
            eprintln!("error: enqueue {id}: {e}");
            return ExitCode::from(3);
        }
        log.line("accepted", &id, &run);
    }

    loop {
        match store.counts().await {
            Ok(c) if c.queued == 0 && c.running == 0 => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(3);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    println!("all done");
    ExitCode::SUCCESS
}
