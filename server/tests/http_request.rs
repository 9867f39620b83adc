//! `http/request` against the real binary, with a local HTTP server the
//! test starts (`exec_testkit::HttpTestServer`): buffered and streamed
//! bodies, a large streamed body whole and in order in deltas of at most
//! 1 MiB, redirects followed or not, timeouts, the errors a request can
//! meet, one active stream per `requestId`, and streams aborted when the
//! connection ends.

use exec_testkit::{HttpTestServer, Transport, WireClient, decode, pattern_byte};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// Most decoded bytes in one `http/request/bodyDelta`.
const MAX_DELTA_BYTES: usize = 1024 * 1024;

fn get(url: &str, request_id: &str) -> Value {
    json!({"method": "GET", "url": url, "requestId": request_id})
}

/// The `(name, value)` pairs of a result's `headers`.
fn headers(result: &Value) -> Vec<(String, String)> {
    result["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|header| {
            (
                header["name"].as_str().expect("name").to_owned(),
                header["value"].as_str().expect("value").to_owned(),
            )
        })
        .collect()
}

fn error_of(response: &Value) -> (i64, String) {
    (
        response["error"]["code"].as_i64().unwrap_or_default(),
        response["error"]["data"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The deltas of `request_id` through the `done` one, checking `seq`.
async fn deltas(client: &mut WireClient, request_id: &str) -> Vec<Value> {
    let mut deltas: Vec<Value> = Vec::new();
    loop {
        let delta = client
            .recv_matching(|message| {
                message["method"] == "http/request/bodyDelta"
                    && message["params"]["requestId"] == request_id
            })
            .await;
        assert_eq!(
            delta["params"]["seq"],
            json!(deltas.len() + 1),
            "seq is one-based and contiguous"
        );
        let done = delta["params"]["done"] == json!(true);
        deltas.push(delta["params"].clone());
        if done {
            return deltas;
        }
    }
}

async fn buffered_requests_return_status_headers_and_body(transport: Transport) {
    let http = HttpTestServer::start().await;
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;

    let result = client
        .call("http/request", get(&http.url("/hello"), "r1"))
        .await;
    assert_eq!(result["status"], 200);
    assert_eq!(decode(&result["bodyBase64"]), b"hello");
    let repeats: Vec<(String, String)> = headers(&result)
        .into_iter()
        .filter(|(name, _)| name == "x-repeat")
        .collect();
    assert_eq!(
        repeats,
        [
            ("x-repeat".to_owned(), "a".to_owned()),
            ("x-repeat".to_owned(), "b".to_owned())
        ]
    );

    // Method, repeated request headers (in order) and body reach the server.
    let result = client
        .call(
            "http/request",
            json!({
                "method": "POST",
                "url": http.url("/echo"),
                "headers": [
                    {"name": "x-first", "value": "1"},
                    {"name": "x-second", "value": "2"},
                    {"name": "x-first", "value": "3"}
                ],
                "bodyBase64": "cGF5bG9hZA==",
                "timeoutMs": null,
                "redirectPolicy": "follow",
                "requestId": "r2",
                "streamResponse": false
            }),
        )
        .await;
    let echoed = String::from_utf8(decode(&result["bodyBase64"])).expect("UTF-8");
    assert!(echoed.starts_with("POST /echo HTTP/1.1\r\n"), "{echoed}");
    assert!(
        echoed.contains("x-first: 1\r\nx-first: 3\r\nx-second: 2\r\n"),
        "{echoed}"
    );
    assert!(echoed.ends_with("\r\n\r\npayload"), "{echoed}");
}

async fn a_large_streamed_body_arrives_whole_and_in_order(transport: Transport) {
    const LENGTH: usize = 8 * 1024 * 1024 + 12345;
    let http = HttpTestServer::start().await;
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let mut params = get(&http.url(&format!("/bytes/{LENGTH}")), "big");
    params["streamResponse"] = json!(true);
    let id = client.send_request("http/request", params).await;
    // Nothing else is under way, so the very next message must be the
    // response: no delta overtakes it.
    let response = client.recv().await;
    assert_eq!(response["id"], id, "the response comes first: {response}");
    assert_eq!(response["result"]["status"], 200);
    assert_eq!(response["result"]["bodyBase64"], "");

    let deltas = deltas(&mut client, "big").await;
    let mut body = Vec::with_capacity(LENGTH);
    for delta in &deltas {
        let bytes = decode(&delta["deltaBase64"]);
        assert!(bytes.len() <= MAX_DELTA_BYTES, "{} bytes", bytes.len());
        body.extend_from_slice(&bytes);
    }
    let last = deltas.last().expect("a last delta");
    assert_eq!(last["deltaBase64"], "");
    assert_eq!(last.get("error"), None);
    assert_eq!(body.len(), LENGTH);
    assert!(
        body.iter()
            .enumerate()
            .all(|(index, byte)| *byte == pattern_byte(index)),
        "every byte in its place"
    );
}

async fn redirects_are_followed_or_returned(transport: Transport) {
    let http = HttpTestServer::start().await;
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let followed = client
        .call("http/request", get(&http.url("/redirect"), "r"))
        .await;
    assert_eq!(
        (followed["status"].clone(), decode(&followed["bodyBase64"])),
        (json!(200), b"hello".to_vec())
    );
    let mut params = get(&http.url("/redirect"), "r");
    params["redirectPolicy"] = json!("stop");
    let stopped = client.call("http/request", params).await;
    assert_eq!(stopped["status"], 302);
    assert!(
        headers(&stopped).contains(&("location".to_owned(), "/hello".to_owned())),
        "{stopped}"
    );
}

async fn failures_have_their_codes_and_kinds(transport: Transport) {
    let http = HttpTestServer::start().await;
    let mut client = WireClient::connect(transport).await;
    let initialize = client.handshake().await;

    let mut params = get(&http.url("/hang"), "t");
    params["timeoutMs"] = json!(200);
    let response = client.request("http/request", params).await;
    assert_eq!(error_of(&response), (-32603, "httpTimeout".to_owned()));

    // A port nobody listens on: bound, then let go.
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let response = client
        .request("http/request", get(&format!("http://{refused}/"), "c"))
        .await;
    assert_eq!(error_of(&response), (-32603, "httpFailed".to_owned()));

    for url in ["not a url", "ftp://127.0.0.1/file"] {
        let response = client.request("http/request", get(url, "u")).await;
        assert_eq!(error_of(&response), (-32602, "invalidParams".to_owned()));
    }
    let mut params = get(&http.url("/hello"), "m");
    params["method"] = json!("GE T");
    let response = client.request("http/request", params).await;
    assert_eq!(error_of(&response), (-32602, "invalidParams".to_owned()));

    // A buffered body over three quarters of the message limit is refused
    // (by its Content-Length, before it is read).
    let max_message_bytes = initialize["limits"]["maxMessageBytes"]
        .as_u64()
        .expect("maxMessageBytes");
    let cap = max_message_bytes / 4 * 3;
    let response = client
        .request(
            "http/request",
            get(&http.url(&format!("/bytes/{}", cap + 1)), "l"),
        )
        .await;
    assert_eq!(error_of(&response), (-32602, "limitExceeded".to_owned()));
}

async fn one_stream_per_id_and_disconnect_aborts_it(transport: Transport) {
    let http = HttpTestServer::start().await;
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let mut params = get(&http.url("/endless"), "s");
    params["streamResponse"] = json!(true);
    let result = client.call("http/request", params.clone()).await;
    assert_eq!(result["status"], 200);
    let first = client
        .recv_matching(|message| message["method"] == "http/request/bodyDelta")
        .await;
    assert_eq!(first["params"]["seq"], 1);

    // The id is taken while its stream runs; a buffered request may reuse it.
    let response = client.request("http/request", params).await;
    assert_eq!(error_of(&response), (-32602, "invalidParams".to_owned()));
    let buffered = client
        .call("http/request", get(&http.url("/hello"), "s"))
        .await;
    assert_eq!(buffered["status"], 200);

    // Ending the connection aborts the download: the HTTP server sees its
    // client go.
    client.close().await;
    http.client_gone().await;
}

exec_testkit::transport_tests! {
    buffered_requests_return_status_headers_and_body: [stdio, websocket],
    a_large_streamed_body_arrives_whole_and_in_order: [stdio, websocket],
    redirects_are_followed_or_returned: [stdio],
    failures_have_their_codes_and_kinds: [stdio, websocket],
    one_stream_per_id_and_disconnect_aborts_it: [stdio, websocket],
}
