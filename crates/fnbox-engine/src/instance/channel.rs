//! The hand-over point between the engine and the runtime: invocations wait in a bounded queue
//! until the runtime long-polls for them, then sit in the in-flight table until the runtime
//! posts a response or an error for their id.
//!
//! The dialect routers only call [`RuntimeChannel::next`] and [`RuntimeChannel::complete`];
//! the instance owns everything else.

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
            Some(tx) => tx
                .send(reply)
                .map_err(|_| ChannelError::UnknownRequest(request_id.to_string())),
            None => Err(ChannelError::UnknownRequest(request_id.to_string())),
        }
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
