//! The results: one [`Figure`] per measured quantity (ours, the baseline
//! measured in the same run, their ratio, the target), the table
//! printed on stdout and the same as JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Throughputs and rates.
    Higher,
    /// Latencies and memory.
    Lower,
}

/// What the issue asks of a figure, checked against the measured values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Ours must be at least this many units.
    OursAtLeast(f64),
    /// Ours must be at most this many units.
    OursAtMost(f64),
    /// Ours / baseline must be at least this.
    RatioAtLeast(f64),
    /// Ours / baseline must be at most this.
    RatioAtMost(f64),
    /// Ours must equal the baseline (a count that must all succeed).
    Equal,
    /// Ours must be at most `ours` units and at most `ratio` times the
    /// baseline (a latency with an absolute bound and a relative one).
    OursAndRatioAtMost {
        /// The most units.
        ours: f64,
        /// The largest ratio.
        ratio: f64,
    },
}

impl Target {
    /// The target as a short text, e.g. `>= 550` or `ratio <= 1.5`.
    pub fn describe(self) -> String {
        match self {
            Self::OursAtLeast(value) => format!(">= {}", number(value)),
            Self::OursAtMost(value) => format!("<= {}", number(value)),
            Self::RatioAtLeast(value) => format!("ratio >= {value}"),
            Self::RatioAtMost(value) => format!("ratio <= {value}"),
            Self::Equal => String::from("= baseline"),
            Self::OursAndRatioAtMost { ours, ratio } => {
                format!("<= {} and ratio <= {ratio}", number(ours))
            }
        }
    }

    /// Whether `ours` (and `ratio`, ours / baseline) meet the target.
    pub fn is_met(self, ours: f64, baseline: f64, ratio: f64) -> bool {
        match self {
            Self::OursAtLeast(value) => ours >= value,
            Self::OursAtMost(value) => ours <= value,
            Self::RatioAtLeast(value) => ratio >= value,
            Self::RatioAtMost(value) => ratio <= value,
            Self::Equal => ours == baseline,
            Self::OursAndRatioAtMost {
                ours: most,
                ratio: largest,
            } => ours <= most && ratio <= largest,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// A stable machine-readable name, e.g. `output_pipe_ws`.
    pub id: String,
    /// What was measured, for people.
    pub name: String,
    /// The unit of `ours` and `baseline` (`MB/s`, `µs`, `1/s`, `KiB`, `count`).
    pub unit: String,
    /// Which way the figure improves.
    pub better: Better,
    /// exec-server's value.
    pub ours: f64,
    /// The baseline's value, measured in the same run.
    pub baseline: f64,
    /// What the baseline is.
    pub baseline_name: String,
    /// `ours / baseline`.
    pub ratio: f64,
    /// The target, as text (empty when there is none).
    pub target: String,
    /// Whether the target is met (`None` when there is none).
    pub target_met: Option<bool>,
    /// Anything else worth knowing about this row (sizes, counts).
    pub note: String,
}

impl Figure {
    /// A figure with `ratio = ours / baseline`, checked against `target`.
    #[allow(clippy::too_many_arguments)] // Each is one column of the table.
    pub fn new(
        id: &str,
        name: &str,
        unit: &str,
        better: Better,
        ours: f64,
        baseline: f64,
        baseline_name: &str,
        target: Option<Target>,
    ) -> Self {
        let ratio = if baseline == 0.0 {
            f64::NAN
        } else {
            ours / baseline
        };
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            unit: unit.to_owned(),
            better,
            ours,
            baseline,
            baseline_name: baseline_name.to_owned(),
            ratio,
            target: target.map(Target::describe).unwrap_or_default(),
            target_met: target.map(|target| target.is_met(ours, baseline, ratio)),
            note: String::new(),
        }
    }

    /// The same figure with `note`.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

/// A part of the run that did not produce figures, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The section, e.g. `ssh`.
    pub section: String,
    /// Why it was skipped.
    pub reason: String,
}

/// A section that failed: its figures are missing.
#[derive(Debug, Clone, Serialize)]
pub struct SectionError {
    /// The section, e.g. `throughput`.
    pub section: String,
    /// The error, with its causes.
    pub error: String,
}

/// How long a section took, and how busy the machine was when it began
/// (the load average includes the benchmark's own earlier sections).
#[derive(Debug, Clone, Serialize)]
pub struct SectionTiming {
    /// The section, e.g. `throughput`.
    pub section: String,
    /// Seconds it took.
    pub seconds: f64,
    /// `/proc/loadavg`'s first three fields when it began.
    pub load_average_at_start: String,
}

/// The machine the run was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub nproc: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub model_name: String,
    /// `uname -r`, from `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// `/proc/loadavg`'s first three fields when the run started.
    pub load_average_at_start: String,
    /// The same when it ended.
    pub load_average_at_end: String,
}

/// Everything one run found: what the JSON file holds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: String,
    /// The command line of the driver.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// The sizes the run used.
    pub sizes: serde_json::Value,
    /// Seconds the whole run took.
    pub elapsed_seconds: f64,
    /// The rows of the table.
    pub figures: Vec<Figure>,
    /// Sections that did not run, and why.
    pub skipped: Vec<Skipped>,
    /// Sections that failed.
    pub errors: Vec<SectionError>,
    /// Every section that ran, in order.
    pub sections: Vec<SectionTiming>,
}

impl Report {
    /// The table as text: one line per figure, then the skipped sections and
    /// the errors.
    pub fn table(&self) -> String {
        let header = [
            "figure",
            "unit",
            "ours",
            "baseline",
            "ratio",
            "target",
            "met",
            "baseline is",
        ];
        let mut rows: Vec<[String; 8]> = vec![header.map(str::to_owned)];
        for figure in &self.figures {
            rows.push([
                figure.name.clone(),
                figure.unit.clone(),
                number(figure.ours),
                number(figure.baseline),
                format!("{:.2}", figure.ratio),
                figure.target.clone(),
                match figure.target_met {
                    Some(true) => String::from("yes"),
                    Some(false) => String::from("NO"),
                    None => String::new(),
                },
                figure.baseline_name.clone(),
            ]);
        }
        let mut widths = [0usize; 8];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut text = String::new();
        for (index, row) in rows.iter().enumerate() {
            let mut line = String::from("|");
            for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
                let padding = width - cell.chars().count();
                // Numbers are right-aligned, text left-aligned.
                if (2..=4).contains(&column) && index > 0 {
                    let _ = write!(line, " {}{cell} |", " ".repeat(padding));
                } else {
                    let _ = write!(line, " {cell}{} |", " ".repeat(padding));
                }
            }
            text.push_str(&line);
            text.push('\n');
            if index == 0 {
                let mut rule = String::from("|");
                for (column, width) in widths.iter().enumerate() {
                    // Markdown's alignment row: a colon on the right of the numbers.
                    if (2..=4).contains(&column) {
                        let _ = write!(rule, "{}:|", "-".repeat(width + 1));
                    } else {
                        let _ = write!(rule, "{}|", "-".repeat(width + 2));
                    }
                }
                text.push_str(&rule);
                text.push('\n');
            }
        }
        // Rows of one section share their note: it is shown once, after the first.
        let mut previous_note = "";
        for figure in &self.figures {
            if !figure.note.is_empty() && figure.note != previous_note {
                let _ = writeln!(text, "- {}: {}", figure.name, figure.note);
            }
            previous_note = &figure.note;
        }
        for skipped in &self.skipped {
            let _ = writeln!(text, "- {}: skipped ({})", skipped.section, skipped.reason);
        }
        for error in &self.errors {
            let _ = writeln!(text, "- {}: FAILED: {}", error.section, error.error);
        }
        let timings: Vec<String> = self
            .sections
            .iter()
            .map(|timing| {
                format!(
                    "{} {:.0} s (load {})",
                    timing.section, timing.seconds, timing.load_average_at_start
                )
            })
            .collect();
        if !timings.is_empty() {
            let _ = writeln!(text, "- sections: {}", timings.join(", "));
        }
        text
    }
}

/// A number with as many decimals as its size deserves.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if !value.is_finite() {
        format!("{value}")
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_check_the_right_quantity() {
        assert!(Target::OursAtLeast(550.0).is_met(600.0, 1000.0, 0.6));
        assert!(!Target::OursAtMost(40.0).is_met(41.0, 20.0, 2.05));
        assert!(Target::RatioAtMost(1.5).is_met(30.0, 25.0, 1.2));
        assert!(!Target::RatioAtLeast(0.7).is_met(600.0, 1000.0, 0.6));
        assert!(Target::Equal.is_met(1000.0, 1000.0, 1.0));
        let both = Target::OursAndRatioAtMost {
            ours: 5.0,
            ratio: 1.5,
        };
        assert!(both.is_met(4.0, 3.0, 4.0 / 3.0));
        assert!(!both.is_met(4.0, 2.0, 2.0));
        assert!(!both.is_met(6.0, 5.0, 1.2));
    }

    #[test]
    fn the_table_has_a_row_per_figure() {
        let report = Report {
            mode: String::from("quick"),
            command: String::from("exec-bench --quick"),
            machine: Machine {
                nproc: 2,
                model_name: String::from("cpu"),
                kernel: String::from("6"),
                load_average_at_start: String::from("0 0 0"),
                load_average_at_end: String::from("0 0 0"),
            },
            sizes: serde_json::Value::Null,
            elapsed_seconds: 1.0,
            figures: vec![
                Figure::new(
                    "a",
                    "figure a",
                    "MB/s",
                    Better::Higher,
                    500.0,
                    1000.0,
                    "pipe",
                    Some(Target::OursAtLeast(550.0)),
                )
                .with_note("1 GB"),
            ],
            skipped: vec![Skipped {
                section: String::from("ssh"),
                reason: String::from("EXEC_BENCH_SSH is not set"),
            }],
            errors: Vec::new(),
            sections: Vec::new(),
        };
        let table = report.table();
        assert!(table.contains("| figure a "), "{table}");
        assert!(table.contains(" 0.50 |"), "{table}");
        assert!(table.contains("| NO "), "{table}");
        assert!(table.contains("- ssh: skipped"), "{table}");
        assert_eq!(table.lines().count(), 5, "{table}");
    }
}
