//! FunctionGraph's `cpu used` and `storage used` figures of one invocation (the `Finish invoke
//! request` line): what the instance's processes used between the invocation's start and the
//! moment the figures are taken, read from the memory group's processes (fnbox-limits).
//!
//! - `cpu used` (`…U`): CPU time (`utime + stime` of the instance's live processes plus what
//!   their reaped children used) over the wall duration, in cores: 0.300U is 30 % of one core
//!   on average.
//! - `storage used` (`…MB`): bytes the instance's processes wrote to disk-backed files (`/tmp`,
//!   the code directory): `write_bytes` of `/proc/<pid>/io`, counted at `write` time.
//!
//! Limits, documented in docs/design.md: a process that exits during the invocation takes its
//! counters with it unless its parent reaps it (CPU time then moves to the parent's `cutime`;
//! written bytes do not); tmpfs writes are not counted; with `concurrent_num` > 1 each
//! invocation's figures cover everything the instance did meanwhile.

use std::time::Duration;

use fnbox_limits::{MemoryGroup, Usage};

use crate::telemetry::ReportMetrics;

/// What an invocation read of its instance at its start: the usage figures' baseline when the
/// dialect reports them ([`crate::Dialect::reports_usage`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct UsageBaseline(Option<Usage>);

impl UsageBaseline {
    /// At an invocation's start: restarts the memory peak when `reset_peak` (one invocation at
    /// a time) and takes the usage baseline when `usage`, in one pass over the processes.
    pub(crate) fn begin(memory: &MemoryGroup, reset_peak: bool, usage: bool) -> Self {
        UsageBaseline(match (reset_peak, usage) {
            (true, true) => Some(memory.reset_peak_with_usage()),
            (true, false) => {
                memory.reset_peak();
                None
            }
            (false, true) => Some(memory.usage()),
            (false, false) => None,
        })
    }

    /// The memory peak and the figures without CPU and storage, as of now: one reading of the
    /// processes' resident sets.
    pub(crate) fn peak_metrics(
        memory: &MemoryGroup,
        elapsed: Duration,
        memory_size_mb: u32,
    ) -> ReportMetrics {
        ReportMetrics::new(elapsed, memory.peak_bytes(), memory_size_mb)
    }

    /// The memory peak and the report's figures as of now (`elapsed` since the start), with
    /// the CPU and storage used since the baseline when there is one.
    pub(crate) fn metrics(
        &self,
        memory: &MemoryGroup,
        elapsed: Duration,
        memory_size_mb: u32,
    ) -> (u64, ReportMetrics) {
        match self.0 {
            Some(base) => {
                let (peak, now) = memory.peak_with_usage();
                let metrics = ReportMetrics::new(elapsed, peak, memory_size_mb).with_usage(
                    now.cpu.saturating_sub(base.cpu),
                    now.written.saturating_sub(base.written),
                );
                (peak, metrics)
            }
            None => {
                let peak = memory.peak_bytes();
                (peak, ReportMetrics::new(elapsed, peak, memory_size_mb))
            }
        }
    }
}
