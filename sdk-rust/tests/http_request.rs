//! `ExecClient::http_request_streamed` against a real server and a local
//! HTTP server (`exec_testkit::HttpTestServer`): a body of several MiB read
//! whole and in order, one stream per `requestId` on the client too, and
//! the server's HTTP errors with their kinds.

use exec_client::protocol::HttpRequestParams;
use exec_client::{ClientError, ConnectOptions, ErrorKind};
use exec_testkit::{HttpTestServer, ServerLauncher, Transport, connect_client, pattern_byte};
use pretty_assertions::assert_eq;

fn get(url: String, request_id: &str) -> HttpRequestParams {
    HttpRequestParams {
        method: "GET".to_owned(),
        url,
        headers: Vec::new(),
        body_base64: None,
        timeout_ms: None,
        redirect_policy: None,
        request_id: request_id.to_owned(),
        stream_response: None,
    }
}

async fn a_streamed_body_is_read_whole_and_in_order(transport: Transport) {
    const LENGTH: usize = 5 * 1024 * 1024 + 3;
    let http = HttpTestServer::start().await;
    let (client, _server) = connect_client(
        transport,
        &ServerLauncher::new(),
        ConnectOptions::new("http_streamed"),
    )
    .await
    .unwrap_or_else(|error| panic!("{error}"));

    let (head, body) = client
        .http_request_streamed(get(http.url(&format!("/bytes/{LENGTH}")), "big"))
        .await
        .expect("http/request");
    assert_eq!(head.status, 200);
    assert!(head.body_base64.0.is_empty());
    // The id is the client's too while its body is being read.
    let refused = client
        .http_request_streamed(get(http.url("/hello"), "big"))
        .await
        .expect_err("the id is taken");
    assert!(matches!(refused, ClientError::InvalidInput(_)), "{refused}");
    assert_eq!(body.request_id(), "big");
    let bytes = body.read_to_end().await.expect("the whole body");
    assert_eq!(bytes.len(), LENGTH);
    assert!(
        bytes
            .iter()
            .enumerate()
            .all(|(index, byte)| *byte == pattern_byte(index)),
        "every byte in its place"
    );

    // Once read, the id is free again.
    let (_, body) = client
        .http_request_streamed(get(http.url("/hello"), "big"))
        .await
        .expect("http/request");
    assert_eq!(body.read_to_end().await.expect("body"), b"hello");

    let mut hanging = get(http.url("/hang"), "t");
    hanging.timeout_ms = Some(100);
    let error = client.http_request(hanging).await.expect_err("timed out");
    assert_eq!(error.kind(), Some(ErrorKind::HttpTimeout), "{error}");
}

exec_testkit::transport_tests! {
    a_streamed_body_is_read_whole_and_in_order: [stdio, in_process],
}
