//! The shared queue: one PostgreSQL database, any number of fnbox nodes
//! (`fnbox serve --queue postgres://…`).
//!
//! # Design
//! - **Same rows, same semantics.** The tables mirror the SQLite schema (`invocations`,
//!   `attempts`, `deliveries`); the worker's decisions are the same code for both backends.
//!   An enqueue is one autocommitted `INSERT`: when it returns, the server has committed it
//!   (PostgreSQL's default `synchronous_commit=on`), so the front door answers 202 after it.
//! - **Claims.** `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT n)` marks due rows
//!   `running`, owned by this node (`owner`, a random id per process) with a lease
//!   (`lease_until_ms`). Two nodes never claim the same row; a node never waits for another's
//!   claim.
//! - **Leases.** Every `lease / 3` the worker extends the leases of its own running rows and
//!   puts rows whose lease expired (their node died or lost the database for longer than the
//!   lease) back in the queue, the attempt counted as interrupted — the same at-least-once
//!   rule as SQLite's recovery at open. Recording the end of an attempt checks the owner, so a
//!   node that lost its lease records nothing (and logs it) instead of ending a row another
//!   node now runs.
//! - **Notifications.** A statement trigger sends `NOTIFY fnbox_async` on every insert; every
//!   node keeps one connection `LISTEN`ing and wakes its worker, so an idle node picks up new
//!   work at once while its fallback poll stays slow. Destination deliveries are claimed the
//!   same way (their next attempt time moved a lease ahead), so one node POSTs each.
//! - **Versioned migrations at start-up.** `fnbox_schema_version` holds the number of
//!   [`MIGRATIONS`] applied; each runs in its own transaction under an advisory lock, so nodes
//!   starting together migrate once. A database newer than this binary is refused.
//! - **Outages.** A connection failure while serving is [`StoreError::Unavailable`]: the front
//!   door answers 503 (nothing was accepted); the pool reconnects on the next use and the
//!   listener reconnects with backoff, so the node recovers by itself when the server is back.
//!
//! # Limits
//! - Times are wall-clock milliseconds of each node: nodes' clocks must agree to well within
//!   the lease (NTP does that).
//! - No TLS: plain TCP or a Unix socket (`host=/run/postgresql`); put the database on a
//!   trusted network.

use std::future::poll_fn;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls, Row};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::backend::{Backend, StoreFuture};
use crate::error::StoreError;
use crate::notification::Condition;
use crate::store::{
    now_ms, AsyncState, AsyncStatus, AttemptEnd, AttemptOutcome, AttemptRecord, Claimed,
    DeliveryState, DeliveryStatus, DueDelivery, FunctionDepth, InvokeSource, ListFilter, ListPage,
    StateCounts, Transition, DEPTH_QUERY,
};

/// Schema version this binary writes (`fnbox_schema_version.version`).
pub const PG_SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Oldest server accepted (`server_version_num`): `SKIP LOCKED` and statement triggers are
/// older, 10 is the oldest release still in the wild.
const MIN_SERVER_VERSION: i32 = 100_000;

/// The channel of new-work notifications.
const CHANNEL: &str = "fnbox_async";

/// Advisory lock key of the migrations (any constant; "fnbx").
const MIGRATION_LOCK: i64 = 0x666e_6278;

/// Schema migrations; entry `i` takes the database from version `i` to `i + 1`. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: invocations (with owner and lease), their attempts, their destination deliveries,
    //    and the new-work notification.
    r#"
    CREATE TABLE invocations (
        seq                BIGSERIAL PRIMARY KEY,
        request_id         TEXT    NOT NULL UNIQUE,
        function           TEXT    NOT NULL,
        source             TEXT    NOT NULL,
        payload            BYTEA   NOT NULL,
        state              TEXT    NOT NULL
                           CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
        attempts           INTEGER NOT NULL DEFAULT 0,
        throttles          INTEGER NOT NULL DEFAULT 0,
        interrupts         INTEGER NOT NULL DEFAULT 0,
        enqueued_at_ms     BIGINT  NOT NULL,
        next_attempt_at_ms BIGINT  NOT NULL,
        started_at_ms      BIGINT,
        finished_at_ms     BIGINT,
        condition          TEXT,
        result             BYTEA,
        error              BYTEA,
        last_error         TEXT,
        owner              TEXT,
        lease_until_ms     BIGINT
    );
    CREATE INDEX invocations_due ON invocations (state, function, next_attempt_at_ms);
    CREATE INDEX invocations_function ON invocations (function, seq);
    CREATE INDEX invocations_finished ON invocations (finished_at_ms);
    CREATE INDEX invocations_lease ON invocations (lease_until_ms) WHERE state = 'running';
    CREATE TABLE attempts (
        id            BIGSERIAL PRIMARY KEY,
        request_id    TEXT    NOT NULL REFERENCES invocations (request_id) ON DELETE CASCADE,
        attempt       INTEGER NOT NULL,
        started_at_ms BIGINT  NOT NULL,
        ended_at_ms   BIGINT  NOT NULL,
        outcome       TEXT    NOT NULL,
        detail        TEXT
    );
    CREATE INDEX attempts_request ON attempts (request_id, id);
    CREATE TABLE deliveries (
        request_id         TEXT    PRIMARY KEY
                           REFERENCES invocations (request_id) ON DELETE CASCADE,
        kind               TEXT    NOT NULL CHECK (kind IN ('on_success', 'on_failure')),
        url                TEXT    NOT NULL,
        body               BYTEA   NOT NULL,
        state              TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts           INTEGER NOT NULL DEFAULT 0,
        next_attempt_at_ms BIGINT  NOT NULL,
        last_error         TEXT,
        delivered_at_ms    BIGINT
    );
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at_ms);
    CREATE FUNCTION fnbox_async_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('fnbox_async', '');
        RETURN NULL;
    END
    $$;
    CREATE TRIGGER invocations_notify AFTER INSERT ON invocations
        FOR EACH STATEMENT EXECUTE PROCEDURE fnbox_async_notify();
    "#,
];

/// Tuning of the PostgreSQL queue.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// How long a claimed attempt stays this node's without a renewal; after it, another node
    /// takes the attempt over. Renewed every third of it. Default 30 s.
    pub lease: Duration,
    /// Connections per node. Default 8.
    pub pool_size: usize,
    /// How long to wait for a connection (start-up and while serving). Default 5 s.
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            lease: Duration::from_secs(30),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// `url` with its password replaced by `***`, for messages: `postgres://u:***@h/db`, and the
/// `password=` of the key-value form.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // userinfo ends at the last '@' before the path.
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if let Some(at) = authority.rfind('@') {
            let (userinfo, host) = authority.split_at(at);
            if let Some((user, _password)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***{host}{tail}");
            }
        }
        return url.to_string();
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The PostgreSQL backend.
pub(crate) struct PgQueue {
    pool: Pool,
    /// The URL, password redacted.
    url: String,
    /// This process's claims: `<pid>-<random>`.
    node: String,
    lease: Duration,
    _listener: DropGuard,
}

fn startup(url: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

impl PgQueue {
    /// See [`crate::AsyncStore::connect`].
    pub(crate) async fn connect(
        url: &str,
        options: PgOptions,
        wake: Arc<Notify>,
    ) -> Result<PgQueue, StoreError> {
        let shown = redact_url(url);
        if options.lease < Duration::from_millis(300) {
            return Err(startup(
                &shown,
                format!("lease {:?} is too short: at least 300ms", options.lease),
            ));
        }
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            startup(
                &shown,
                format!("not a PostgreSQL connection URL ({e}); expected postgres://user:password@host:port/database"),
            )
        })?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("fnbox");
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| startup(&shown, e))?;
        let mut client = pool.get().await.map_err(|e| {
            startup(
                &shown,
                format!(
                    "cannot connect: {}; is the server running, and are the host, port, user, password and database right?",
                    describe_pool(&e)
                ),
            )
        })?;
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| {
                startup(
                    &shown,
                    format!("cannot read the server version: {}", describe(&e)),
                )
            })?
            .get(0);
        if version < MIN_SERVER_VERSION {
            return Err(startup(
                &shown,
                format!("PostgreSQL server version {version} is too old: fnbox needs 10 or newer"),
            ));
        }
        migrate(&mut client, &shown).await?;
        drop(client);

        let cancel = CancellationToken::new();
        tokio::spawn(listen(config, wake, cancel.clone(), shown.clone()));
        let node = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        tracing::info!(url = %shown, %node, lease = ?options.lease, "async queue on PostgreSQL");
        Ok(PgQueue {
            pool,
            url: shown,
            node,
            lease: options.lease,
            _listener: cancel.drop_guard(),
        })
    }

    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable {
            location: self.url.clone(),
            reason: describe_pool(&e),
        })
    }

    fn error(&self, e: tokio_postgres::Error) -> StoreError {
        let reason = describe(&e);
        if is_connection_error(&e) {
            StoreError::Unavailable {
                location: self.url.clone(),
                reason,
            }
        } else {
            // The server answered with an SQL error: a fault of fnbox or of the database.
            StoreError::Database {
                path: self.url.clone().into(),
                reason,
            }
        }
    }
}

/// Whether `e` means the server cannot be used now (down, restarting, shutting down, out of
/// connections), as opposed to an SQL error.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08") // connection exception
                || c.starts_with("57P") // admin/crash shutdown, cannot connect now
                || c == "53300" // too many connections
        }
    }
}

/// The error with what the server or the socket said (tokio-postgres' own text is often just
/// "db error" or "error connecting to server").
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A pool error with its cause.
fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

async fn migrate(client: &mut deadpool_postgres::Object, url: &str) -> Result<(), StoreError> {
    loop {
        let tx = client
            .transaction()
            .await
            .map_err(|e| startup(url, format!("schema migration: {}", describe(&e))))?;
        let step = async {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS fnbox_schema_version (version INTEGER NOT NULL)",
            )
            .await?;
            let row = tx
                .query_opt("SELECT version FROM fnbox_schema_version", &[])
                .await?;
            let version: i32 = match row {
                Some(r) => r.get(0),
                None => {
                    tx.execute("INSERT INTO fnbox_schema_version (version) VALUES (0)", &[])
                        .await?;
                    0
                }
            };
            Ok::<_, tokio_postgres::Error>(version)
        };
        let version = step.await.map_err(|e| {
            startup(
                url,
                format!("cannot read the schema version: {}", describe(&e)),
            )
        })?;
        if version > PG_SCHEMA_VERSION {
            return Err(startup(
                url,
                format!(
                    "the database has fnbox queue schema version {version}, newer than this fnbox supports ({PG_SCHEMA_VERSION}); use a newer fnbox or another database"
                ),
            ));
        }
        if version == PG_SCHEMA_VERSION {
            tx.commit()
                .await
                .map_err(|e| startup(url, format!("schema check: {}", describe(&e))))?;
            return Ok(());
        }
        let to = version + 1;
        let apply = async {
            tx.batch_execute(MIGRATIONS[version as usize]).await?;
            tx.execute("UPDATE fnbox_schema_version SET version = $1", &[&to])
                .await?;
            tx.commit().await
        };
        apply.await.map_err(|e| {
            startup(
                url,
                format!("schema migration to version {to} failed: {}", describe(&e)),
            )
        })?;
        tracing::info!(url, version = to, "async queue schema migrated");
    }
}

/// Keeps one connection `LISTEN`ing for new work and wakes the worker on every notification
/// (and after every reconnect, to catch up). Ends when the queue is dropped.
async fn listen(
    config: tokio_postgres::Config,
    wake: Arc<Notify>,
    cancel: CancellationToken,
    url: String,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        let connected = tokio::select! {
            _ = cancel.cancelled() => return,
            r = config.connect(NoTls) => r,
        };
        match connected {
            Ok((client, mut connection)) => {
                delay = Duration::from_millis(200);
                let listen = client.batch_execute("LISTEN fnbox_async");
                tokio::pin!(listen);
                let mut listening = false;
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        r = &mut listen, if !listening => match r {
                            Ok(()) => {
                                listening = true;
                                wake.notify_one();
                            }
                            Err(e) => {
                                tracing::warn!(url, error = %e, "cannot LISTEN for new async work");
                                break;
                            }
                        },
                        m = poll_fn(|cx| connection.poll_message(cx)) => match m {
                            Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                                wake.notify_one();
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(url, error = %e, "async queue listener lost its connection; reconnecting");
                                break;
                            }
                            None => break,
                        },
                    }
                }
            }
            Err(e) => tracing::debug!(url, error = %e, "async queue listener cannot connect yet"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

const CLAIMED_COLUMNS: &str = "i.seq, i.request_id, i.function, i.payload, i.attempts, \
    i.throttles, i.enqueued_at_ms, i.last_error, i.error, i.interrupts, i.next_attempt_at_ms";

const STATUS_COLUMNS: &str = "i.request_id, i.function, i.source, i.state, i.attempts,
    i.throttles, i.interrupts, octet_length(i.payload)::bigint AS payload_size, i.enqueued_at_ms,
    i.started_at_ms, i.finished_at_ms, i.next_attempt_at_ms, i.condition, i.last_error,
    d.kind AS d_kind, d.url AS d_url, d.state AS d_state, d.attempts AS d_attempts,
    d.last_error AS d_last_error, d.delivered_at_ms AS d_delivered_at_ms";

fn u(v: i32) -> u32 {
    v.max(0) as u32
}

fn row_to_status(r: &Row) -> AsyncStatus {
    let state: String = r.get("state");
    let state = AsyncState::parse(&state).unwrap_or(AsyncState::Queued);
    let condition: Option<String> = r.get("condition");
    AsyncStatus {
        request_id: r.get("request_id"),
        function: r.get("function"),
        source: InvokeSource::parse(r.get::<_, &str>("source")),
        state,
        attempts: u(r.get("attempts")),
        throttles: u(r.get("throttles")),
        interrupts: u(r.get("interrupts")),
        payload_size: r.get::<_, i64>("payload_size") as usize,
        enqueued_at_ms: r.get("enqueued_at_ms"),
        started_at_ms: r.get("started_at_ms"),
        finished_at_ms: r.get("finished_at_ms"),
        next_attempt_at_ms: if state == AsyncState::Queued {
            Some(r.get("next_attempt_at_ms"))
        } else {
            None
        },
        condition: condition.as_deref().and_then(Condition::parse),
        result: None,
        error: None,
        last_error: r.get("last_error"),
        history: Vec::new(),
        destination: r
            .get::<_, Option<String>>("d_kind")
            .map(|kind| DeliveryStatus {
                kind,
                url: r.get("d_url"),
                state: DeliveryState::parse(r.get::<_, &str>("d_state")),
                attempts: u(r.get("d_attempts")),
                last_error: r.get("d_last_error"),
                delivered_at_ms: r.get("d_delivered_at_ms"),
            }),
    }
}

fn claimed(r: &Row, now: i64) -> (i64, i64, Claimed) {
    (
        r.get("next_attempt_at_ms"),
        r.get("seq"),
        Claimed {
            request_id: r.get("request_id"),
            function: r.get("function"),
            payload: Bytes::from(r.get::<_, Vec<u8>>("payload")),
            attempts: u(r.get("attempts")),
            throttles: u(r.get("throttles")),
            enqueued_at_ms: r.get("enqueued_at_ms"),
            started_at_ms: now,
            last_error: r.get("last_error"),
            error: r.get::<_, Option<Vec<u8>>>("error").map(Bytes::from),
            interrupts: u(r.get("interrupts")),
        },
    )
}

impl Backend for PgQueue {
    fn location(&self) -> String {
        self.url.clone()
    }

    fn recovered_at_open(&self) -> u64 {
        0
    }

    fn enqueue(
        &self,
        function: String,
        request_id: String,
        payload: Bytes,
        source: InvokeSource,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            let now = now_ms();
            let r = client
                .execute(
                    "INSERT INTO invocations (request_id, function, source, payload, state,
                         enqueued_at_ms, next_attempt_at_ms)
                     VALUES ($1, $2, $3, $4, 'queued', $5, $5)",
                    &[
                        &request_id,
                        &function,
                        &source.as_str(),
                        &&payload[..],
                        &now,
                    ],
                )
                .await;
            match r {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    Err(StoreError::DuplicateRequestId(request_id))
                }
                Err(e) => Err(self.error(e)),
            }
        })
    }

    fn status(&self, request_id: String) -> StoreFuture<'_, Option<AsyncStatus>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .read_only(true)
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .start()
                .await
                .map_err(|e| self.error(e))?;
            let sql = format!(
                "SELECT {STATUS_COLUMNS}, i.result, i.error FROM invocations i
                 LEFT JOIN deliveries d ON d.request_id = i.request_id WHERE i.request_id = $1"
            );
            let Some(row) = tx
                .query_opt(&sql, &[&request_id])
                .await
                .map_err(|e| self.error(e))?
            else {
                return Ok(None);
            };
            let mut status = row_to_status(&row);
            status.result = row.get::<_, Option<Vec<u8>>>("result").map(Bytes::from);
            status.error = row.get::<_, Option<Vec<u8>>>("error").map(Bytes::from);
            status.history = tx
                .query(
                    "SELECT attempt, started_at_ms, ended_at_ms, outcome, detail FROM attempts
                     WHERE request_id = $1 ORDER BY id",
                    &[&request_id],
                )
                .await
                .map_err(|e| self.error(e))?
                .iter()
                .map(|r| AttemptRecord {
                    attempt: u(r.get(0)),
                    started_at_ms: r.get(1),
                    ended_at_ms: r.get(2),
                    outcome: AttemptOutcome::parse(r.get::<_, &str>(3)),
                    detail: r.get(4),
                })
                .collect();
            tx.commit().await.map_err(|e| self.error(e))?;
            Ok(Some(status))
        })
    }

    fn list(&self, f: ListFilter) -> StoreFuture<'_, ListPage> {
        Box::pin(async move {
            let mut clauses = vec!["TRUE".to_string()];
            let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
            if let Some(func) = &f.function {
                args.push(Box::new(func.clone()));
                clauses.push(format!("i.function = ${}", args.len()));
            }
            if let Some(id) = &f.request_id {
                args.push(Box::new(id.clone()));
                clauses.push(format!("i.request_id = ${}", args.len()));
            }
            if let Some(state) = f.state {
                args.push(Box::new(state.as_str().to_string()));
                clauses.push(format!("i.state = ${}", args.len()));
            }
            match f.discarded {
                Some(true) => clauses.push("i.condition = 'EventAgeExceeded'".into()),
                Some(false) => clauses
                    .push("(i.condition IS NULL OR i.condition <> 'EventAgeExceeded')".into()),
                None => {}
            }
            if let Some(since) = f.since_ms {
                args.push(Box::new(since));
                clauses.push(format!("i.enqueued_at_ms >= ${}", args.len()));
            }
            if let Some(until) = f.until_ms {
                args.push(Box::new(until));
                clauses.push(format!("i.enqueued_at_ms <= ${}", args.len()));
            }
            let filter = clauses.join(" AND ");
            let params: Vec<&(dyn ToSql + Sync)> =
                args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
            let limit = match f.limit {
                0 => 100,
                n => n.min(500),
            };
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .read_only(true)
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .start()
                .await
                .map_err(|e| self.error(e))?;
            let count: i64 = tx
                .query_one(
                    &format!("SELECT COUNT(*) FROM invocations i WHERE {filter}"),
                    &params,
                )
                .await
                .map_err(|e| self.error(e))?
                .get(0);
            let sql = format!(
                "SELECT {STATUS_COLUMNS} FROM invocations i
                 LEFT JOIN deliveries d ON d.request_id = i.request_id
                 WHERE {filter} ORDER BY i.seq DESC LIMIT {limit} OFFSET {}",
                f.marker
            );
            let items: Vec<AsyncStatus> = tx
                .query(&sql, &params)
                .await
                .map_err(|e| self.error(e))?
                .iter()
                .map(row_to_status)
                .collect();
            tx.commit().await.map_err(|e| self.error(e))?;
            let next_marker = f.marker + items.len() as u64;
            Ok(ListPage {
                items,
                count: count as u64,
                next_marker,
            })
        })
    }

    fn depth_by_function(&self) -> StoreFuture<'_, Vec<FunctionDepth>> {
        Box::pin(async move {
            let client = self.client().await?;
            let mut out = Vec::new();
            for r in client
                .query(DEPTH_QUERY, &[])
                .await
                .map_err(|e| self.error(e))?
            {
                FunctionDepth::add(
                    &mut out,
                    r.get::<_, &str>(0),
                    r.get::<_, &str>(1),
                    r.get::<_, i64>(2) as u64,
                );
            }
            Ok(out)
        })
    }

    fn counts(&self) -> StoreFuture<'_, StateCounts> {
        Box::pin(async move {
            let client = self.client().await?;
            let mut c = StateCounts::default();
            for r in client
                .query(
                    "SELECT state, COUNT(*) FROM invocations GROUP BY state",
                    &[],
                )
                .await
                .map_err(|e| self.error(e))?
            {
                let n = r.get::<_, i64>(1) as u64;
                match AsyncState::parse(r.get::<_, &str>(0)) {
                    Some(AsyncState::Queued) => c.queued = n,
                    Some(AsyncState::Running) => c.running = n,
                    Some(AsyncState::Succeeded) => c.succeeded = n,
                    Some(AsyncState::Failed) => c.failed = n,
                    None => {}
                }
            }
            c.deliveries_pending = client
                .query_one(
                    "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'",
                    &[],
                )
                .await
                .map_err(|e| self.error(e))?
                .get::<_, i64>(0) as u64;
            Ok(c)
        })
    }

    fn queued_functions(&self) -> StoreFuture<'_, Vec<(String, i64)>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT function, MIN(next_attempt_at_ms) FROM invocations
                     WHERE state = 'queued' GROUP BY function",
                    &[],
                )
                .await
                .map_err(|e| self.error(e))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn claim(&self, function: String, now: i64, limit: u32) -> StoreFuture<'_, Vec<Claimed>> {
        Box::pin(async move {
            let client = self.client().await?;
            let lease_until = now + self.lease_ms();
            let sql = format!(
                "UPDATE invocations i SET state = 'running', started_at_ms = $2, owner = $4,
                     lease_until_ms = $5
                 FROM (SELECT seq FROM invocations
                       WHERE state = 'queued' AND function = $1 AND next_attempt_at_ms <= $2
                       ORDER BY next_attempt_at_ms, seq LIMIT $3
                       FOR UPDATE SKIP LOCKED) c
                 WHERE i.seq = c.seq
                 RETURNING {CLAIMED_COLUMNS}"
            );
            let rows = client
                .query(
                    &sql,
                    &[&function, &now, &(limit as i64), &self.node, &lease_until],
                )
                .await
                .map_err(|e| self.error(e))?;
            let mut rows: Vec<_> = rows.iter().map(|r| claimed(r, now)).collect();
            rows.sort_by_key(|(at, seq, _)| (*at, *seq));
            Ok(rows.into_iter().map(|(_, _, c)| c).collect())
        })
    }

    fn finish(&self, end: AttemptEnd) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(|e| self.error(e))?;
            let attempts = end.attempts as i32;
            let throttles = end.throttles as i32;
            let interrupts = end.interrupts as i32;
            let error = end.error.as_ref().map(|b| &b[..]);
            let changed = match &end.transition {
                Transition::Succeeded { result } => {
                    tx.execute(
                        "UPDATE invocations SET state = 'succeeded', attempts = $2,
                             throttles = $3, interrupts = $4, finished_at_ms = $5,
                             condition = 'Success', result = $6, owner = NULL,
                             lease_until_ms = NULL
                         WHERE request_id = $1 AND state = 'running' AND owner = $7",
                        &[
                            &end.request_id,
                            &attempts,
                            &throttles,
                            &interrupts,
                            &end.ended_at_ms,
                            &&result[..],
                            &self.node,
                        ],
                    )
                    .await
                }
                Transition::Failed { condition } => {
                    tx.execute(
                        "UPDATE invocations SET state = 'failed', attempts = $2, throttles = $3,
                             interrupts = $8, finished_at_ms = $4, condition = $5,
                             error = COALESCE($6, error), last_error = COALESCE($7, last_error),
                             owner = NULL, lease_until_ms = NULL
                         WHERE request_id = $1 AND state = 'running' AND owner = $9",
                        &[
                            &end.request_id,
                            &attempts,
                            &throttles,
                            &end.ended_at_ms,
                            &condition.as_str(),
                            &error,
                            &end.last_error,
                            &interrupts,
                            &self.node,
                        ],
                    )
                    .await
                }
                Transition::Retry { next_attempt_at_ms } => {
                    tx.execute(
                        "UPDATE invocations SET state = 'queued', attempts = $2, throttles = $3,
                             interrupts = $7, next_attempt_at_ms = $4,
                             error = COALESCE($5, error), last_error = COALESCE($6, last_error),
                             owner = NULL, lease_until_ms = NULL
                         WHERE request_id = $1 AND state = 'running' AND owner = $8",
                        &[
                            &end.request_id,
                            &attempts,
                            &throttles,
                            next_attempt_at_ms,
                            &error,
                            &end.last_error,
                            &interrupts,
                            &self.node,
                        ],
                    )
                    .await
                }
            }
            .map_err(|e| self.error(e))?;
            if changed != 1 {
                // Not ours any more: our lease expired and another node took it over. Record
                // nothing rather than end an attempt someone else runs.
                return Err(StoreError::Database {
                    path: self.url.clone().into(),
                    reason: format!(
                        "invocation {} was not running on this node when its attempt ended (its lease expired and another node took it over)",
                        end.request_id
                    ),
                });
            }
            if let Some(outcome) = end.outcome {
                let number = if outcome == AttemptOutcome::Throttled {
                    end.attempts + 1
                } else {
                    end.attempts
                } as i32;
                tx.execute(
                    "INSERT INTO attempts (request_id, attempt, started_at_ms, ended_at_ms,
                         outcome, detail)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &end.request_id,
                        &number,
                        &end.started_at_ms,
                        &end.ended_at_ms,
                        &outcome.as_str(),
                        &end.last_error,
                    ],
                )
                .await
                .map_err(|e| self.error(e))?;
            }
            if let Some(d) = &end.delivery {
                tx.execute(
                    "INSERT INTO deliveries (request_id, kind, url, body, state,
                         next_attempt_at_ms)
                     VALUES ($1, $2, $3, $4, 'pending', $5)",
                    &[
                        &end.request_id,
                        &d.kind,
                        &d.url,
                        &&d.body[..],
                        &end.ended_at_ms,
                    ],
                )
                .await
                .map_err(|e| self.error(e))?;
            }
            tx.commit().await.map_err(|e| self.error(e))
        })
    }

    fn due_deliveries(
        &self,
        now: i64,
        limit: usize,
        skip: Vec<String>,
    ) -> StoreFuture<'_, (Vec<DueDelivery>, Option<i64>)> {
        Box::pin(async move {
            let client = self.client().await?;
            // Taking a notification moves its next attempt a lease ahead: no other node sends
            // it meanwhile, and it is due again if this node dies before recording the POST.
            let rows = client
                .query(
                    "UPDATE deliveries d SET next_attempt_at_ms = $2
                     FROM (SELECT request_id FROM deliveries
                           WHERE state = 'pending' AND next_attempt_at_ms <= $1
                             AND request_id <> ALL($4)
                           ORDER BY next_attempt_at_ms LIMIT $3
                           FOR UPDATE SKIP LOCKED) c
                     WHERE d.request_id = c.request_id
                     RETURNING d.request_id, d.url, d.body, d.attempts",
                    &[&now, &(now + self.lease_ms()), &(limit as i64), &skip],
                )
                .await
                .map_err(|e| self.error(e))?;
            let due = rows
                .iter()
                .map(|r| DueDelivery {
                    request_id: r.get(0),
                    url: r.get(1),
                    body: Bytes::from(r.get::<_, Vec<u8>>(2)),
                    attempts: u(r.get(3)),
                })
                .collect();
            let next: Option<i64> = client
                .query_one(
                    "SELECT MIN(next_attempt_at_ms) FROM deliveries
                     WHERE state = 'pending' AND next_attempt_at_ms > $1",
                    &[&now],
                )
                .await
                .map_err(|e| self.error(e))?
                .get(0);
            Ok((due, next))
        })
    }

    fn delivery_done(
        &self,
        request_id: String,
        attempts: u32,
        outcome: Result<(), String>,
        next_attempt_at_ms: Option<i64>,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let client = self.client().await?;
            let now = now_ms();
            let attempts = attempts as i32;
            let r = match (&outcome, next_attempt_at_ms) {
                (Ok(()), _) => {
                    client
                        .execute(
                            "UPDATE deliveries SET state = 'delivered', attempts = $2,
                                 delivered_at_ms = $3, last_error = NULL
                             WHERE request_id = $1 AND state = 'pending'",
                            &[&request_id, &attempts, &now],
                        )
                        .await
                }
                (Err(e), Some(next)) => {
                    client
                        .execute(
                            "UPDATE deliveries SET attempts = $2, last_error = $3,
                                 next_attempt_at_ms = $4
                             WHERE request_id = $1 AND state = 'pending'",
                            &[&request_id, &attempts, e, &next],
                        )
                        .await
                }
                (Err(e), None) => {
                    client
                        .execute(
                            "UPDATE deliveries SET state = 'failed', attempts = $2,
                                 last_error = $3
                             WHERE request_id = $1 AND state = 'pending'",
                            &[&request_id, &attempts, e],
                        )
                        .await
                }
            };
            r.map(|_| ()).map_err(|e| self.error(e))
        })
    }

    fn prune(&self, before_ms: i64) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "DELETE FROM invocations
                     WHERE state IN ('succeeded', 'failed') AND finished_at_ms < $1
                       AND NOT EXISTS (SELECT 1 FROM deliveries d
                                       WHERE d.request_id = invocations.request_id
                                         AND d.state = 'pending')",
                    &[&before_ms],
                )
                .await
                .map(|n| n as usize)
                .map_err(|e| self.error(e))
        })
    }

    fn maintain(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE invocations SET lease_until_ms = $2
                     WHERE owner = $1 AND state = 'running'",
                    &[&self.node, &(now + self.lease_ms())],
                )
                .await
                .map_err(|e| self.error(e))?;
            // Take over expired leases: the attempt counts as interrupted, as after a crash.
            let taken = client
                .execute(
                    "WITH expired AS (
                         SELECT seq FROM invocations
                         WHERE state = 'running' AND lease_until_ms < $1
                         FOR UPDATE SKIP LOCKED
                     ), history AS (
                         INSERT INTO attempts (request_id, attempt, started_at_ms, ended_at_ms,
                             outcome, detail)
                         SELECT i.request_id, i.attempts + 1, COALESCE(i.started_at_ms, $1), $1,
                             'interrupted', $2
                         FROM invocations i JOIN expired USING (seq)
                     )
                     UPDATE invocations i SET state = 'queued', attempts = attempts + 1,
                         interrupts = interrupts + 1, last_error = $2, next_attempt_at_ms = $1,
                         owner = NULL, lease_until_ms = NULL
                     FROM expired WHERE i.seq = expired.seq",
                    &[&now, &crate::INTERRUPTED_ERROR],
                )
                .await
                .map_err(|e| self.error(e))?;
            if taken > 0 {
                client
                    .execute("SELECT pg_notify('fnbox_async', '')", &[])
                    .await
                    .map_err(|e| self.error(e))?;
            }
            Ok(taken)
        })
    }

    fn maintenance_interval(&self) -> Option<Duration> {
        Some(self.lease / 3)
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://fnbox:s3cret@db.local:5432/q"),
            "postgres://fnbox:***@db.local:5432/q"
        );
        assert_eq!(
            redact_url("postgresql://u:p@ss@127.0.0.1/q?x=1"),
            "postgresql://u:***@127.0.0.1/q?x=1"
        );
        assert_eq!(
            redact_url("postgres://fnbox@127.0.0.1/q"),
            "postgres://fnbox@127.0.0.1/q"
        );
        assert_eq!(
            redact_url("host=127.0.0.1 password=s3cret dbname=q"),
            "host=127.0.0.1 password=*** dbname=q"
        );
    }
}
