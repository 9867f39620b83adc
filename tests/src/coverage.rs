//! [`Tally`]: what a run of the suite saw on the wire: frames validated,
//! violations, and which methods, notifications and error kinds of the schema
//! the traffic exercised.

use std::collections::BTreeSet;

use crate::schema::{Direction, MethodKind, ProtocolSchema};
use crate::validator::{Checked, Observation, Violation};

/// A violation with the case (or connection) it happened in.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordedViolation {
    /// The case name, or another label of the connection.
    pub context: String,
    /// The violation.
    #[serde(flatten)]
    pub violation: Violation,
}

/// Counts over every connection of a run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Frames checked, both directions.
    pub frames: u64,
    /// Violations nobody expected (a case's deliberately invalid frames are
    /// not counted here).
    pub violations: Vec<RecordedViolation>,
    /// Violations in frames sent invalid on purpose (not failures).
    pub expected_violations: u64,
    /// Requests answered with a result, and notifications sent in their
    /// direction: the methods of `x-methods` the traffic exercised.
    pub methods: BTreeSet<String>,
    /// The `data.kind`s of the error responses seen.
    pub error_kinds: BTreeSet<String>,
}

impl Tally {
    /// Counts a checked frame. `expected_invalid` frames were sent invalid on
    /// purpose: their violations are the caller's to assert.
    pub fn record(
        &mut self,
        schema: &ProtocolSchema,
        direction: Direction,
        checked: &Checked,
        context: &str,
        expected_invalid: bool,
    ) {
        self.frames += 1;
        if expected_invalid {
            self.expected_violations += checked.violations.len() as u64;
        } else {
            self.violations.extend(
                checked
                    .violations
                    .iter()
                    .map(|violation| RecordedViolation {
                        context: context.to_owned(),
                        violation: violation.clone(),
                    }),
            );
        }
        match &checked.observation {
            Observation::Notification { method } => {
                let exercised = schema.method(method).is_some_and(|spec| {
                    spec.kind == MethodKind::Notification && spec.direction == direction
                });
                if exercised && checked.violations.is_empty() {
                    self.methods.insert(method.clone());
                }
            }
            Observation::Result {
                method: Some(method),
                ..
            } if checked.violations.is_empty() => {
                self.methods.insert(method.clone());
            }
            Observation::Error {
                kind: Some(kind), ..
            } if checked.violations.is_empty() => {
                self.error_kinds.insert(kind.clone());
            }
            _ => {}
        }
    }

    /// Adds another run's counts to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.frames += other.frames;
        self.violations.extend(other.violations.iter().cloned());
        self.expected_violations += other.expected_violations;
        self.methods.extend(other.methods.iter().cloned());
        self.error_kinds.extend(other.error_kinds.iter().cloned());
    }

    /// Methods and notifications of `x-methods` no traffic exercised.
    pub fn missing_methods(&self, schema: &ProtocolSchema) -> Vec<String> {
        schema
            .methods()
            .keys()
            .filter(|method| !self.methods.contains(*method))
            .cloned()
            .collect()
    }

    /// Error kinds of the schema no error response carried.
    pub fn missing_error_kinds(&self, schema: &ProtocolSchema) -> Vec<String> {
        schema
            .error_kinds()
            .iter()
            .filter(|kind| !self.error_kinds.contains(*kind))
            .cloned()
            .collect()
    }

    /// `methods covered N/N, error kinds covered K/K, frames validated F, violations V`.
    pub fn summary(&self, schema: &ProtocolSchema) -> String {
        let methods = schema.methods().len();
        let kinds = schema.error_kinds().len();
        format!(
            "methods covered {}/{methods}, error kinds covered {}/{kinds}, frames validated {}, violations {}",
            methods - self.missing_methods(schema).len(),
            kinds - self.missing_error_kinds(schema).len(),
            self.frames,
            self.violations.len()
        )
    }
}
