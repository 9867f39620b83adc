//! Running a [`NegativePlan`] against the server: each invalid request must
//! get -32602, and the connection must keep serving after it.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{NegativePlan, Variant};
use crate::coverage::Tally;
use crate::runner::{Session, Transport};
use crate::schema::ProtocolSchema;
use crate::server::ServerSettings;
use crate::validator::INVALID_PARAMS;

/// Runs the plan over `transport`: `initialize` variants on a connection
/// before its handshake (so that "already initialized" cannot be the
/// answer), the others after it. Returns the failures.
pub async fn run_plan(
    plan: &NegativePlan,
    transport: Transport,
    schema: Arc<ProtocolSchema>,
    tally: Arc<Mutex<Tally>>,
    tmp: &str,
) -> Vec<String> {
    let (before, after): (Vec<&Variant>, Vec<&Variant>) = plan
        .variants
        .iter()
        .partition(|variant| variant.method == exec_protocol::INITIALIZE_METHOD);
    let mut failures = Vec::new();
    for (handshake, variants) in [(false, before), (true, after)] {
        let context = format!(
            "negative cases {} the handshake ({transport})",
            if handshake { "after" } else { "before" }
        );
        let mut session = match Session::connect(
            transport,
            &ServerSettings::default(),
            schema.clone(),
            tally.clone(),
            &context,
        )
        .await
        {
            Ok(session) => session,
            Err(error) => {
                failures.push(format!("{context}: {error}"));
                continue;
            }
        };
        session.vars.set("tmp", Value::String(tmp.to_owned()));
        if handshake && let Err(error) = session.handshake().await {
            failures.push(format!("{context}: handshake: {error}"));
        }
        let mut id = 0_i64;
        for variant in variants {
            id += 2;
            if let Err(error) = run_variant(&mut session, variant, id, handshake).await {
                failures.push(format!(
                    "{context}: `{}` params {} ({}): {error}",
                    variant.method, variant.what, variant.kind
                ));
            }
        }
        if !handshake {
            // The refused `initialize`s did not initialize the connection.
            match session
                .request(json!("after"), "initialize", json!({"clientName": "after"}))
                .await
            {
                Ok(response) if response.get("result").is_some() => {}
                Ok(response) => failures.push(format!(
                    "{context}: a valid initialize after the refused ones failed: {response}"
                )),
                Err(error) => failures.push(format!("{context}: {error}")),
            }
        }
        failures.extend(session.finish().await);
    }
    failures
}

/// Sends one invalid request, expects -32602, then a valid `process/list`
/// and its response (an error before the handshake, a result after it).
async fn run_variant(
    session: &mut Session,
    variant: &Variant,
    id: i64,
    initialized: bool,
) -> Result<(), String> {
    let message =
        json!({"jsonrpc": "2.0", "id": id, "method": variant.method, "params": variant.params});
    // The validator must agree that the generated params are invalid.
    session.send_text(&message.to_string(), true)?;
    let response = session.response(&json!(id)).await?;
    let code = response.pointer("/error/code").and_then(Value::as_i64);
    if code != Some(INVALID_PARAMS) {
        return Err(format!("expected error -32602, got {response}"));
    }
    let follow_up = session
        .request(json!(id + 1), "process/list", json!({}))
        .await?;
    if initialized && follow_up.get("result").is_none() {
        return Err(format!(
            "the connection stopped serving: process/list got {follow_up}"
        ));
    }
    Ok(())
}
