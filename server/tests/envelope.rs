//! The JSON-RPC 2.0 envelope and the lifecycle, against the real binary over
//! stdio and against the in-process mode: every malformed message gets an
//! error object and the connection keeps serving.

use exec_testkit::{Transport, WireClient};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn error_of(response: &Value) -> (i64, Option<String>) {
    let error = &response["error"];
    (
        error["code"].as_i64().expect("an error code"),
        error["data"]["kind"].as_str().map(str::to_owned),
    )
}

async fn lifecycle_is_enforced(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    let early = client.request("process/list", json!({})).await;
    assert_eq!(error_of(&early), (-32600, Some("notInitialized".into())));

    let result = client
        .call(
            "initialize",
            json!({"clientName": "test", "clientVersion": "1"}),
        )
        .await;
    assert_eq!(result["protocolVersion"], "exec-server.v1");
    assert_eq!(result["serverInfo"]["name"], "exec-server");
    assert_eq!(
        result["limits"]["retainedOutputBytesPerProcess"],
        1024 * 1024
    );

    // Between the `initialize` response and `initialized`, still refused.
    let between = client.request("fs/getMetadata", json!({"path": "/"})).await;
    assert_eq!(error_of(&between), (-32600, Some("notInitialized".into())));

    client.notify("initialized", json!({})).await;
    let listed = client.call("process/list", json!({})).await;
    assert_eq!(listed, json!({"processes": []}));

    let again = client
        .request("initialize", json!({"clientName": "test"}))
        .await;
    assert_eq!(
        error_of(&again),
        (-32600, Some("alreadyInitialized".into()))
    );
}

async fn malformed_messages_get_errors_and_the_connection_keeps_serving(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;

    client.send_text("this is not json").await;
    let response = client.recv().await;
    assert_eq!(response["jsonrpc"], "2.0");
    assert_eq!(response["id"], Value::Null);
    assert_eq!(error_of(&response), (-32700, None));

    client.send_text("[1, 2]").await;
    assert_eq!(error_of(&client.recv().await), (-32600, None));

    client
        .send_text(r#"{"jsonrpc":"1.0","id":7,"method":"process/list"}"#)
        .await;
    let response = client.recv().await;
    assert_eq!(
        (response["id"].clone(), error_of(&response)),
        (json!(7), (-32600, None))
    );

    client
        .send_text(r#"{"jsonrpc":"2.0","id":1.5,"method":"process/list"}"#)
        .await;
    let response = client.recv().await;
    assert_eq!(
        (response["id"].clone(), error_of(&response)),
        (Value::Null, (-32600, None))
    );

    let unknown = client.request("process/launch", json!({})).await;
    assert_eq!(error_of(&unknown), (-32601, None));

    let bad_params = client
        .request("process/start", json!({"processId": "p"}))
        .await;
    assert_eq!(
        error_of(&bad_params),
        (-32602, Some("invalidParams".into()))
    );

    // A message with an id but no usable `method` is answered, with its id;
    // one without either is answered with id null (JSON-RPC 2.0, 5.1).
    for (text, id) in [
        (r#"{"id":8}"#, json!(8)),
        (r#"{"id":1,"method":null}"#, json!(1)),
        ("{}", Value::Null),
    ] {
        client.send_text(text).await;
        let response = client.recv().await;
        assert_eq!(
            (response["id"].clone(), error_of(&response)),
            (id, (-32600, None)),
            "{text}"
        );
    }

    // A path too long for the kernel is the request's fault, and the reply
    // repeats at most a few KiB of it.
    let long_path = format!("/{}", "a".repeat(1024 * 1024));
    let too_long = client
        .request("fs/getMetadata", json!({"path": long_path}))
        .await;
    assert_eq!(error_of(&too_long), (-32602, Some("invalidPath".into())));
    assert!(
        too_long.to_string().len() < 16 * 1024,
        "the reply echoes {} bytes",
        too_long.to_string().len()
    );

    let relative = client
        .request("fs/readFile", json!({"path": "etc/hostname"}))
        .await;
    assert_eq!(error_of(&relative), (-32602, Some("invalidPath".into())));
    assert_eq!(relative["error"]["data"]["path"], "etc/hostname");

    // After all that, the connection still serves.
    assert_eq!(
        client.call("process/list", json!({})).await,
        json!({"processes": []})
    );
}

async fn codex_style_requests_without_jsonrpc_and_with_nulls_are_served(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client
        .send_text(r#"{"id":"init","method":"initialize","params":{"clientName":"codex"}}"#)
        .await;
    let response = client.recv().await;
    assert_eq!(response["jsonrpc"], "2.0");
    assert_eq!(response["id"], "init");
    assert!(response["result"]["sessionId"].is_string());
    client.send_text(r#"{"method":"initialized"}"#).await;

    client
        .send_text(r#"{"id":2,"method":"process/read","params":{"processId":"none","afterSeq":null,"maxBytes":null,"waitMs":null}}"#)
        .await;
    let response = client.recv().await;
    assert_eq!(error_of(&response), (-32602, Some("unknownProcess".into())));
    assert_eq!(response["error"]["data"]["processId"], "none");

    // `params` may be omitted when every field is optional.
    client
        .send_text(r#"{"id":3,"method":"process/list"}"#)
        .await;
    assert_eq!(client.recv().await["result"], json!({"processes": []}));
}

async fn an_over_long_line_is_refused_and_the_next_one_served(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let limit = 64 * 1024 * 1024;
    let long = format!(
        r#"{{"id":9,"method":"fs/writeFile","params":{{"path":"/tmp/x","dataBase64":"{}"}}}}"#,
        "A".repeat(limit)
    );
    client.send_text(&long).await;
    let response = client.recv().await;
    assert_eq!(error_of(&response), (-32600, None));
    assert_eq!(
        client.call("process/list", json!({})).await,
        json!({"processes": []})
    );
}

async fn filesystem_round_trip_over_the_wire(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("hello.txt");
    let path = path.to_str().expect("UTF-8 path");
    client
        .call(
            "fs/writeFile",
            json!({"path": path, "dataBase64": "aGVsbG8K"}),
        )
        .await;
    let read = client.call("fs/readFile", json!({"path": path})).await;
    assert_eq!(
        read,
        json!({"dataBase64": "aGVsbG8K", "size": 6, "eof": true})
    );
    let missing = client
        .request("fs/readFile", json!({"path": format!("{path}.missing")}))
        .await;
    assert_eq!(error_of(&missing), (-32004, Some("notFound".into())));
}

async fn initialized_sent_right_behind_initialize_counts(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    // Pipelined: the notification goes out before the response is read.
    client
        .send_text(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientName":"eager"}}"#,
        )
        .await;
    client
        .send_text(r#"{"jsonrpc":"2.0","method":"initialized"}"#)
        .await;
    client
        .send_text(r#"{"jsonrpc":"2.0","id":2,"method":"process/list"}"#)
        .await;
    assert!(client.response(1).await["result"].is_object());
    assert_eq!(client.response(2).await["result"], json!({"processes": []}));
}

async fn params_must_be_an_object(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    for params in [json!(null), json!([]), json!(3)] {
        let response = client.request("process/list", params).await;
        assert_eq!(error_of(&response), (-32602, Some("invalidParams".into())));
    }
}

exec_testkit::transport_tests! {
    lifecycle_is_enforced: [stdio, in_process],
    malformed_messages_get_errors_and_the_connection_keeps_serving: [stdio, in_process],
    codex_style_requests_without_jsonrpc_and_with_nulls_are_served: [stdio, in_process],
    an_over_long_line_is_refused_and_the_next_one_served: [stdio, in_process],
    filesystem_round_trip_over_the_wire: [stdio, in_process],
    initialized_sent_right_behind_initialize_counts: [stdio, in_process],
    params_must_be_an_object: [stdio, in_process],
}
