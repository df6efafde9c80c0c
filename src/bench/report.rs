//! The machine description and the two outputs of `bench all`: the JSON result and
//! docs/performance.md.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// 1/5/15-minute load averages at the start and at the end of the run.
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub postgres_version: String,
    pub rustc: String,
}

pub fn machine(postgres_version: String) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Machine {
        cpu_model,
        cores,
        memory_gib: mem_kib / 1024.0 / 1024.0,
        kernel,
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
        postgres_version,
        rustc,
    }
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a figure must be to meet its target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
    Below(f64),
    /// Reported without a target (the issue asks only to see it).
    Report,
}

/// How a figure is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A ratio of two figures, "1.23×".
    Ratio,
    Ms,
    Seconds,
    Percent,
    Mb,
}

impl Unit {
    pub fn show(self, v: f64) -> String {
        match self {
            Unit::Ratio => format!("{v:.2}×"),
            Unit::Ms => format!("{v:.1} ms"),
            Unit::Seconds => format!("{v:.3} s"),
            Unit::Percent => format!("{v:.2} %"),
            Unit::Mb => format!("{v:.1} MB"),
        }
    }
}

impl Goal {
    fn met(self, v: f64) -> bool {
        match self {
            Goal::AtLeast(t) => v >= t,
            Goal::AtMost(t) => v <= t,
            Goal::Below(t) => v < t,
            Goal::Report => true,
        }
    }

    fn show(self, unit: Unit) -> String {
        match self {
            Goal::AtLeast(t) => format!("≥ {}", unit.show(t)),
            Goal::AtMost(t) => format!("≤ {}", unit.show(t)),
            Goal::Below(t) => format!("< {}", unit.show(t)),
            Goal::Report => "reported".into(),
        }
    }

    /// "missed by …": the distance to the target, and how far off that is relative to it.
    fn missed_by(self, v: f64, unit: Unit) -> String {
        match self {
            Goal::AtLeast(t) => format!(
                "missed by {} ({:.0} % short)",
                unit.show(t - v),
                (1.0 - v / t) * 100.0
            ),
            Goal::AtMost(t) | Goal::Below(t) => {
                format!("missed by {} ({:.1}× the target)", unit.show(v - t), v / t)
            }
            Goal::Report => String::new(),
        }
    }
}

/// One target of issue 11 with the figure measured for it.
#[derive(Debug, Clone)]
pub struct TargetRow {
    pub target: String,
    pub backend: String,
    /// `None`: not measured in this run (`detail` says why or how to).
    pub figure: Option<f64>,
    pub unit: Unit,
    pub goal: Goal,
    pub stretch: Option<Goal>,
    /// How the figure was obtained: for a ratio, both sides with their command lines.
    pub detail: String,
}

impl TargetRow {
    pub fn verdict(&self) -> String {
        let Some(v) = self.figure.filter(|v| v.is_finite()) else {
            return "not measured".into();
        };
        if self.goal == Goal::Report {
            return "reported".into();
        }
        let mut s = if self.goal.met(v) {
            "**met**".to_string()
        } else {
            format!("**{}**", self.goal.missed_by(v, self.unit))
        };
        if let Some(st) = self.stretch {
            if st.met(v) {
                s.push_str(&format!("; stretch {} met", st.show(self.unit)));
            } else {
                s.push_str(&format!(
                    "; stretch {} {}",
                    st.show(self.unit),
                    st.missed_by(v, self.unit)
                ));
            }
        }
        s
    }
}

/// The targets as a Markdown table: figure, target, verdict, how.
pub fn target_table(rows: &[TargetRow]) -> String {
    let mut t = String::from("| target | backend | figure | goal | verdict | how |\n");
    t.push_str("|---|---|---|---|---|---|\n");
    for r in rows {
        let figure = r
            .figure
            .filter(|v| v.is_finite())
            .map_or("–".to_string(), |v| r.unit.show(v));
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.target,
            r.backend,
            figure,
            r.goal.show(r.unit),
            r.verdict(),
            r.detail.replace('|', "/")
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(figure: Option<f64>, unit: Unit, goal: Goal, stretch: Option<Goal>) -> TargetRow {
        TargetRow {
            target: "t".into(),
            backend: "postgres".into(),
            figure,
            unit,
            goal,
            stretch,
            detail: "a | b".into(),
        }
    }

    #[test]
    fn a_ratio_short_of_its_target_says_by_how_much() {
        let r = row(
            Some(0.68),
            Unit::Ratio,
            Goal::AtLeast(1.0),
            Some(Goal::AtLeast(1.5)),
        );
        assert_eq!(
            r.verdict(),
            "**missed by 0.32× (32 % short)**; stretch ≥ 1.50× missed by 0.82× (55 % short)"
        );
    }

    #[test]
    fn a_met_ratio_names_the_stretch() {
        let r = row(
            Some(1.6),
            Unit::Ratio,
            Goal::AtLeast(1.0),
            Some(Goal::AtLeast(1.5)),
        );
        assert_eq!(r.verdict(), "**met**; stretch ≥ 1.50× met");
        let r = row(Some(1.0), Unit::Ratio, Goal::AtLeast(1.0), None);
        assert_eq!(r.verdict(), "**met**");
    }

    #[test]
    fn an_upper_bound_missed_gives_the_excess_and_the_multiple() {
        let r = row(Some(20.4), Unit::Ms, Goal::AtMost(5.0), None);
        assert_eq!(r.verdict(), "**missed by 15.4 ms (4.1× the target)**");
        let r = row(Some(1.0), Unit::Seconds, Goal::Below(1.0), None);
        assert_eq!(r.verdict(), "**missed by 0.000 s (1.0× the target)**");
        let r = row(Some(0.15), Unit::Percent, Goal::Below(1.0), None);
        assert_eq!(r.verdict(), "**met**");
    }

    #[test]
    fn missing_and_report_only_figures() {
        assert_eq!(
            row(None, Unit::Ratio, Goal::AtLeast(1.0), None).verdict(),
            "not measured"
        );
        assert_eq!(
            row(Some(f64::NAN), Unit::Ratio, Goal::AtLeast(1.0), None).verdict(),
            "not measured"
        );
        assert_eq!(
            row(Some(3.2), Unit::Seconds, Goal::Report, None).verdict(),
            "reported"
        );
    }

    #[test]
    fn the_table_has_one_line_per_row_and_escapes_pipes() {
        let t = target_table(&[
            row(Some(20.4), Unit::Ms, Goal::AtMost(5.0), None),
            row(None, Unit::Ratio, Goal::AtLeast(1.0), None),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "| t | postgres | 20.4 ms | ≤ 5.0 ms | **missed by 15.4 ms (4.1× the target)** | a / b |"
        );
        assert!(lines[3].starts_with("| t | postgres | – | ≥ 1.00× | not measured |"));
    }
}
