//! The `fs/*` methods as a Codex client calls them, against the real binary:
//! paths as `file://` URIs (answered in that form), `notFound` as -32004,
//! `null` options meaning Codex's defaults, `sandbox` refused unless it asks
//! for nothing, and `fs/getMetadata` times that are always integers.

use exec_testkit::{Transport, WireClient};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// A connection to a fresh server over stdio, past the handshake.
async fn client() -> WireClient {
    let mut client = WireClient::connect(Transport::Stdio).await;
    client.handshake().await;
    client
}

/// A temporary directory and its path as an absolute path and as a URI.
fn directory() -> (tempfile::TempDir, String, String) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().to_str().expect("a UTF-8 path").to_owned();
    // The directory's own name needs no escaping; the file names below do.
    let uri = format!("file://{path}");
    (directory, path, uri)
}

/// The code, `data.kind` and `data.path` of an error response.
fn error_of(response: &Value) -> (i64, &str, &str) {
    let error = &response["error"];
    (
        error["code"].as_i64().unwrap_or_default(),
        error["data"]["kind"].as_str().unwrap_or_default(),
        error["data"]["path"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn file_uris_name_files_and_errors_answer_in_the_request_form() {
    let mut client = client().await;
    let (_directory, path, uri) = directory();

    // Codex sends every optional key, as null.
    client
        .call(
            "fs/writeFile",
            json!({"path": format!("{uri}/a%20b%23"), "dataBase64": "aGk=", "sandbox": null}),
        )
        .await;
    let read = client
        .call("fs/readFile", json!({"path": format!("{path}/a b#")}))
        .await;
    assert_eq!(read["dataBase64"], "aGk=");
    let listing = client
        .call(
            "fs/readDirectory",
            json!({"path": format!("file://localhost{path}"), "sandbox": null}),
        )
        .await;
    assert_eq!(listing["entries"][0]["fileName"], "a b#");
    client
        .call(
            "fs/copy",
            json!({"sourcePath": format!("{uri}/a%20b%23"), "destinationPath": format!("{path}/copy"), "recursive": false, "sandbox": null}),
        )
        .await;
    client
        .call(
            "fs/rename",
            json!({"sourcePath": format!("{path}/copy"), "destinationPath": format!("{uri}/moved")}),
        )
        .await;
    let moved = client
        .call("fs/readFile", json!({"path": format!("{uri}/moved")}))
        .await;
    assert_eq!(moved["dataBase64"], "aGk=");

    // A missing path is -32004, Codex's code, named in the request's form.
    let missing = client
        .request(
            "fs/getMetadata",
            json!({"path": format!("{uri}/no%20such"), "sandbox": null}),
        )
        .await;
    let missing_uri = format!("{uri}/no%20such");
    assert_eq!(
        error_of(&missing),
        (-32004, "notFound", missing_uri.as_str())
    );
    let missing = client
        .request("fs/readFile", json!({"path": format!("{path}/no such")}))
        .await;
    let missing_path = format!("{path}/no such");
    assert_eq!(
        error_of(&missing),
        (-32004, "notFound", missing_path.as_str())
    );

    // Anything but a local file URI is an invalid path, echoed as sent.
    for refused in [
        "file://server/share/x",
        "http://localhost/tmp",
        "file:relative",
    ] {
        let response = client
            .request("fs/readFile", json!({"path": refused}))
            .await;
        assert_eq!(error_of(&response), (-32602, "invalidPath", refused));
    }

    // process/start takes its working directory as a URI too.
    client
        .call(
            "process/start",
            json!({"processId": "pwd", "argv": ["/bin/pwd"], "cwd": uri, "env": {}, "tty": false, "arg0": null, "sandbox": null}),
        )
        .await;
    let events = client.events_until_closed("pwd").await;
    assert_eq!(
        exec_testkit::output_of(&events, "stdout"),
        format!("{path}\n")
    );
}

#[tokio::test]
async fn null_options_mean_codex_defaults_and_absent_ones_ours() {
    let mut client = client().await;
    let (_directory, path, uri) = directory();

    // Absent `recursive`: false, our v1 default.
    let plain = client
        .request("fs/createDirectory", json!({"path": format!("{path}/a/b")}))
        .await;
    assert_eq!(error_of(&plain).1, "notFound");
    // `null`, as Codex sends it: true, Codex's default (`mkdir -p`).
    client
        .call(
            "fs/createDirectory",
            json!({"path": format!("{uri}/a/b"), "recursive": null, "sandbox": null}),
        )
        .await;
    let metadata = client
        .call("fs/getMetadata", json!({"path": format!("{path}/a/b")}))
        .await;
    assert_eq!(metadata["isDirectory"], true);

    // fs/remove: absent options refuse a tree and a missing path...
    let tree = client
        .request("fs/remove", json!({"path": format!("{path}/a")}))
        .await;
    assert_eq!(error_of(&tree).1, "directoryNotEmpty");
    // ...while `null` ones are Codex's `rm -rf`, twice without an error.
    for _ in 0..2 {
        client
            .call(
                "fs/remove",
                json!({"path": format!("{uri}/a"), "recursive": null, "force": null, "sandbox": null}),
            )
            .await;
    }
    let gone = client
        .request("fs/getMetadata", json!({"path": format!("{path}/a")}))
        .await;
    assert_eq!(error_of(&gone).0, -32004);
}

#[tokio::test]
async fn a_sandbox_asking_for_confinement_is_refused_on_every_fs_method() {
    let mut client = client().await;
    let (_directory, path, uri) = directory();
    client
        .call(
            "fs/writeFile",
            json!({"path": format!("{path}/f"), "dataBase64": "eA=="}),
        )
        .await;
    let file = format!("{uri}/f");
    let target = format!("{uri}/target");
    let calls = [
        ("fs/readFile", json!({"path": file})),
        (
            "fs/writeFile",
            json!({"path": target, "dataBase64": "eA=="}),
        ),
        (
            "fs/createDirectory",
            json!({"path": target, "recursive": null}),
        ),
        ("fs/getMetadata", json!({"path": file})),
        ("fs/readDirectory", json!({"path": uri})),
        (
            "fs/remove",
            json!({"path": file, "recursive": null, "force": null}),
        ),
        (
            "fs/copy",
            json!({"sourcePath": file, "destinationPath": target, "recursive": false}),
        ),
        (
            "fs/rename",
            json!({"sourcePath": file, "destinationPath": target}),
        ),
    ];
    let managed = json!({"permissions": {"type": "managed", "fileSystem": {"entries": []}, "network": "restricted"}, "windowsSandboxLevel": "disabled"});
    for (method, params) in &calls {
        let mut params = params.clone();
        params["sandbox"] = managed.clone();
        let response = client.request(method, params).await;
        assert_eq!(
            (error_of(&response).0, error_of(&response).1),
            (-32602, "sandboxUnavailable"),
            "{method}: {response}"
        );
    }
    // Nothing was touched: the file is there, no target was made.
    let listing = client.call("fs/readDirectory", json!({"path": path})).await;
    assert_eq!(listing["entries"].as_array().map(Vec::len), Some(1));

    // Codex's danger-full-access profile asks for nothing, and runs.
    let disabled = json!({"permissions": {"type": "disabled"}});
    let metadata = client
        .call("fs/getMetadata", json!({"path": file, "sandbox": disabled}))
        .await;
    assert_eq!(metadata["isFile"], true);
}

#[tokio::test]
async fn metadata_times_are_integers_and_is_symlink_is_the_path_itself() {
    let mut client = client().await;
    let (directory, path, uri) = directory();
    std::fs::write(directory.path().join("f"), b"12345").expect("a file");
    std::os::unix::fs::symlink(directory.path().join("f"), directory.path().join("link"))
        .expect("a link");

    // `followSymlinks` absent, as Codex never sends it: the target's type
    // and size, and `isSymlink` of the link itself.
    let metadata = client
        .call(
            "fs/getMetadata",
            json!({"path": format!("{uri}/link"), "sandbox": null}),
        )
        .await;
    for time in ["createdAtMs", "modifiedAtMs"] {
        assert!(metadata[time].is_i64(), "{time}: {metadata}");
    }
    assert!(metadata["modifiedAtMs"].as_i64() > Some(0), "{metadata}");
    assert_eq!(
        (
            &metadata["isFile"],
            &metadata["isSymlink"],
            &metadata["size"]
        ),
        (&json!(true), &json!(true), &json!(5))
    );
    let link_itself = client
        .call(
            "fs/getMetadata",
            json!({"path": format!("{path}/link"), "followSymlinks": false}),
        )
        .await;
    assert_eq!(
        (&link_itself["isFile"], &link_itself["isSymlink"]),
        (&json!(false), &json!(true))
    );
}
