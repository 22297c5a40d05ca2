//! Pure batching rules: which records go out together and when. No I/O, no clock of its own.
//!
//! The rules (vector's `Batcher`, contract §5):
//! - a batch goes out as soon as it holds `max_items` records or its body reaches `max_bytes`;
//! - a record that would push the pending batch past either limit closes that batch first and
//!   starts the next one;
//! - a record larger than `max_bytes` on its own still goes out, alone, rather than being
//!   dropped: refusing it would lose data the listener may well accept;
//! - a batch is due `timeout` after its *first* record, so a trickle cannot postpone it forever.
//!
//! The caller supplies "now" (a [`tokio::time::Instant`], so paused-time tests drive it).

use bytes::Bytes;
use tokio::time::Instant;

use crate::Buffering;

/// Serialized size of a JSON array holding records of these lengths: `[` + joined by `,` + `]`.
pub fn array_len(records: &[Bytes]) -> usize {
    2 + records.iter().map(Bytes::len).sum::<usize>() + records.len().saturating_sub(1)
}

/// Accumulates records into batches under a [`Buffering`]'s limits.
#[derive(Debug)]
pub struct Batcher {
    limits: Buffering,
    records: Vec<Bytes>,
    /// Serialized size of `records` as a JSON array (2 when empty).
    body_len: usize,
    deadline: Option<Instant>,
}

impl Batcher {
    /// An empty batcher. Limits of 0 are treated as 1 so that every record still goes out.
    pub fn new(limits: Buffering) -> Self {
        Batcher {
            limits: Buffering {
                max_items: limits.max_items.max(1),
                max_bytes: limits.max_bytes.max(1),
                timeout: limits.timeout,
            },
            records: Vec::new(),
            body_len: 2,
            deadline: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Buffering {
        self.limits
    }

    /// Adds `record` at `now`. Returns a batch when one is complete: either the pending batch
    /// that `record` did not fit into, or the pending batch including `record` when it reached
    /// a limit.
    ///
    /// At most one batch is returned. In the single case where two are complete at once (a
    /// non-empty batch followed by a record that is over `max_bytes` by itself), the first is
    /// returned and the oversized record stays pending with [`Batcher::is_full`] true; callers
    /// flush it with [`Batcher::take`] (the delivery loop does so right away).
    pub fn push(&mut self, record: Bytes, now: Instant) -> Option<Vec<Bytes>> {
        let mut out = None;
        if !self.records.is_empty()
            && (self.records.len() + 1 > self.limits.max_items
                || self.body_len + 1 + record.len() > self.limits.max_bytes)
        {
            out = self.take();
        }
        if self.records.is_empty() {
            self.deadline = Some(now + self.limits.timeout);
            self.body_len = 2 + record.len();
        } else {
            self.body_len += 1 + record.len();
        }
        self.records.push(record);
        if out.is_none() && self.is_full() {
            out = self.take();
        }
        out
    }

    /// Removes and returns whatever is pending (`None` when nothing is), resetting the deadline.
    pub fn take(&mut self) -> Option<Vec<Bytes>> {
        if self.records.is_empty() {
            return None;
        }
        self.deadline = None;
        self.body_len = 2;
        Some(std::mem::take(&mut self.records))
    }

    /// When the pending batch is due: its first record's time plus `timeout`. `None` when empty.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the pending batch is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// Whether the pending batch has reached a limit and must go out before anything is added.
    pub fn is_full(&self) -> bool {
        !self.records.is_empty()
            && (self.records.len() >= self.limits.max_items
                || self.body_len >= self.limits.max_bytes)
    }

    /// Number of pending records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Serialized size of the pending batch as a JSON array (2 when empty).
    pub fn body_len(&self) -> usize {
        self.body_len
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn limits(max_items: usize, max_bytes: usize) -> Buffering {
        Buffering {
            max_items,
            max_bytes,
            timeout: Duration::from_millis(100),
        }
    }

    fn rec(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn emits_when_item_limit_reached() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(3, 1 << 20));
        assert!(b.push(rec(1), now).is_none());
        assert!(b.push(rec(1), now).is_none());
        let batch = b.push(rec(1), now).expect("third record fills the batch");
        assert_eq!(batch.len(), 3);
        assert!(b.is_empty());
        assert_eq!(b.deadline(), None);
        assert_eq!(b.body_len(), 2);
    }

    #[test]
    fn emits_when_byte_limit_reached_exactly() {
        let now = Instant::now();
        // `[aaaa,bbbb]` = 2 + 4 + 1 + 4 = 11 bytes.
        let mut b = Batcher::new(limits(100, 11));
        assert!(b.push(rec(4), now).is_none());
        assert_eq!(b.body_len(), 6);
        let batch = b.push(rec(4), now).expect("exactly max_bytes is full");
        assert_eq!(array_len(&batch), 11);
    }

    #[test]
    fn record_that_does_not_fit_starts_next_batch() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(100, 12));
        assert!(b.push(rec(4), now).is_none());
        let batch = b.push(rec(6), now).expect("2+4+1+6 = 13 > 12");
        assert_eq!(batch, vec![rec(4)]);
        assert_eq!(b.len(), 1);
        assert_eq!(b.body_len(), 8);
    }

    #[test]
    fn oversized_record_goes_out_alone() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(100, 10));
        // Alone and empty: emitted straight away.
        assert_eq!(b.push(rec(50), now), Some(vec![rec(50)]));
        // After a pending record: the pending one goes first, the big one is full and waits.
        assert!(b.push(rec(1), now).is_none());
        assert_eq!(b.push(rec(50), now), Some(vec![rec(1)]));
        assert!(b.is_full());
        assert_eq!(b.take(), Some(vec![rec(50)]));
        assert!(b.take().is_none());
    }

    #[test]
    fn deadline_is_first_record_plus_timeout() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits(100, 1 << 20));
        assert_eq!(b.deadline(), None);
        b.push(rec(1), t0);
        b.push(rec(1), t0 + Duration::from_millis(60));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(100)));
        assert!(!b.is_due(t0 + Duration::from_millis(99)));
        assert!(b.is_due(t0 + Duration::from_millis(100)));
        b.take();
        assert_eq!(b.deadline(), None);
        b.push(rec(1), t0 + Duration::from_millis(150));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(250)));
    }

    #[test]
    fn zero_limits_still_move_records() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(0, 0));
        assert_eq!(b.push(rec(3), now), Some(vec![rec(3)]));
    }

    /// Input records paired with the time offset (ms) at which each was pushed.
    fn inputs() -> impl Strategy<Value = (usize, usize, Vec<(usize, u64)>)> {
        (
            1usize..8,
            1usize..64,
            prop::collection::vec((0usize..40, 0u64..50), 0..200),
        )
    }

    proptest! {
        #[test]
        fn batches_respect_limits_and_order((max_items, max_bytes, input) in inputs()) {
            let t0 = Instant::now();
            let mut b = Batcher::new(limits(max_items, max_bytes));
            // Tag each record with its index so order is checkable; pad to the drawn length.
            let records: Vec<Bytes> = input
                .iter()
                .enumerate()
                .map(|(i, (len, _))| {
                    let tag = i.to_string();
                    let pad = len.saturating_sub(tag.len());
                    Bytes::from(format!("{tag}{}", " ".repeat(pad)))
                })
                .collect();
            let mut batches = Vec::new();
            let mut at = t0;
            for (i, (record, (_, dt))) in records.iter().zip(&input).enumerate() {
                at += Duration::from_millis(*dt);
                let first_of_batch = b.is_empty();
                if let Some(batch) = b.push(record.clone(), at) {
                    batches.push(batch);
                }
                if first_of_batch && !b.is_empty() && b.len() == 1 {
                    prop_assert_eq!(b.deadline(), Some(at + Duration::from_millis(100)));
                }
                if b.is_full() {
                    batches.push(b.take().unwrap());
                }
                prop_assert!(!b.is_full());
                // What is pending is exactly the input not yet emitted; its size is tracked.
                let emitted: usize = batches.iter().map(Vec::len).sum();
                prop_assert_eq!(b.len(), i + 1 - emitted);
                prop_assert_eq!(b.body_len(), if b.is_empty() { 2 } else { array_len(&records[emitted..=i]) });
            }
            if let Some(rest) = b.take() {
                batches.push(rest);
            }
            for batch in &batches {
                prop_assert!(!batch.is_empty());
                prop_assert!(batch.len() <= max_items);
                prop_assert!(batch.len() == 1 || array_len(batch) <= max_bytes,
                    "batch of {} records is {} bytes > {}", batch.len(), array_len(batch), max_bytes);
            }
            let flat: Vec<Bytes> = batches.into_iter().flatten().collect();
            prop_assert_eq!(flat, records);
        }

        #[test]
        fn deadline_tracks_the_first_record((max_items, max_bytes, input) in inputs()) {
            let t0 = Instant::now();
            let mut b = Batcher::new(limits(max_items, max_bytes));
            let mut at = t0;
            let mut first: Option<Instant> = None;
            for (len, dt) in input {
                at += Duration::from_millis(dt);
                // A due batch is flushed before the next record, as the delivery loop does.
                if b.is_due(at) {
                    b.take();
                    first = None;
                }
                if b.is_empty() {
                    first = Some(at);
                }
                let emitted = b.push(rec(len), at);
                if emitted.is_some() {
                    // The pending batch (if any) started with this record.
                    first = if b.is_empty() { None } else { Some(at) };
                }
                if b.is_full() {
                    b.take();
                    first = None;
                }
                prop_assert_eq!(b.deadline(), first.map(|f| f + Duration::from_millis(100)));
                prop_assert_eq!(b.deadline().is_some(), !b.is_empty());
            }
        }
    }
}
