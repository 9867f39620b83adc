//! The TypeScript side of code generation: the protocol types rendered by
//! ts-rs (through the `export-ts` binary of `exec-protocol`), an index, and the
//! method map the TypeScript SDK types its `request` with.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::schema::{Direction, MethodKind, Schema};

/// Renders every protocol type with ts-rs by running the `export-ts` binary
/// against the Rust sources currently on disk. Returns (file name, contents)
/// pairs without the header line.
pub fn render_types(root: &Path) -> Result<Vec<(String, String)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // A target directory of its own: the `ts` feature would otherwise force
    // `exec-protocol` to be rebuilt on every switch between codegen and builds.
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "run",
            "--quiet",
            "--package",
            "exec-protocol",
            "--features",
            "ts",
        ])
        .args(["--bin", "export-ts", "--target-dir"])
        .arg(root.join("target").join("codegen"))
        .output()
        .context("running the export-ts binary of exec-protocol")?;
    if !output.status.success() {
        bail!(
            "the export-ts binary of exec-protocol failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let files: Vec<(String, String)> = serde_json::from_slice(&output.stdout)
        .context("the export-ts binary printed something other than its JSON file list")?;
    Ok(files)
}

/// `index.ts`: re-exports every type file, the method map and the binary
/// frame constants.
pub fn index(type_files: &[(String, String)]) -> String {
    let mut out = String::new();
    for (file, _) in type_files {
        let module = file.trim_end_matches(".ts");
        let _ = writeln!(out, "export type * from \"./{module}.js\";");
    }
    out.push_str("export * from \"./methods.js\";\n");
    out.push_str("export * from \"./binaryFrames.js\";\n");
    out
}

/// `methods.ts`: the protocol version from `x-protocolVersion` and the
/// method map from `x-methods`.
pub fn method_map(schema: &Schema) -> String {
    let mut imports = std::collections::BTreeSet::new();
    let mut requests = String::new();
    let mut client_notifications = String::new();
    let mut server_notifications = String::new();
    let mut request_names = Vec::new();
    let mut server_notification_names = Vec::new();
    for method in &schema.methods {
        imports.insert(method.params.clone());
        match (method.kind, &method.result, method.direction) {
            (MethodKind::Request, Some(result), _) => {
                imports.insert(result.clone());
                let _ = writeln!(
                    requests,
                    "  /** `{}`: params `{}`, result `{}`. */\n  \"{}\": {{ params: {}; result: {} }};",
                    method.name, method.params, result, method.name, method.params, result
                );
                request_names.push(method.name.clone());
            }
            (_, _, Direction::ClientToServer) => {
                let _ = writeln!(
                    client_notifications,
                    "  /** `{}` notification. */\n  \"{}\": {};",
                    method.name, method.name, method.params
                );
            }
            (_, _, Direction::ServerToClient) => {
                let _ = writeln!(
                    server_notifications,
                    "  /** `{}` notification. */\n  \"{}\": {};",
                    method.name, method.name, method.params
                );
                server_notification_names.push(method.name.clone());
            }
        }
    }
    let mut out = String::new();
    for name in &imports {
        let _ = writeln!(out, "import type {{ {name} }} from \"./{name}.js\";");
    }
    let quoted = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("  \"{n}\",\n"))
            .collect::<String>()
    };
    let _ = write!(
        out,
        "
/** The protocol version this SDK speaks, as `initialize` reports it (the schema's `x-protocolVersion`). */
export const PROTOCOL_VERSION = {protocol_version};

/** Every request of the protocol: method name to its params and result types. */
export interface RequestMap {{
{requests}}}

/** Every notification the client sends: method name to its params type. */
export interface ClientNotificationMap {{
{client_notifications}}}

/** Every notification the server sends: method name to its params type. */
export interface ServerNotificationMap {{
{server_notifications}}}

/** A request method name. */
export type RequestMethod = keyof RequestMap;
/** The params type of request `M`. */
export type RequestParams<M extends RequestMethod> = RequestMap[M][\"params\"];
/** The result type of request `M`. */
export type RequestResult<M extends RequestMethod> = RequestMap[M][\"result\"];
/** A notification method the server sends. */
export type ServerNotificationMethod = keyof ServerNotificationMap;

/** Every request method name, at run time. */
export const REQUEST_METHODS = [
{requests_list}] as const satisfies readonly RequestMethod[];

/** Every server notification method name, at run time. */
export const SERVER_NOTIFICATION_METHODS = [
{notifications_list}] as const satisfies readonly ServerNotificationMethod[];
",
        protocol_version = serde_json::Value::from(schema.protocol_version.as_str()),
        requests_list = quoted(&request_names),
        notifications_list = quoted(&server_notification_names),
    );
    out
}
