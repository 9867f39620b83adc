//! Codex's environment features against the real binary: `environment/info`
//! and `environment/status` called the way Codex's client calls them
//! (`params: null`), `process/start`'s `envPolicy` building the child's
//! environment from the server's as Codex's exec-server does, and the
//! sandbox fields refused (fail closed) rather than ignored.

use exec_testkit::{RawConnection, ServerLauncher, Transport, WireClient, output_of};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const TOKEN: &str = "a-token-of-enough-length-0123456789";

/// A server whose own environment holds known variables besides the usual
/// `PATH` and `HOME`.
fn launcher() -> ServerLauncher {
    ServerLauncher::new()
        .env("EDITOR", "vi")
        .env("AWS_REGION", "eu-west-1")
        .env("MY_API_KEY", "k")
        .env("Github_Token", "t")
        .env("LANG", "C.UTF-8")
}

/// The sorted `NAME=value` lines the child `env` printed, without the
/// server's tree marker and the shell's own `PWD`, `SHLVL` and `_`.
async fn child_environment(client: &mut WireClient, process_id: &str, start: Value) -> Vec<String> {
    let mut params = json!({
        "processId": process_id,
        "argv": ["/usr/bin/env"],
        "cwd": "/",
        "env": {},
        "tty": false,
    });
    for (name, value) in start.as_object().expect("start fields") {
        params[name] = value.clone();
    }
    let result = client.call("process/start", params).await;
    assert_eq!(result["sandboxType"], "none");
    let events = client.events_until_closed(process_id).await;
    let mut lines: Vec<String> = output_of(&events, "stdout")
        .lines()
        .filter(|line| !line.starts_with("EXEC_SERVER_TREE="))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// The names of `lines` (`NAME=value`).
fn names(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect()
}

async fn environment_info_and_status_answer_null_params(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    // Before the handshake they are refused like every other method.
    let early = client.request("environment/status", Value::Null).await;
    assert_eq!(early["error"]["data"]["kind"], "notInitialized");
    client.handshake().await;

    let info = client.call("environment/info", Value::Null).await;
    let shell_path = info["shell"]["path"].as_str().expect("a shell path");
    assert!(shell_path.starts_with('/'), "{info}");
    let shell_name = shell_path.rsplit('/').next().expect("a file name");
    assert_eq!(info["shell"]["name"], shell_name);
    assert!(
        info["cwd"]
            .as_str()
            .is_some_and(|cwd| cwd.starts_with("file:///")),
        "{info}"
    );
    assert_eq!(info["capabilities"], json!({"networkProxyLaunch": false}));
    assert_eq!(client.call("environment/info", json!({})).await, info);

    assert_eq!(
        client.call("environment/status", Value::Null).await,
        json!({"status": "ready"})
    );
    // Omitted params work too; a method whose params are a struct still
    // refuses `null`.
    client
        .send_text(r#"{"id":"s","method":"environment/status"}"#)
        .await;
    let omitted = client
        .recv_matching(|message| message.get("id") == Some(&json!("s")))
        .await;
    assert_eq!(omitted["result"], json!({"status": "ready"}));
    let list = client.request("process/list", Value::Null).await;
    assert_eq!(list["error"]["data"]["kind"], "invalidParams");
}

async fn env_policy_builds_the_environment_as_codex_does(transport: Transport) {
    let mut client = WireClient::start(transport, &launcher()).await;
    client.handshake().await;

    // `core`: only the core names, then `set`, then the request's `env` over it.
    let core = child_environment(
        &mut client,
        "core",
        json!({
            "env": {"FROM_ENV": "1", "S": "from-env"},
            "envPolicy": {"inherit": "core", "ignoreDefaultExcludes": false, "exclude": [], "set": {"S": "from-set", "T": "2"}, "includeOnly": []}
        }),
    )
    .await;
    assert!(core.contains(&String::from("LANG=C.UTF-8")), "{core:?}");
    assert!(core.contains(&String::from("S=from-env")), "{core:?}");
    assert!(core.contains(&String::from("T=2")), "{core:?}");
    assert!(core.contains(&String::from("FROM_ENV=1")), "{core:?}");
    assert!(names(&core).contains(&"PATH"), "{core:?}");
    assert!(!names(&core).contains(&"EDITOR"), "{core:?}");
    assert!(!names(&core).contains(&"AWS_REGION"), "{core:?}");

    // `all`: everything but the default excludes (case-insensitive) and `exclude`.
    let all = child_environment(
        &mut client,
        "all",
        json!({"envPolicy": {"inherit": "all", "ignoreDefaultExcludes": false, "exclude": ["aws_*"], "set": {}, "includeOnly": []}}),
    )
    .await;
    assert!(all.contains(&String::from("EDITOR=vi")), "{all:?}");
    for dropped in ["AWS_REGION", "MY_API_KEY", "Github_Token"] {
        assert!(!names(&all).contains(&dropped), "{dropped} in {all:?}");
    }

    // `includeOnly` keeps only what matches, after `set`.
    let only = child_environment(
        &mut client,
        "only",
        json!({"envPolicy": {"inherit": "all", "ignoreDefaultExcludes": true, "exclude": [], "set": {"X_SET": "1"}, "includeOnly": ["*_api_*", "x_*"]}}),
    )
    .await;
    assert_eq!(only, ["MY_API_KEY=k", "X_SET=1"]);

    // `none` with `env`: exactly what was sent. Without `envPolicy`, `env` is
    // the whole environment as before.
    let none = child_environment(
        &mut client,
        "none",
        json!({"env": {"A": "1"}, "envPolicy": {"inherit": "none", "ignoreDefaultExcludes": false, "exclude": [], "set": {}, "includeOnly": []}}),
    )
    .await;
    assert_eq!(none, ["A=1"]);
    let plain = child_environment(
        &mut client,
        "plain",
        json!({"env": {"B": "2"}, "envPolicy": null}),
    )
    .await;
    assert_eq!(plain, ["B=2"]);
}

async fn sandbox_requests_are_refused_and_nothing_runs(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let scratch = exec_testkit::scratch_dir();
    let marker = scratch.path().join("ran");
    let start = |process_id: &str, extra: Value| {
        let mut params = json!({
            "processId": process_id,
            "argv": ["/bin/sh", "-c", format!("touch {}", marker.display())],
            "cwd": "/",
            "env": {"PATH": "/usr/bin:/bin"},
            "tty": false,
        });
        for (name, value) in extra.as_object().expect("fields") {
            params[name] = value.clone();
        }
        params
    };
    let refusals = [
        (
            "sandbox",
            json!({"sandbox": {"permissions": {"type": "managed", "fileSystem": {"type": "restricted", "entries": []}, "network": "restricted"}, "cwd": "file:///", "windowsSandboxLevel": "disabled"}}),
        ),
        (
            "sandbox",
            json!({"sandbox": {"permissions": {"type": "external", "network": "restricted"}, "windowsSandboxLevel": "disabled"}}),
        ),
        (
            "enforceManagedNetwork",
            json!({"enforceManagedNetwork": true}),
        ),
        (
            "managedNetwork",
            json!({"managedNetwork": {"loopbackPorts": [43123], "allowLocalBinding": false}}),
        ),
        ("networkProxy", json!({"networkProxy": {"proxy": {}}})),
    ];
    for (index, (field, extra)) in refusals.into_iter().enumerate() {
        let process_id = format!("refused-{index}");
        let response = client
            .request("process/start", start(&process_id, extra))
            .await;
        let error = &response["error"];
        assert_eq!(error["code"], -32602, "{response}");
        assert_eq!(
            error["data"],
            json!({"kind": "sandboxUnavailable", "processId": process_id}),
            "{response}"
        );
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|message| message.contains(field)),
            "{response}"
        );
    }
    assert_eq!(
        client.call("process/list", json!({})).await,
        json!({"processes": []})
    );
    assert!(!marker.exists(), "a refused start ran");

    // Codex's danger-full-access profile (`disabled`) and explicit nulls run.
    let allowed = start(
        "allowed",
        json!({"sandbox": {"permissions": {"type": "disabled"}, "cwd": "file:///", "windowsSandboxLevel": "disabled"}, "enforceManagedNetwork": false, "managedNetwork": null, "networkProxy": null}),
    );
    let result = client.call("process/start", allowed).await;
    assert_eq!(result["sandboxType"], "none");
    client.events_until_closed("allowed").await;
    assert!(marker.exists(), "the unsandboxed start did not run");
}

exec_testkit::transport_tests! {
    environment_info_and_status_answer_null_params: [stdio, websocket, in_process],
    env_policy_builds_the_environment_as_codex_does: [stdio, websocket],
    sandbox_requests_are_refused_and_nothing_runs: [stdio, websocket, in_process],
}

#[tokio::test]
async fn no_env_policy_passes_the_connection_token() {
    let server = launcher()
        .token(TOKEN)
        .start_websocket()
        .await
        .expect("the server starts");
    let connection = RawConnection::websocket(&server.url, Some(TOKEN))
        .await
        .expect("the token is accepted");
    let mut client = WireClient::new(connection);
    client.handshake().await;
    for inherit in ["all", "core", "none"] {
        let lines = child_environment(
            &mut client,
            inherit,
            json!({"envPolicy": {"inherit": inherit, "ignoreDefaultExcludes": true, "exclude": [], "set": {}, "includeOnly": ["*"]}}),
        )
        .await;
        assert!(
            !names(&lines).contains(&"EXEC_SERVER_TOKEN"),
            "{inherit}: {lines:?}"
        );
        assert!(
            !lines.iter().any(|line| line.contains(TOKEN)),
            "{inherit}: {lines:?}"
        );
    }
}
