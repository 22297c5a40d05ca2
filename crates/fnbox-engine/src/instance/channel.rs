//! The hand-over point between the engine and the runtime: invocations wait in a bounded queue
//! until the runtime long-polls for them, then sit in the in-flight table until the runtime
//! posts a response or an error for their id.
//!
//! The dialect routers only call [`RuntimeChannel::next`], [`RuntimeChannel::complete`] and
//! [`RuntimeChannel::in_flight`]; the instance owns everything else.
//!
//! # Design
//! Replies are whole bodies: a dialect that accepts streamed responses (Lambda) collects the
//! stream before completing, so the engine and the front door see one result per invocation.
//! Every `next` also records how many replies had been posted when it was called
//! ([`RuntimeChannel::wait_next_after`]), so an engine that must know when the runtime asked
//! again after answering (Lambda ends an invocation there) can wait for it.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::invocation::InvokeType;

/// What the runtime posted for an invocation.
#[derive(Debug)]
pub enum RuntimeReply {
    /// `…/response/{id}` body.
    Response(Bytes),
    /// `…/error/{id}` body.
    Error(Bytes),
}

/// Kind of work handed to the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkKind {
    /// A real invocation.
    Invoke(InvokeType),
    /// The initializer call of the built-in runtimes (fnbox's own protocol).
    Initializer,
}

/// One item the runtime receives from `next`.
#[derive(Debug, Clone)]
pub struct Work {
    /// Request id.
    pub request_id: String,
    /// Event body.
    pub body: Bytes,
    /// Invocation or initializer.
    pub kind: WorkKind,
    /// Epoch milliseconds at which fnbox gives up on it.
    pub deadline_epoch_ms: u64,
    /// The trace context the invocation runs under (`None` for the initializer).
    pub trace: Option<crate::trace::TraceContext>,
}

struct Queued {
    work: Work,
    reply: oneshot::Sender<RuntimeReply>,
}

/// Why a runtime's post was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// No invocation with this id is in flight (unknown, or already answered).
    #[error("no invocation '{0}' is in flight (unknown id, or already answered)")]
    UnknownRequest(String),
    /// The instance is shutting down.
    #[error("the instance is shutting down")]
    Closed,
}

/// Queue plus in-flight table of one instance.
pub struct RuntimeChannel {
    tx: mpsc::Sender<Queued>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Queued>>,
    inflight: Mutex<HashMap<String, oneshot::Sender<RuntimeReply>>>,
    polls: watch::Sender<u64>,
    /// Replies handed to the engine so far.
    completions: std::sync::atomic::AtomicU64,
    /// `completions` as seen by the latest `next`.
    next_after: watch::Sender<u64>,
}

impl RuntimeChannel {
    /// A channel that queues at most `capacity` invocations.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            inflight: Mutex::new(HashMap::new()),
            polls: watch::channel(0).0,
            completions: std::sync::atomic::AtomicU64::new(0),
            next_after: watch::channel(0).0,
        }
    }

    /// Engine side: queues work; the receiver yields the runtime's reply.
    pub async fn submit(
        &self,
        work: Work,
    ) -> Result<oneshot::Receiver<RuntimeReply>, ChannelError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Queued { work, reply })
            .await
            .map_err(|_| ChannelError::Closed)?;
        Ok(rx)
    }

    /// Runtime side (`GET …/request`): waits for the next work item. Cancellation-safe: a poll
    /// that is dropped while waiting loses nothing.
    pub async fn next(&self) -> Work {
        self.polls.send_modify(|n| *n += 1);
        let done = self.completions.load(std::sync::atomic::Ordering::Acquire);
        self.next_after.send_if_modified(|n| {
            let changed = *n != done;
            *n = done;
            changed
        });
        let mut rx = self.rx.lock().await;
        loop {
            // The sender lives in `self`, so the queue never closes while we hold `self`.
            let Some(queued) = rx.recv().await else {
                std::future::pending::<()>().await;
                unreachable!()
            };
            if queued.reply.is_closed() {
                // The engine gave up on it (deadline) before the runtime asked.
                continue;
            }
            self.inflight
                .lock()
                .expect("inflight lock")
                .insert(queued.work.request_id.clone(), queued.reply);
            return queued.work;
        }
    }

    /// Runtime side (`POST …/response|error/{id}`): hands the reply to the waiting invocation.
    pub fn complete(&self, request_id: &str, reply: RuntimeReply) -> Result<(), ChannelError> {
        let sender = self
            .inflight
            .lock()
            .expect("inflight lock")
            .remove(request_id);
        match sender {
            Some(tx) => {
                let sent = tx
                    .send(reply)
                    .map_err(|_| ChannelError::UnknownRequest(request_id.to_string()));
                self.completions
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                sent
            }
            None => Err(ChannelError::UnknownRequest(request_id.to_string())),
        }
    }

    /// Whether this id was handed to the runtime and not answered yet.
    pub fn is_in_flight(&self, request_id: &str) -> bool {
        self.inflight
            .lock()
            .expect("inflight lock")
            .contains_key(request_id)
    }

    /// Invocations handed to the runtime and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().expect("inflight lock").len()
    }

    /// Replies posted so far (including ones the engine had already given up on).
    pub fn completions(&self) -> u64 {
        self.completions.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until the runtime calls `next` after at least `completions` replies were posted
    /// (e.g. "asked for more work after answering this invocation").
    pub async fn wait_next_after(&self, completions: u64) {
        let mut rx = self.next_after.subscribe();
        let _ = rx.wait_for(|n| *n >= completions).await;
    }

    /// Forgets an in-flight id (the engine gave up on it), so a late post answers 404.
    pub fn abandon(&self, request_id: &str) {
        self.inflight
            .lock()
            .expect("inflight lock")
            .remove(request_id);
    }

    /// Counts of `next` calls so far; changes every time the runtime asks for work.
    pub fn polls(&self) -> watch::Receiver<u64> {
        self.polls.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(id: &str) -> Work {
        Work {
            request_id: id.into(),
            body: Bytes::from_static(b"{}"),
            kind: WorkKind::Invoke(InvokeType::Sync),
            deadline_epoch_ms: 0,
            trace: None,
        }
    }

    #[tokio::test]
    async fn reply_reaches_the_submitter_once() {
        let ch = RuntimeChannel::new(4);
        let rx = ch.submit(work("a")).await.unwrap();
        let got = ch.next().await;
        assert_eq!(got.request_id, "a");
        ch.complete("a", RuntimeReply::Response(Bytes::from_static(b"ok")))
            .unwrap();
        assert!(matches!(rx.await.unwrap(), RuntimeReply::Response(b) if &b[..] == b"ok"));
        assert_eq!(
            ch.complete("a", RuntimeReply::Response(Bytes::new())),
            Err(ChannelError::UnknownRequest("a".into()))
        );
    }

    #[tokio::test]
    async fn unknown_id_is_refused() {
        let ch = RuntimeChannel::new(1);
        assert!(matches!(
            ch.complete("nope", RuntimeReply::Error(Bytes::new())),
            Err(ChannelError::UnknownRequest(_))
        ));
    }

    #[tokio::test]
    async fn abandoned_work_is_skipped() {
        let ch = RuntimeChannel::new(4);
        drop(ch.submit(work("gone")).await.unwrap());
        let _rx = ch.submit(work("live")).await.unwrap();
        assert_eq!(ch.next().await.request_id, "live");
    }

    #[tokio::test]
    async fn next_after_a_reply_is_observed() {
        let ch = std::sync::Arc::new(RuntimeChannel::new(4));
        let rx = ch.submit(work("a")).await.unwrap();
        assert_eq!(ch.next().await.request_id, "a");
        assert_eq!(ch.in_flight(), 1);
        ch.complete("a", RuntimeReply::Response(Bytes::new()))
            .unwrap();
        rx.await.unwrap();
        assert_eq!((ch.in_flight(), ch.completions()), (0, 1));
        let waiter = {
            let ch = ch.clone();
            tokio::spawn(async move { ch.wait_next_after(1).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let ch2 = ch.clone();
        let poll = tokio::spawn(async move { ch2.next().await });
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("the runtime's next after the reply is seen")
            .unwrap();
        poll.abort();
    }

    #[tokio::test]
    async fn polls_are_counted() {
        let ch = std::sync::Arc::new(RuntimeChannel::new(1));
        let mut polls = ch.polls();
        let ch2 = ch.clone();
        let t = tokio::spawn(async move { ch2.next().await });
        polls.changed().await.unwrap();
        assert_eq!(*polls.borrow(), 1);
        t.abort();
    }
}
