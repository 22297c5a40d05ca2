use super::*;

fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
}

fn model(window_s: u64, max: usize) -> Model {
    let mut f = HashMap::new();
    f.insert(
        Arc::from("f"),
        FunctionInfo {
            memory_size_mb: 128,
        },
    );
    Model::new(
        TimelineConfig {
            window: Duration::from_secs(window_s),
            max_invocations: max,
        },
        f,
    )
}

fn obs(pod: &str, what: Observation) -> Observed {
    Observed {
        function: "f".into(),
        pod_name: pod.into(),
        what,
    }
}

fn ev(e: Event) -> Observation {
    Observation::Telemetry(Arc::new(e))
}

fn start(phase: Phase, id: &str, at: i64) -> Observation {
    ev(Event::Start {
        phase,
        time: t(at),
        trace_id: id.into(),
        trace: None,
    })
}

fn done(phase: Phase, id: &str, at: i64, status: Status, et: Option<&str>) -> Observation {
    ev(Event::RuntimeDone {
        phase,
        time: t(at),
        trace_id: id.into(),
        status,
        error_type: et.map(String::from),
        spans: vec![],
        produced_bytes: None,
    })
}

fn report(phase: Phase, id: &str, s: i64, e: i64, status: Status, et: Option<&str>) -> Observation {
    ev(Event::Report {
        phase,
        start: t(s),
        end: t(e),
        trace_id: id.into(),
        status,
        error_type: et.map(String::from),
        metrics: ReportMetrics {
            duration_ms: (e - s) as f64,
            billed_duration_ms: (e - s) as u64,
            memory_used_mb: 3.5,
            memory_size_mb: 128,
            ..Default::default()
        },
        pod_name: "p".into(),
    })
}

fn line(at: i64, text: &str) -> Observation {
    ev(Event::Function {
        time: t(at),
        line: text.into(),
    })
}

fn invoke(m: &mut Model, pod: &str, id: &str, s: i64, e: i64, status: Status, et: Option<&str>) {
    m.apply(&obs(pod, start(Phase::Invoke, id, s)), t(s));
    m.apply(
        &obs(pod, done(Phase::Invoke, id, e - 1, status, et)),
        t(e - 1),
    );
    m.apply(&obs(pod, report(Phase::Invoke, id, s, e, status, et)), t(e));
}

#[test]
fn a_cold_start_and_an_invocation_become_two_records_with_their_lines() {
    let mut m = model(600, 100);
    m.apply(&obs("p", Observation::State(State::Initializing)), t(0));
    m.apply(&obs("p", start(Phase::Init, "r1", 0)), t(0));
    m.apply(
        &obs("p", done(Phase::Init, "r1", 40, Status::Success, None)),
        t(40),
    );
    m.apply(
        &obs("p", report(Phase::Init, "r1", 0, 41, Status::Success, None)),
        t(41),
    );
    m.apply(&obs("p", Observation::State(State::Idle)), t(41));
    m.apply(&obs("p", start(Phase::Invoke, "r1", 42)), t(42));
    let touched = m.apply(&obs("p", line(43, "[Function] hi")), t(43));
    m.apply(
        &obs("p", done(Phase::Invoke, "r1", 44, Status::Success, None)),
        t(44),
    );
    m.apply(
        &obs(
            "p",
            report(Phase::Invoke, "r1", 42, 46, Status::Success, None),
        ),
        t(46),
    );
    // An extension printing after the report: the instance's last record.
    m.apply(&obs("p", line(50, "[Function] late")), t(50));

    let recs: Vec<&Record> = m.records().collect();
    assert_eq!(recs.len(), 2);
    let (init, inv) = (recs[0], recs[1]);
    assert_eq!(init.phase, Phase::Init);
    assert_eq!(init.outcome(), "success");
    assert_eq!(inv.request_id, "r1");
    assert_eq!(inv.runtime_done, Some(t(44)));
    assert_eq!(inv.end, Some(t(46)));
    assert_eq!(inv.metrics.unwrap().duration_ms, 4.0);
    assert_eq!(
        touched.record,
        Some((inv.id, 1)),
        "the line went to the open invocation"
    );
    let lines: Vec<_> = inv
        .events
        .iter()
        .filter_map(|e| match &**e {
            Event::Function { line, .. } => Some(line.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lines, ["[Function] hi", "[Function] late"]);
    assert!(
        inv.prime.is_some(),
        "the first invocation carries the init report"
    );
    let pod = m.pod("p").unwrap();
    assert_eq!(pod.state, State::Idle);
    assert_eq!(pod.memory_used_mb, Some(3.5));
    assert_eq!(pod.memory_size_mb, 128);
    assert_eq!(pod.invocations, 1);
    let c = m.counters().find(|(f, _)| &***f == "f").unwrap().1;
    assert_eq!((c.invocations, c.errors, c.cold_starts), (1, 0, 1));
}

#[test]
fn outcomes_come_from_status_and_error_type() {
    let mut m = model(600, 100);
    invoke(&mut m, "p", "ok", 0, 5, Status::Success, None);
    invoke(&mut m, "p", "err", 10, 15, Status::Error, Some("Handled"));
    invoke(&mut m, "p", "slow", 20, 25, Status::Timeout, None);
    invoke(
        &mut m,
        "p",
        "oom",
        30,
        35,
        Status::Failure,
        Some("Runtime.OutOfMemory"),
    );
    invoke(
        &mut m,
        "p",
        "exit",
        40,
        45,
        Status::Failure,
        Some("Runtime.ExitError"),
    );
    m.apply(&obs("p", start(Phase::Invoke, "open", 50)), t(50));
    let got: Vec<(&str, &str)> = m
        .records()
        .map(|r| (r.request_id.as_str(), r.outcome()))
        .collect();
    assert_eq!(
        got,
        [
            ("ok", "success"),
            ("err", "error"),
            ("slow", "timeout"),
            ("oom", "oom"),
            ("exit", "crash"),
            ("open", "running")
        ]
    );
    let failures: Vec<_> = m
        .records()
        .filter(|r| r.matches_status("failure"))
        .map(|r| r.request_id.as_str())
        .collect();
    assert_eq!(failures, ["oom", "exit"]);
    assert!(m.records().last().unwrap().matches_status("running"));
    let c = m.counters().next().unwrap().1;
    assert_eq!((c.invocations, c.errors), (5, 4));
}

#[test]
fn history_is_bounded_by_count_and_by_age() {
    let mut m = model(60, 3);
    for i in 0..5 {
        invoke(
            &mut m,
            "p",
            &format!("r{i}"),
            i * 10,
            i * 10 + 5,
            Status::Success,
            None,
        );
    }
    let ids: Vec<_> = m.records().map(|r| r.request_id.clone()).collect();
    assert_eq!(ids, ["r2", "r3", "r4"], "at most 3, oldest dropped");
    // 70 s later the window (60 s) has passed for all of them.
    m.prune(t(70_000));
    assert_eq!(m.records().count(), 0);
    // The totals are not history: they stay.
    assert_eq!(m.counters().next().unwrap().1.invocations, 5);
}

#[test]
fn an_open_record_dropped_by_the_limits_is_forgotten_and_its_report_still_lands() {
    let mut m = model(600, 1);
    m.apply(&obs("p", start(Phase::Invoke, "a", 0)), t(0));
    m.apply(&obs("q", start(Phase::Invoke, "b", 1)), t(1));
    assert_eq!(m.records().count(), 1);
    m.apply(
        &obs("p", report(Phase::Invoke, "a", 0, 9, Status::Success, None)),
        t(9),
    );
    let r = m.records().last().unwrap();
    assert_eq!((r.request_id.as_str(), r.end), ("a", Some(t(9))));
}

#[test]
fn dead_instances_leave_with_the_window() {
    let mut m = model(60, 100);
    m.apply(&obs("p", Observation::State(State::Idle)), t(0));
    m.apply(&obs("p", Observation::State(State::ShuttingDown)), t(1_000));
    m.apply(&obs("p", Observation::State(State::Dead)), t(2_000));
    let p = m.pod("p").unwrap();
    assert_eq!((p.shutdown, p.died), (Some(t(1_000)), Some(t(2_000))));
    m.prune(t(61_000));
    assert!(m.pod("p").is_some());
    m.prune(t(63_000));
    assert!(m.pod("p").is_none());
}

#[test]
fn refusals_are_counted_and_events_per_record_are_capped() {
    let mut m = model(600, 10);
    m.apply(&obs("", Observation::Refused), t(0));
    m.apply(&obs("p", start(Phase::Invoke, "a", 0)), t(0));
    for i in 0..MAX_EVENTS + 7 {
        m.apply(&obs("p", line(1, &format!("[Function] {i}"))), t(1));
    }
    let r = m.records().next().unwrap();
    assert_eq!(r.events.len(), MAX_EVENTS);
    assert_eq!(
        r.events_dropped, 8,
        "7 lines beyond the cap plus the start event's slot"
    );
    assert_eq!(m.counters().next().unwrap().1.refusals, 1);
}

#[test]
fn stats_give_rate_and_percentiles_of_recent_invocations() {
    let mut m = model(600, 1000);
    for i in 0..100 {
        // Durations 1..=100 ms, all ending within the last 10 s before t(20_000).
        let s = 10_000 + i * 50;
        invoke(
            &mut m,
            "p",
            &format!("r{i}"),
            s,
            s + 1 + i,
            Status::Success,
            None,
        );
    }
    let s = m.stats(t(20_000));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].per_second, 10.0);
    assert_eq!(s[0].p50_ms, Some(50.0));
    assert_eq!(s[0].p99_ms, Some(99.0));
    let later = m.stats(t(200_000));
    assert_eq!((later[0].per_second, later[0].p50_ms), (0.0, None));
    assert_eq!(later[0].counters.invocations, 100);
}

#[test]
fn the_config_names_the_flag_when_out_of_range() {
    assert!(TimelineConfig::default().validate().is_ok());
    let e = TimelineConfig {
        window: Duration::ZERO,
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.contains("--ui-history"), "{e}");
    let e = TimelineConfig {
        max_invocations: 0,
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.contains("--ui-max-invocations"), "{e}");
}

#[test]
fn all_records_together_keep_a_bounded_number_of_events() {
    let mut m = model(600, 100_000);
    let per = MAX_EVENTS; // a start and MAX_EVENTS - 1 lines each
    let n = MAX_TOTAL_EVENTS / per + 10;
    for i in 0..n {
        let id = format!("r{i}");
        m.apply(&obs("p", start(Phase::Invoke, &id, 0)), t(0));
        for _ in 1..per {
            m.apply(&obs("p", line(1, "[Function] x")), t(1));
        }
        m.apply(
            &obs("p", report(Phase::Invoke, &id, 0, 2, Status::Success, None)),
            t(2),
        );
    }
    let kept: usize = m.records().map(|r| r.events.len()).sum();
    assert!(kept <= MAX_TOTAL_EVENTS, "{kept}");
    assert!(m.records().count() < n, "the oldest records went");
    assert_eq!(
        m.records().last().unwrap().request_id,
        format!("r{}", n - 1)
    );
}
