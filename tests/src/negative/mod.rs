//! Negative cases generated from the schema: for every client request, params
//! with a missing required field, a field of the wrong type, and a value out
//! of the range the schema bounds (`minimum`, `maximum`, `minItems`,
//! `minLength`, an enumeration). Each must get -32602, and the connection must
//! keep serving: a valid request follows every invalid one.
//!
//! # Layout
//! - this file: the plan ([`NegativePlan`], its [`Variant`]s by
//!   [`VariantKind`]): which field of which method is broken how.
//! - `generator`: valid values made from the schema, the base every variant
//!   breaks one thing of.
//! - `wrong_type`: a value of a JSON type a field does not allow.
//! - `out_of_range`: values outside the schema's bounds.
//! - `keywords`: reading the schema keywords the generator looks at.
//! - `run`: running a plan against the server ([`run_plan`]).

mod generator;
mod keywords;
mod out_of_range;
mod run;
mod wrong_type;

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::schema::{Direction, MethodKind, ProtocolSchema};
use generator::Generator;
use keywords::{properties, required};

pub use run::run_plan;

/// The three ways the generator breaks params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VariantKind {
    /// A required field left out.
    MissingField,
    /// A field whose value has a type the schema does not allow.
    WrongType,
    /// A value outside a bound of the schema.
    OutOfRange,
}

impl fmt::Display for VariantKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::MissingField => "missing field",
            Self::WrongType => "wrong type",
            Self::OutOfRange => "out of range",
        })
    }
}

/// One generated invalid request.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The request method.
    pub method: String,
    /// How the params are broken.
    pub kind: VariantKind,
    /// What was changed, e.g. "`rows` below its minimum 1".
    pub what: String,
    /// The invalid params.
    pub params: Value,
}

/// Every variant, and the methods that have nothing to break in some way.
#[derive(Debug, Clone, Default)]
pub struct NegativePlan {
    /// The invalid requests, by method in schema-table order.
    pub variants: Vec<Variant>,
    /// Per kind, the request methods without anything to break that way (no
    /// required field, no field, no bound).
    pub skipped: BTreeMap<VariantKind, Vec<String>>,
}

impl NegativePlan {
    /// Generates the variants of every client request of `schema`. Paths in
    /// the otherwise valid params start with `path_prefix`.
    pub fn generate(schema: &ProtocolSchema, path_prefix: &str) -> Self {
        let generator = Generator {
            schema,
            path_prefix,
        };
        let mut plan = Self::default();
        for spec in schema.methods().values() {
            if spec.kind != MethodKind::Request || spec.direction != Direction::ClientToServer {
                continue;
            }
            let Some(params_schema) = schema.resolve(&spec.params) else {
                continue;
            };
            let params_schema = generator.follow(params_schema);
            let base = generator.valid(&params_schema, None);
            let properties = properties(&params_schema);
            let required = required(&params_schema);
            let mut push = |kind: VariantKind, what: String, params: Value| {
                plan.variants.push(Variant {
                    method: spec.name.clone(),
                    kind,
                    what,
                    params,
                });
            };
            let mut counts = BTreeMap::new();
            for field in &required {
                let mut params = base.clone();
                if let Some(object) = params.as_object_mut() {
                    object.remove(field);
                }
                push(
                    VariantKind::MissingField,
                    format!("without `{field}`"),
                    params,
                );
                *counts.entry(VariantKind::MissingField).or_insert(0) += 1;
            }
            for (field, property) in &properties {
                if let Some(wrong) = generator.wrong_type(property) {
                    let what = format!("`{field}` = {wrong}");
                    push(VariantKind::WrongType, what, with(&base, field, wrong));
                    *counts.entry(VariantKind::WrongType).or_insert(0) += 1;
                }
            }
            for (field, property) in &properties {
                for (what, bad) in generator.out_of_range(property, 0) {
                    let what = format!("`{field}`{what}");
                    push(VariantKind::OutOfRange, what, with(&base, field, bad));
                    *counts.entry(VariantKind::OutOfRange).or_insert(0) += 1;
                }
            }
            for kind in [
                VariantKind::MissingField,
                VariantKind::WrongType,
                VariantKind::OutOfRange,
            ] {
                if !counts.contains_key(&kind) {
                    plan.skipped
                        .entry(kind)
                        .or_default()
                        .push(spec.name.clone());
                }
            }
        }
        plan
    }

    /// The number of variants of `kind`.
    pub fn count(&self, kind: VariantKind) -> usize {
        self.variants
            .iter()
            .filter(|variant| variant.kind == kind)
            .count()
    }

    /// `negative cases N (missing field a, wrong type b, out of range c); skipped: ...`.
    pub fn summary(&self) -> String {
        let kinds = [
            VariantKind::MissingField,
            VariantKind::WrongType,
            VariantKind::OutOfRange,
        ];
        let counts: Vec<String> = kinds
            .iter()
            .map(|kind| format!("{kind} {}", self.count(*kind)))
            .collect();
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|(kind, methods)| format!("{kind}: {}", methods.join(", ")))
            .collect();
        format!(
            "negative cases {} ({}); skipped for having nothing to break: {}",
            self.variants.len(),
            counts.join(", "),
            if skipped.is_empty() {
                "none".to_owned()
            } else {
                skipped.join("; ")
            }
        )
    }
}

/// `base` with member `field` set to `value`.
fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut params = base.clone();
    if let Some(object) = params.as_object_mut() {
        object.insert(field.to_owned(), value);
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_breaks_every_bound_of_process_start() {
        let schema = ProtocolSchema::embedded();
        let plan = NegativePlan::generate(&schema, "/tmp");
        let start: Vec<String> = plan
            .variants
            .iter()
            .filter(|variant| {
                variant.method == "process/start" && variant.kind == VariantKind::OutOfRange
            })
            .map(|variant| variant.what.clone())
            .collect();
        for expected in [
            "`processId` shorter than 1 characters",
            "`argv` with fewer than 1 items",
            "`size`.rows below its minimum 1",
            "`size`.cols above its maximum 65535",
            "`timeoutMs` below its minimum 0",
        ] {
            assert!(
                start.iter().any(|what| what == expected),
                "{expected} in {start:?}"
            );
        }
        assert_eq!(
            plan.skipped.get(&VariantKind::MissingField),
            Some(&vec![
                "environment/info".to_owned(),
                "environment/status".to_owned(),
                "process/list".to_owned()
            ])
        );
        // Every generated variant is invalid for the schema.
        for variant in &plan.variants {
            let spec = schema.method(&variant.method).expect("a method");
            assert!(
                !schema.validate(&spec.params, &variant.params).is_empty(),
                "{variant:?} is valid"
            );
        }
    }
}
