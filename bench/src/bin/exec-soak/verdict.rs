//! Whether a soak ran flat: the median of each resource over the last
//! quarter of the load's samples against the median over the first
//! quarter, and the idle server after the load against the idle server
//! before it. Pure: samples in, findings out.

use crate::sample::Sample;

/// How much a resource may grow from the first quarter to the last: a
/// ratio and a constant on top, so that small counts may wobble.
struct Margin {
    /// The resource's name in the table.
    name: &'static str,
    /// Its value in a sample.
    value: fn(&Sample) -> u64,
    /// The last quarter's median may be up to this many times the first's...
    ratio: f64,
    /// ...plus this much.
    slack: u64,
}

/// The resources judged under load. RSS gets the largest slack: the
/// allocator keeps freed pages for a while, so it settles only after some
/// minutes of the same load.
const MARGINS: [Margin; 4] = [
    Margin {
        name: "RSS (KiB)",
        value: |sample| sample.rss_kib,
        ratio: 1.25,
        slack: 8 * 1024,
    },
    Margin {
        name: "fds",
        value: |sample| sample.fds,
        ratio: 1.25,
        slack: 16,
    },
    Margin {
        name: "threads",
        value: |sample| sample.threads,
        ratio: 1.25,
        slack: 8,
    },
    Margin {
        name: "zombie children",
        value: |sample| sample.zombies,
        ratio: 1.0,
        slack: 2,
    },
];

/// Fds the idle server may hold after the load beyond what it held before
/// it (a log file, a lazily opened `/proc` handle).
const IDLE_FD_SLACK: u64 = 4;

/// The median of `values` (the upper one of an even count); 0 when empty.
pub fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// The first and last quarter of `samples` (at least one sample each).
fn quarters(samples: &[Sample]) -> (&[Sample], &[Sample]) {
    let quarter = (samples.len() / 4).max(1).min(samples.len());
    (&samples[..quarter], &samples[samples.len() - quarter..])
}

/// The medians of each judged resource over the first and last quarter of
/// `under_load`: `(name, first, last, limit)`.
pub fn quarter_medians(under_load: &[Sample]) -> Vec<(&'static str, u64, u64, u64)> {
    let (first, last) = quarters(under_load);
    MARGINS
        .iter()
        .map(|margin| {
            let first_median = median(first.iter().map(margin.value).collect());
            let last_median = median(last.iter().map(margin.value).collect());
            let limit = (first_median as f64 * margin.ratio) as u64 + margin.slack;
            (margin.name, first_median, last_median, limit)
        })
        .collect()
}

/// Every way the soak did not run flat, as sentences; empty when it did.
/// `idle_before` and `idle_after` are the server with no client, before
/// the load and once the load's sessions have ended.
pub fn findings(under_load: &[Sample], idle_before: &Sample, idle_after: &Sample) -> Vec<String> {
    let mut findings = Vec::new();
    if under_load.len() < 4 {
        findings.push(format!(
            "only {} samples under load: too few to judge (run longer)",
            under_load.len()
        ));
    }
    for (name, first, last, limit) in quarter_medians(under_load) {
        if last > limit {
            findings.push(format!(
                "{name} grew: last-quarter median {last} over the limit {limit} \
                 (first-quarter median {first})"
            ));
        }
    }
    if idle_after.descendants > 0 {
        findings.push(format!(
            "{} processes below the server outlived the load's sessions",
            idle_after.descendants
        ));
    }
    if idle_after.zombies > 0 {
        findings.push(format!(
            "{} zombie children of the idle server after the load",
            idle_after.zombies
        ));
    }
    if idle_after.fds > idle_before.fds + IDLE_FD_SLACK {
        findings.push(format!(
            "the idle server holds {} fds after the load, {} before it",
            idle_after.fds, idle_before.fds
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rss_kib: u64, fds: u64, threads: u64, zombies: u64) -> Sample {
        Sample {
            rss_kib,
            fds,
            threads,
            zombies,
            ..Sample::default()
        }
    }

    fn idle() -> Sample {
        sample(10_000, 10, 5, 0)
    }

    #[test]
    fn a_flat_run_has_no_findings() {
        let samples: Vec<_> = (0..20)
            .map(|index| sample(20_000 + index % 3 * 100, 30 + index % 5, 9, index % 2))
            .collect();
        assert_eq!(findings(&samples, &idle(), &idle()), Vec::<String>::new());
    }

    #[test]
    fn steady_growth_is_found() {
        let samples: Vec<_> = (0..20)
            .map(|index| sample(20_000 + index * 2_000, 30 + index * 4, 9, 0))
            .collect();
        let found = findings(&samples, &idle(), &idle());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("RSS (KiB) grew"), "{found:?}");
        assert!(found[1].starts_with("fds grew"), "{found:?}");
    }

    #[test]
    fn leftovers_after_the_load_are_found() {
        let samples = vec![sample(20_000, 30, 9, 0); 8];
        let after = Sample {
            descendants: 3,
            zombies: 1,
            fds: 40,
            ..idle()
        };
        assert_eq!(findings(&samples, &idle(), &after).len(), 3);
    }

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median(vec![]), 0);
        assert_eq!(median(vec![5]), 5);
        assert_eq!(median(vec![9, 1, 5]), 5);
        assert_eq!(median(vec![4, 1, 3, 2]), 3);
    }
}
