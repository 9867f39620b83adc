//! Runs `exec-bench --quick` against the debug server so the benchmark
//! cannot rot: every figure must be there, finite and positive, with no
//! section failing. Timings are never asserted.

use std::process::Command;

use serde_json::Value;

/// Every figure a run without ssh reports.
const FIGURES: &[&str] = &[
    "output_pipe_ws",
    "output_pipe_stdio",
    "output_pty_ws",
    "output_pty_stdio",
    "round_trip_ws_p50",
    "round_trip_ws_p99",
    "round_trip_stdio_p50",
    "round_trip_stdio_tokio_floor_p50",
    "round_trip_stdio_p99",
    "round_trip_ws_inline_p50",
    "round_trip_stdio_inline_p50",
    "spawn_sequential",
    "spawn_8_in_flight",
    "pty_echo_ws_p50",
    "pty_echo_ws_p99",
    "pty_echo_ws_floor_p50",
    "pty_echo_stdio_p50",
    "pty_echo_stdio_p99",
    "memory_per_idle_process",
    "connections_processes",
    "output_cut_ws",
    "cli_true_embedded_p50",
    "cli_true_url_p50",
    "cli_output_url",
];

#[test]
fn quick_bench_runs() {
    let scratch = tempfile::tempdir().expect("a temp dir");
    let json = scratch.path().join("results.json");
    let output = Command::new(env!("CARGO_BIN_EXE_exec-bench"))
        .arg("--quick")
        .arg("--json")
        .arg(&json)
        .arg("--server")
        // The harness's lookup: the debug `exec-server` beside this test's
        // directory (no test builds it; `cargo test --workspace` does).
        .arg(exec_testkit::server_binary())
        .env_remove("EXEC_BENCH_SSH")
        .output()
        .expect("running exec-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exec-bench --quick failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON was written"))
            .expect("the JSON parses");
    assert_eq!(report["mode"], "quick");
    assert_eq!(report["errors"], Value::Array(Vec::new()), "{report:#}");
    assert_eq!(report["skipped"][0]["section"], "ssh", "{report:#}");
    let figures = report["figures"].as_array().expect("figures");
    let ids: Vec<&str> = figures
        .iter()
        .map(|figure| figure["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, FIGURES, "{stdout}");
    for figure in figures {
        for field in ["ours", "baseline", "ratio"] {
            let value = figure[field].as_f64().unwrap_or(f64::NAN);
            assert!(
                value.is_finite() && value > 0.0,
                "{field} of {} is {value}:\n{stdout}",
                figure["id"]
            );
        }
        // Every row is in the table on stdout too.
        let name = figure["name"].as_str().expect("a name");
        assert!(
            stdout.contains(name),
            "{name} is not in the table:\n{stdout}"
        );
    }
    assert!(stdout.contains("ssh: skipped"), "{stdout}");
    for field in ["nproc", "model_name", "kernel", "load_average_at_start"] {
        assert!(
            report["machine"][field] != Value::Null,
            "machine.{field} is missing"
        );
    }
}
