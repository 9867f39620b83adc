//! Runs every example in `sdk-rust/examples/` against a local server: each
//! asserts what it gets and returns an error otherwise. The examples are
//! compiled into this test, one module each (their `main` is `pub` for
//! that), so `cargo test` builds them with it and no test runs cargo.

#[path = "../examples/files.rs"]
mod files;
#[path = "../examples/pty_session.rs"]
mod pty_session;
#[path = "../examples/run_command.rs"]
mod run_command;

use std::path::Path;

/// An example's `main`.
type ExampleMain = fn() -> anyhow::Result<()>;

/// Each example's name and its `main`.
const EXAMPLES: [(&str, ExampleMain); 3] = [
    ("files", files::main),
    ("pty_session", pty_session::main),
    ("run_command", run_command::main),
];

#[test]
fn every_example_runs_and_succeeds() {
    let examples_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&examples_dir)
        .expect("the examples directory")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    let listed: Vec<&str> = EXAMPLES.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        listed,
        "every file in {} is an example this test runs (add a new one to EXAMPLES)",
        examples_dir.display()
    );
    // The examples find `exec-server` as `ExecClient::spawn_local` does
    // (`EXEC_SERVER_BIN`, or beside this test's directory); the harness
    // finds it the same way, and says how to build it when it is missing.
    exec_testkit::server_binary();
    for (name, main) in EXAMPLES {
        if let Err(error) = main() {
            panic!("example {name} failed: {error:#}");
        }
    }
}
