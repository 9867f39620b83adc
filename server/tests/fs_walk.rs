//! `fs/walk` and `fs/canonicalize` against the real binary, as a Codex
//! client calls them (`file://` URIs, `sandbox: null`) and as our own
//! clients do (absolute paths): results answer in the request's form.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use exec_testkit::{ServerLauncher, WireClient, scratch_dir};
use pretty_assertions::assert_eq;
use serde_json::json;

/// How long any answer may take here.
const QUICK: Duration = Duration::from_secs(10);

async fn client(url: &str) -> WireClient {
    WireClient::initialized_websocket(url, QUICK).await
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

fn uri(path: &Path) -> String {
    format!("file://{}", text(path))
}

#[tokio::test]
async fn walk_and_canonicalize_answer_in_the_request_form() {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut client = client(&server.url).await;
    let directory = scratch_dir();
    let root = std::fs::canonicalize(directory.path()).expect("the scratch directory");
    std::fs::create_dir_all(root.join("src/.cache")).expect("directories");
    std::fs::write(root.join("src/main.rs"), b"").expect("a file");
    std::fs::write(root.join("src/.cache/blob"), b"").expect("a file");
    std::fs::write(root.join("README"), b"").expect("a file");
    symlink(root.join("README"), root.join("link")).expect("a symlink");
    let options = json!({"maxDepth": 8, "maxDirectories": 100, "maxEntries": 100, "followDirectorySymlinks": false, "pruneHiddenDirectories": true});

    let walked = client
        .call(
            "fs/walk",
            json!({"path": uri(&root), "options": options, "sandbox": null}),
        )
        .await;
    assert_eq!(
        walked,
        json!({
            "entries": [
                {"path": uri(&root.join("README")), "kind": "file"},
                {"path": uri(&root.join("src")), "kind": "directory"},
                {"path": uri(&root.join("src/.cache")), "kind": "directory"},
                {"path": uri(&root.join("src/main.rs")), "kind": "file"},
            ],
            "errors": [],
            "truncated": false,
        })
    );
    let native = client
        .call("fs/walk", json!({"path": text(&root), "options": {"maxDepth": 0, "maxDirectories": 1, "maxEntries": 2, "followDirectorySymlinks": false}}))
        .await;
    // Two entries examined (`README`, and `link`, a symlink to a file,
    // which is never listed); `src` is left out.
    assert_eq!(
        native,
        json!({
            "entries": [{"path": text(&root.join("README")), "kind": "file"}],
            "errors": [],
            "truncated": true,
        })
    );

    let canonical = client
        .call(
            "fs/canonicalize",
            json!({"path": uri(&root.join("src/../link")), "sandbox": null}),
        )
        .await;
    assert_eq!(canonical, json!({"path": uri(&root.join("README"))}));
    let canonical = client
        .call(
            "fs/canonicalize",
            json!({"path": text(&root.join("src/./main.rs"))}),
        )
        .await;
    assert_eq!(canonical, json!({"path": text(&root.join("src/main.rs"))}));

    let missing = client
        .request(
            "fs/canonicalize",
            json!({"path": text(&root.join("missing"))}),
        )
        .await;
    assert_eq!(missing["error"]["data"]["kind"], json!("notFound"));
    let bad_limit = client
        .request("fs/walk", json!({"path": text(&root), "options": {"maxDepth": 0, "maxDirectories": 0, "maxEntries": 1, "followDirectorySymlinks": false}}))
        .await;
    assert_eq!(bad_limit["error"]["data"]["kind"], json!("invalidParams"));
    let sandboxed = client
        .request("fs/walk", json!({"path": text(&root), "options": options, "sandbox": {"permissions": {"type": "managed"}}}))
        .await;
    assert_eq!(
        sandboxed["error"]["data"]["kind"],
        json!("sandboxUnavailable")
    );
}
