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

use fnbox_limits::MemoryGroup;

use crate::telemetry::ReportMetrics;

/// The instance's counters at an invocation's start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UsageBaseline {
    cpu: Duration,
    written: u64,
}

impl UsageBaseline {
    pub(crate) fn now(memory: &MemoryGroup) -> Self {
        let (cpu, written) = memory.usage();
        UsageBaseline { cpu, written }
    }

    /// `metrics` with the CPU and storage used since the baseline.
    pub(crate) fn apply(&self, memory: &MemoryGroup, metrics: ReportMetrics) -> ReportMetrics {
        let (cpu, written) = memory.usage();
        let (cpu, written) = (
            cpu.saturating_sub(self.cpu),
            written.saturating_sub(self.written),
        );
        metrics.with_usage(cpu, written)
    }
}
