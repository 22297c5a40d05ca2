//! Pure correlation of the engine's observations into what exporters emit: one finished
//! invocation (with its cold start, if it caused one), init reports, log lines tied to the
//! invocation in flight on their instance, instance counts by state, refusals.
//!
//! # Limitations
//! A `[Function]` / `[Extension]` line carries no request id: it is tied to the invocation in
//! flight on its instance when there is exactly one (always, with `concurrent_num: 1`), and
//! exported without a span otherwise. Other output lines reach the exporters on a channel of
//! their own, possibly after the invocation ended: they are tied by the time they were read to
//! one of the instance's last [`RECENT`] invocations.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use fnbox_engine::telemetry::{Event, Phase, ReportMetrics, Status};
use fnbox_engine::trace::TraceContext;
use fnbox_engine::{Observation, Observed};

/// A finished init phase.
#[derive(Clone, Debug, PartialEq)]
pub struct InitDone {
    /// When it started.
    pub start: DateTime<Utc>,
    /// When it ended.
    pub end: DateTime<Utc>,
    /// Outcome.
    pub status: Status,
    /// Set when not success.
    pub error_type: Option<String>,
    /// The request that caused it.
    pub caused_by: String,
}

/// A finished invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct InvocationDone {
    /// Function.
    pub function: Arc<str>,
    /// Instance.
    pub pod: Arc<str>,
    /// Request id.
    pub request_id: String,
    /// The context it ran under.
    pub trace: TraceContext,
    /// `platform.start`.
    pub start: DateTime<Utc>,
    /// `platform.runtimeDone`, when the runtime answered.
    pub runtime_done: Option<DateTime<Utc>>,
    /// `platform.report`'s end.
    pub end: DateTime<Utc>,
    /// Outcome.
    pub status: Status,
    /// Set when not success.
    pub error_type: Option<String>,
    /// Report figures.
    pub metrics: ReportMetrics,
    /// The init this invocation caused (a cold start).
    pub cold: Option<InitDone>,
}

/// Where a log line came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `[Function]` line of the runtime.
    Function,
    /// An `[Extension]` line of the named extension.
    Extension(String),
    /// Any other output line of the runtime or an extension.
    Output(String),
}

/// One log line.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// Function.
    pub function: Arc<str>,
    /// Instance.
    pub pod: Arc<str>,
    /// When it was read.
    pub time: DateTime<Utc>,
    /// The line.
    pub body: String,
    /// Where from.
    pub source: Source,
    /// The invocation it belongs to.
    pub invocation: Option<(String, TraceContext)>,
}

/// What the exporters act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// An invocation ended.
    Invocation(Box<InvocationDone>),
    /// An init phase began (`faas.coldstarts`).
    InitStarted {
        /// Function.
        function: Arc<str>,
    },
    /// An init phase ended (`faas.init_duration`; a span of its own when it failed).
    Init {
        /// Function.
        function: Arc<str>,
        /// Instance.
        pod: Arc<str>,
        /// The phase.
        init: InitDone,
        /// `durationMs` of its report.
        duration_ms: f64,
    },
    /// A log line.
    Log(LogLine),
    /// Instances of a function by state changed: the new counts.
    States {
        /// Function.
        function: Arc<str>,
        /// State name → instances.
        counts: Vec<(&'static str, i64)>,
    },
    /// An invocation was refused (every instance busy).
    Refused {
        /// Function.
        function: Arc<str>,
    },
}

#[derive(Default)]
struct Pending {
    trace: Option<TraceContext>,
    start: Option<DateTime<Utc>>,
    runtime_done: Option<DateTime<Utc>>,
    cold: Option<InitDone>,
}

/// Finished invocations kept per instance to place late output lines.
pub const RECENT: usize = 16;

#[derive(Default)]
struct Pod {
    recent: std::collections::VecDeque<(DateTime<Utc>, DateTime<Utc>, String, TraceContext)>,
    state: Option<&'static str>,
    init_start: Option<(DateTime<Utc>, String)>,
    /// A successful init whose invocation has not started yet.
    cold: Option<InitDone>,
    in_flight: HashMap<String, Pending>,
}

/// The correlation state.
#[derive(Default)]
pub struct Model {
    pods: HashMap<(Arc<str>, Arc<str>), Pod>,
}

const STATES: [&str; 5] = ["initializing", "idle", "busy", "shutting_down", "dead"];

impl Model {
    /// Feeds one observation; returns what it completed.
    pub fn observe(&mut self, o: &Observed, out: &mut Vec<Output>) {
        match &o.what {
            Observation::Refused => out.push(Output::Refused {
                function: o.function.clone(),
            }),
            Observation::State(state) => {
                let key = (o.function.clone(), o.pod_name.clone());
                if state.name() == "dead" {
                    self.pods.remove(&key);
                } else {
                    self.pods.entry(key).or_default().state = Some(state.name());
                }
                out.push(self.states(&o.function));
            }
            Observation::Telemetry(event) => self.event(o, event, out),
        }
    }

    /// A line of other output of an instance (not telemetry), from the engine's line echo.
    pub fn output(
        &mut self,
        function: Arc<str>,
        pod: Arc<str>,
        (time, who, body): (DateTime<Utc>, String, String),
        out: &mut Vec<Output>,
    ) {
        let invocation = self.running_at(&function, &pod, time);
        out.push(Output::Log(LogLine {
            function,
            pod,
            time,
            body,
            source: Source::Output(who),
            invocation,
        }));
    }

    /// The function a pod belongs to, when known.
    pub fn function_of(&self, pod: &str) -> Option<Arc<str>> {
        self.pods
            .keys()
            .find(|(_, p)| &**p == pod)
            .map(|(f, _)| f.clone())
    }

    fn states(&self, function: &Arc<str>) -> Output {
        let mut counts: Vec<(&'static str, i64)> = STATES.iter().map(|s| (*s, 0)).collect();
        for ((f, _), pod) in &self.pods {
            if f == function {
                let s = pod.state.unwrap_or("initializing");
                if let Some(c) = counts.iter_mut().find(|(n, _)| *n == s) {
                    c.1 += 1;
                }
            }
        }
        Output::States {
            function: function.clone(),
            counts,
        }
    }

    /// The invocation of the pod that was running at `time`: a finished one whose span
    /// contains it, else the only one in flight that had started by then.
    fn running_at(
        &self,
        function: &Arc<str>,
        pod: &Arc<str>,
        time: DateTime<Utc>,
    ) -> Option<(String, TraceContext)> {
        let p = self.pods.get(&(function.clone(), pod.clone()))?;
        if let Some((_, _, id, t)) = p
            .recent
            .iter()
            .find(|(start, end, _, _)| *start <= time && time <= *end)
        {
            return Some((id.clone(), *t));
        }
        let mut started = p
            .in_flight
            .iter()
            .filter(|(_, pending)| pending.start.is_some_and(|s| s <= time));
        match (started.next(), started.next()) {
            (Some((id, pending)), None) => Some((id.clone(), pending.trace?)),
            _ => None,
        }
    }

    fn current(&self, function: &Arc<str>, pod: &Arc<str>) -> Option<(String, TraceContext)> {
        let p = self.pods.get(&(function.clone(), pod.clone()))?;
        if p.in_flight.len() != 1 {
            return None;
        }
        let (id, pending) = p.in_flight.iter().next()?;
        Some((id.clone(), pending.trace?))
    }

    fn event(&mut self, o: &Observed, event: &Event, out: &mut Vec<Output>) {
        let key = (o.function.clone(), o.pod_name.clone());
        match event {
            Event::Start {
                phase: Phase::Init,
                time,
                trace_id,
                ..
            } => {
                let new = !self.pods.contains_key(&key);
                let pod = self.pods.entry(key).or_default();
                pod.init_start = Some((*time, trace_id.clone()));
                out.push(Output::InitStarted {
                    function: o.function.clone(),
                });
                if new {
                    out.push(self.states(&o.function));
                }
            }
            Event::Report {
                phase: Phase::Init,
                start,
                end,
                trace_id,
                status,
                error_type,
                metrics,
                ..
            } => {
                let pod = self.pods.entry(key).or_default();
                let init = InitDone {
                    start: pod.init_start.take().map(|(t, _)| t).unwrap_or(*start),
                    end: *end,
                    status: *status,
                    error_type: error_type.clone(),
                    caused_by: trace_id.clone(),
                };
                if *status == Status::Success {
                    pod.cold = Some(init.clone());
                }
                out.push(Output::Init {
                    function: o.function.clone(),
                    pod: o.pod_name.clone(),
                    init,
                    duration_ms: metrics.duration_ms,
                });
            }
            Event::Start {
                phase: Phase::Invoke,
                time,
                trace_id,
                trace,
            } => {
                let pod = self.pods.entry(key).or_default();
                // The first invocation after a successful init: a cold start when it is the
                // request that caused the init (a reserved instance's was warmed beforehand).
                let cold = pod.cold.take().filter(|i| i.caused_by == *trace_id);
                pod.in_flight.insert(
                    trace_id.clone(),
                    Pending {
                        trace: Some(trace.unwrap_or_else(|| {
                            TraceContext::for_invocation(
                                trace_id,
                                time.timestamp().max(0) as u64,
                                None,
                            )
                        })),
                        start: Some(*time),
                        runtime_done: None,
                        cold,
                    },
                );
            }
            Event::RuntimeDone {
                phase: Phase::Invoke,
                time,
                trace_id,
                ..
            } => {
                if let Some(p) = self
                    .pods
                    .get_mut(&key)
                    .and_then(|p| p.in_flight.get_mut(trace_id))
                {
                    p.runtime_done = Some(*time);
                }
            }
            Event::Report {
                phase: Phase::Invoke,
                start,
                end,
                trace_id,
                status,
                error_type,
                metrics,
                ..
            } => {
                let pod = self.pods.entry(key).or_default();
                let pending = pod.in_flight.remove(trace_id).unwrap_or_default();
                let start = pending.start.unwrap_or(*start);
                if let Some(t) = pending.trace {
                    if pod.recent.len() >= RECENT {
                        pod.recent.pop_front();
                    }
                    pod.recent.push_back((start, *end, trace_id.clone(), t));
                }
                out.push(Output::Invocation(Box::new(InvocationDone {
                    function: o.function.clone(),
                    pod: o.pod_name.clone(),
                    request_id: trace_id.clone(),
                    trace: pending.trace.unwrap_or_else(|| {
                        TraceContext::for_invocation(
                            trace_id,
                            start.timestamp().max(0) as u64,
                            None,
                        )
                    }),
                    start,
                    runtime_done: pending.runtime_done,
                    end: *end,
                    status: *status,
                    error_type: error_type.clone(),
                    metrics: *metrics,
                    cold: pending.cold,
                })));
            }
            Event::Function { time, line } => {
                let invocation = self.current(&o.function, &o.pod_name);
                out.push(Output::Log(LogLine {
                    function: o.function.clone(),
                    pod: o.pod_name.clone(),
                    time: *time,
                    body: line.clone(),
                    source: Source::Function,
                    invocation,
                }));
            }
            Event::Extension { time, name, line } => {
                let invocation = self.current(&o.function, &o.pod_name);
                out.push(Output::Log(LogLine {
                    function: o.function.clone(),
                    pod: o.pod_name.clone(),
                    time: *time,
                    body: line.clone(),
                    source: Source::Extension(name.clone()),
                    invocation,
                }));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnbox_engine::lifecycle::State;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn obs(what: Observation) -> Observed {
        Observed {
            function: "f".into(),
            pod_name: "f-128-00000001".into(),
            what,
        }
    }

    fn ev(e: Event) -> Observed {
        obs(Observation::Telemetry(Arc::new(e)))
    }

    fn report(phase: Phase, id: &str, status: Status, start: i64, end: i64) -> Event {
        Event::Report {
            phase,
            start: at(start),
            end: at(end),
            trace_id: id.into(),
            status,
            error_type: (status != Status::Success).then(|| "Function.Error".into()),
            metrics: ReportMetrics::new(
                std::time::Duration::from_millis((end - start) as u64),
                1 << 20,
                128,
            ),
            pod_name: "f-128-00000001".into(),
        }
    }

    #[test]
    fn a_cold_invocation_carries_its_init_and_lines_get_its_span() {
        let mut m = Model::default();
        let mut out = Vec::new();
        m.observe(
            &ev(Event::Start {
                phase: Phase::Init,
                time: at(0),
                trace_id: "r1".into(),
                trace: None,
            }),
            &mut out,
        );
        m.observe(
            &ev(report(Phase::Init, "r1", Status::Success, 0, 50)),
            &mut out,
        );
        m.observe(&obs(Observation::State(State::Idle)), &mut out);
        m.observe(
            &ev(Event::Start {
                phase: Phase::Invoke,
                time: at(60),
                trace_id: "r1".into(),
                trace: None,
            }),
            &mut out,
        );
        m.observe(
            &ev(Event::Function {
                time: at(61),
                line: "[Function] hi".into(),
            }),
            &mut out,
        );
        m.observe(
            &ev(report(Phase::Invoke, "r1", Status::Error, 60, 70)),
            &mut out,
        );
        m.observe(
            &ev(Event::Start {
                phase: Phase::Invoke,
                time: at(80),
                trace_id: "r2".into(),
                trace: None,
            }),
            &mut out,
        );
        m.observe(
            &ev(report(Phase::Invoke, "r2", Status::Success, 80, 90)),
            &mut out,
        );
        let invs: Vec<&InvocationDone> = out
            .iter()
            .filter_map(|o| match o {
                Output::Invocation(i) => Some(&**i),
                _ => None,
            })
            .collect();
        assert_eq!(invs.len(), 2);
        assert_eq!(invs[0].cold.as_ref().map(|c| c.end), Some(at(50)));
        assert_eq!(invs[0].status, Status::Error);
        assert!(invs[1].cold.is_none());
        let log = out
            .iter()
            .find_map(|o| match o {
                Output::Log(l) => Some(l),
                _ => None,
            })
            .unwrap();
        assert_eq!(log.invocation.as_ref().map(|i| i.0.as_str()), Some("r1"));
        assert_eq!(log.invocation.as_ref().map(|i| i.1), Some(invs[0].trace));
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::States { counts, .. } if counts.contains(&("idle", 1)))));
    }

    #[test]
    fn a_reserved_instance_init_is_not_a_cold_start_of_a_later_request() {
        let mut m = Model::default();
        let mut out = Vec::new();
        m.observe(
            &ev(report(Phase::Init, "warm-up", Status::Success, 0, 50)),
            &mut out,
        );
        m.observe(
            &ev(Event::Start {
                phase: Phase::Invoke,
                time: at(60),
                trace_id: "r1".into(),
                trace: None,
            }),
            &mut out,
        );
        m.observe(
            &ev(report(Phase::Invoke, "r1", Status::Success, 60, 70)),
            &mut out,
        );
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::Invocation(i) if i.cold.is_none())));
    }
}
