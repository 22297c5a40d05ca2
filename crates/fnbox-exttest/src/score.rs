//! The scorecard: one verdict, one reason and the figures per scenario; printed for people,
//! written as JSON for CI.

use std::fmt::Write as _;

use serde::Serialize;

/// A scenario's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Behaved as the platform needs.
    Pass,
    /// Works, with something worth a look.
    Warn,
    /// Would lose data, slow or break functions on the real platform.
    Fail,
}

impl Verdict {
    /// `PASS` / `WARN` / `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One figure: a name and a value (numbers stay numbers in JSON).
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// Name (`snake_case`, unit suffixed).
    pub name: String,
    /// Value.
    pub value: serde_json::Value,
}

/// One scenario's result.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub scenario: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Why, for a person: what happened and what to change.
    pub reason: String,
    /// Every finding, worst first (the reason is the first).
    pub findings: Vec<String>,
    /// Measured figures, in order.
    pub figures: Vec<Figure>,
}

/// Collects findings and figures while a scenario is judged.
#[derive(Default)]
pub struct Judge {
    findings: Vec<(Verdict, String)>,
    figures: Vec<Figure>,
}

impl Judge {
    /// A failure.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.findings.push((Verdict::Fail, why.into()));
    }

    /// A warning.
    pub fn warn(&mut self, why: impl Into<String>) {
        self.findings.push((Verdict::Warn, why.into()));
    }

    /// A note for when all is well (the reason of a pass).
    pub fn ok(&mut self, what: impl Into<String>) {
        self.findings.push((Verdict::Pass, what.into()));
    }

    /// Whether anything failed so far.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|(v, _)| *v == Verdict::Fail)
    }

    /// Whether nothing failed or warned so far.
    pub fn clean(&self) -> bool {
        self.findings.iter().all(|(v, _)| *v == Verdict::Pass)
    }

    /// Adds a figure.
    pub fn figure(&mut self, name: &str, value: impl Serialize) {
        self.figures.push(Figure {
            name: name.to_string(),
            value: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        });
    }

    /// The result: the worst verdict, its first finding as the reason.
    pub fn finish(self, scenario: &str) -> ScenarioResult {
        let verdict = self
            .findings
            .iter()
            .map(|(v, _)| *v)
            .max()
            .unwrap_or(Verdict::Pass);
        let mut findings: Vec<(Verdict, String)> = self.findings;
        findings.sort_by_key(|f| std::cmp::Reverse(f.0));
        let reason = findings
            .first()
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| "ok".into());
        ScenarioResult {
            scenario: scenario.to_string(),
            verdict,
            reason,
            findings: findings.into_iter().map(|(_, f)| f).collect(),
            figures: self.figures,
        }
    }
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Scorecard {
    /// What was tested, as given.
    pub target: String,
    /// Its dialect.
    pub dialect: String,
    /// Its extensions.
    pub extensions: Vec<String>,
    /// Memory-limit mode the instances ran with.
    pub memory_mode: String,
    /// One result per scenario, in run order.
    pub scenarios: Vec<ScenarioResult>,
}

impl Scorecard {
    /// Whether any scenario failed.
    pub fn failed(&self) -> bool {
        self.scenarios.iter().any(|s| s.verdict == Verdict::Fail)
    }

    /// The text scorecard: a heading, one line per scenario, then each scenario's further
    /// findings and figures.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "fnbox test-extension {} ({}; extension(s): {}; {})",
            self.target,
            self.dialect,
            self.extensions.join(", "),
            self.memory_mode
        );
        let width = self
            .scenarios
            .iter()
            .map(|s| s.scenario.len())
            .max()
            .unwrap_or(0);
        for s in &self.scenarios {
            let _ = writeln!(
                out,
                "{}  {:width$}  {}",
                s.verdict.label(),
                s.scenario,
                s.reason
            );
        }
        let _ = writeln!(out);
        for s in &self.scenarios {
            let _ = writeln!(out, "{}:", s.scenario);
            for f in s.findings.iter().skip(1) {
                let _ = writeln!(out, "  - {f}");
            }
            let figures: Vec<String> = s
                .figures
                .iter()
                .map(|f| match &f.value {
                    serde_json::Value::String(v) => format!("{}={v}", f.name),
                    v => format!("{}={v}", f.name),
                })
                .collect();
            let mut line = String::from(" ");
            for fig in figures {
                if line.len() + fig.len() > 98 {
                    let _ = writeln!(out, "{line}");
                    line = String::from(" ");
                }
                line.push(' ');
                line.push_str(&fig);
            }
            if line.trim().is_empty() {
                continue;
            }
            let _ = writeln!(out, "{line}");
        }
        let (pass, warn, fail) =
            self.scenarios
                .iter()
                .fold((0, 0, 0), |(p, w, f), s| match s.verdict {
                    Verdict::Pass => (p + 1, w, f),
                    Verdict::Warn => (p, w + 1, f),
                    Verdict::Fail => (p, w, f + 1),
                });
        let _ = writeln!(out, "\n{pass} passed, {warn} warned, {fail} failed");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_finding_is_the_verdict_and_the_reason() {
        let mut j = Judge::default();
        j.ok("all good");
        j.warn("slow");
        j.fail("lost events");
        j.figure("batches", 3);
        let r = j.finish("warm");
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.reason, "lost events");
        assert_eq!(r.findings, vec!["lost events", "slow", "all good"]);
        let card = Scorecard {
            target: "x".into(),
            dialect: "functiongraph".into(),
            extensions: vec!["extensionX.sh".into()],
            memory_mode: "cgroup".into(),
            scenarios: vec![r, Judge::default().finish("cold-start")],
        };
        assert!(card.failed());
        let text = card.render();
        assert!(text.contains("FAIL  warm        lost events"), "{text}");
        assert!(text.contains("PASS  cold-start  ok"), "{text}");
        assert!(text.contains("batches=3"), "{text}");
        assert!(text.contains("1 passed, 0 warned, 1 failed"), "{text}");
    }
}
