//! The corpus and the negative cases generated from the schema, against the
//! real `exec-server` over stdio and over WebSocket, with every frame in both
//! directions validated. Fails on a failed case, on any violation, and on a
//! method, notification or error kind no traffic exercised; prints the
//! summary line either way.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use conformance::{
    NamedCase, NegativePlan, ProtocolSchema, Tally, Transport, corpus_dir, load_corpus, run_case,
    run_plan,
};
use futures_util::StreamExt;

/// Cases run at once per transport: they mostly wait on processes and I/O.
const PARALLEL_CASES: usize = 4;

/// What one transport's run produced.
struct TransportRun {
    transport: Transport,
    /// The corpus's traffic: coverage is counted from it alone.
    corpus: Tally,
    /// The corpus's and the negative cases' traffic together.
    all: Tally,
    failures: Vec<String>,
}

async fn run_transport(
    transport: Transport,
    cases: &[NamedCase],
    plan: &NegativePlan,
    schema: &Arc<ProtocolSchema>,
    negative_tmp: &str,
) -> TransportRun {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut failures: Vec<String> = futures_util::stream::iter(cases)
        .map(|case| run_case(case, transport, schema.clone(), tally.clone()))
        .buffered(PARALLEL_CASES)
        .collect::<Vec<Vec<String>>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    let negative = Arc::new(Mutex::new(Tally::default()));
    failures.extend(
        run_plan(
            plan,
            transport,
            schema.clone(),
            negative.clone(),
            negative_tmp,
        )
        .await,
    );
    let corpus = tally.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut all = corpus.clone();
    all.merge(&negative.lock().unwrap_or_else(PoisonError::into_inner));
    TransportRun {
        transport,
        corpus,
        all,
        failures,
    }
}

/// Writes to stderr past the test harness's capture, so the summary shows
/// in every `cargo test` run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_conforms_over_stdio_and_websocket() {
    let schema = Arc::new(ProtocolSchema::embedded());
    let cases = load_corpus(&corpus_dir()).expect("the corpus loads");
    let negative_dir = tempfile::tempdir().expect("a temporary directory");
    let negative_tmp = negative_dir.path().to_string_lossy().into_owned();
    let plan = NegativePlan::generate(&schema, &negative_tmp);

    let (stdio, websocket) = tokio::join!(
        run_transport(Transport::Stdio, &cases, &plan, &schema, &negative_tmp),
        run_transport(Transport::WebSocket, &cases, &plan, &schema, &negative_tmp),
    );

    let mut problems = Vec::new();
    let mut total = Tally::default();
    for run in [&stdio, &websocket] {
        // Coverage from the corpus; frames and violations of everything.
        let mut counted = run.corpus.clone();
        counted.frames = run.all.frames;
        counted.violations = run.all.violations.clone();
        report(&format!(
            "conformance {}: {}",
            run.transport,
            counted.summary(&schema)
        ));
        total.merge(&counted);
        problems.extend(run.failures.iter().cloned());
        let missing = run.corpus.missing_methods(&schema);
        if !missing.is_empty() {
            problems.push(format!(
                "{}: no case exercised (a result or a notification) these methods: {missing:?}",
                run.transport
            ));
        }
        let missing = run.corpus.missing_error_kinds(&schema);
        if !missing.is_empty() {
            problems.push(format!(
                "{}: no error response carried these error kinds: {missing:?}",
                run.transport
            ));
        }
    }
    report(&format!(
        "conformance {} cases and {} negative cases x 2 transports: {}",
        cases.len(),
        plan.variants.len(),
        total.summary(&schema)
    ));
    report(&format!("conformance {}", plan.summary()));
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Failures include every unexpected violation; this guards the count.
    assert_eq!(total.violations.len(), 0, "{:#?}", total.violations);
}

#[test]
fn every_case_directory_names_a_method_or_the_envelope() {
    let schema = ProtocolSchema::embedded();
    let cases = load_corpus(&corpus_dir()).expect("the corpus loads");
    let mut strays = BTreeSet::new();
    for case in &cases {
        let directory = case
            .name
            .rsplit_once('/')
            .map_or("", |(directory, _)| directory);
        if directory != "envelope" && schema.method(directory).is_none() {
            strays.insert(case.name.clone());
        }
    }
    assert!(
        strays.is_empty(),
        "cases outside cases/<method>/ or cases/envelope/: {strays:?}"
    );
    for method in schema.methods().keys() {
        assert!(
            cases
                .iter()
                .any(|case| case.name.starts_with(&format!("{method}/"))),
            "cases/{method}/ has no case"
        );
    }
}

#[test]
fn the_schema_tables_match_the_generated_method_table() {
    let schema = ProtocolSchema::embedded();
    let from_schema: BTreeSet<(String, String, Option<String>)> = schema
        .methods()
        .values()
        .map(|spec| {
            (
                spec.name.clone(),
                spec.params.trim_start_matches("#/$defs/").to_owned(),
                spec.result
                    .as_deref()
                    .map(|result| result.trim_start_matches("#/$defs/").to_owned()),
            )
        })
        .collect();
    let generated: BTreeSet<(String, String, Option<String>)> = exec_protocol::METHODS
        .iter()
        .map(|info| {
            (
                info.name.to_owned(),
                info.params.to_owned(),
                info.result.map(str::to_owned),
            )
        })
        .collect();
    pretty_assertions::assert_eq!(from_schema, generated);
}
