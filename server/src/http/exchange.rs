//! One request/answer exchange of `http/request`: the params checked and
//! turned into a request, the request sent, the answer's head read, and a
//! buffered body read under its cap.

use std::time::Duration;

use exec_protocol::{
    Base64Bytes, HttpHeader, HttpRedirectPolicy, HttpRequestParams, HttpRequestResponse,
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::client;
use crate::error::ServerError;

/// A request ready to send, and the deadline it carries.
pub(super) struct Prepared {
    /// The request, built on the shared client of its redirect policy.
    request: reqwest::RequestBuilder,
    /// `timeoutMs`, for naming it when it runs out.
    timeout_ms: Option<u64>,
}

/// Checks `params` and builds its request; the body is taken out of
/// `params` rather than copied.
///
/// Errors: `invalidParams` for a method that is not an HTTP token, a URL
/// that does not parse or is not `http`/`https`, a header name or value
/// HTTP cannot carry (the checks and messages Codex's server makes).
pub(super) fn prepare(params: &mut HttpRequestParams) -> Result<Prepared, ServerError> {
    let method = reqwest::Method::from_bytes(params.method.as_bytes())
        .map_err(|error| invalid(format!("http/request method is invalid: {error}")))?;
    let url = reqwest::Url::parse(&params.url)
        .map_err(|error| invalid(format!("http/request url is invalid: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "http/request only supports http and https URLs, got {}",
            url.scheme()
        )));
    }
    let headers = header_map(&params.headers)?;
    let policy = params.redirect_policy.unwrap_or(HttpRedirectPolicy::Follow);
    let mut request = client::shared(policy)?
        .request(method, url)
        .headers(headers);
    if let Some(body) = params.body_base64.take() {
        request = request.body(body.0);
    }
    // The deadline covers the whole exchange, body included (streamed too),
    // as Codex's client timeout does.
    if let Some(timeout_ms) = params.timeout_ms {
        request = request.timeout(Duration::from_millis(timeout_ms));
    }
    Ok(Prepared {
        request,
        timeout_ms: params.timeout_ms,
    })
}

/// Sends the request and reads the answer's head: the answer (for its
/// body) and the result with an empty body.
///
/// Errors: `httpFailed` (connection, TLS, redirects), `httpTimeout`.
pub(super) async fn send(
    prepared: Prepared,
) -> Result<(reqwest::Response, HttpRequestResponse), ServerError> {
    let response = prepared
        .request
        .send()
        .await
        .map_err(|error| client::failure(&error, prepared.timeout_ms))?;
    let head = HttpRequestResponse {
        status: response.status().as_u16(),
        headers: protocol_headers(response.headers()),
        body_base64: Base64Bytes(Vec::new()),
    };
    Ok((response, head))
}

/// Reads the whole body of `response`, at most `cap` bytes.
///
/// Errors: `limitExceeded` as soon as the body is known to be longer than
/// `cap` (its `Content-Length`, else the bytes read so far), so no more than
/// `cap` bytes are ever held; `httpFailed` when it breaks off;
/// `httpTimeout` when `timeout_ms` runs out first.
pub(super) async fn read_body(
    mut response: reqwest::Response,
    cap: usize,
    timeout_ms: Option<u64>,
) -> Result<Vec<u8>, ServerError> {
    let too_long = || ServerError::LimitExceeded {
        what: "http/request body too long to buffer (use streamResponse)",
        limit: cap as u64,
    };
    let expected = response.content_length().unwrap_or(0);
    if expected > cap as u64 {
        return Err(too_long());
    }
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| client::failure(&error, timeout_ms))?
    {
        if body.len() + chunk.len() > cap {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The request headers of `headers`: every repeat appended, in order.
fn header_map(headers: &[HttpHeader]) -> Result<HeaderMap, ServerError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for header in headers {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|error| invalid(format!("http/request header name is invalid: {error}")))?;
        let value = HeaderValue::from_str(&header.value).map_err(|error| {
            invalid(format!(
                "http/request header value is invalid for {}: {error}",
                header.name
            ))
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// The answer's headers in the map's order, repeats kept; a value that is
/// not UTF-8 is left out, since the protocol's values are strings.
fn protocol_headers(headers: &HeaderMap) -> Vec<HttpHeader> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some(HttpHeader {
                name: name.as_str().to_owned(),
                value: std::str::from_utf8(value.as_bytes()).ok()?.to_owned(),
            })
        })
        .collect()
}

fn invalid(message: String) -> ServerError {
    ServerError::InvalidParams { message }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn header(name: &str, value: &str) -> HttpHeader {
        HttpHeader {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn repeated_headers_are_all_kept_in_order() {
        let map = header_map(&[header("X-A", "1"), header("x-b", "2"), header("x-a", "3")])
            .expect("valid headers");
        assert_eq!(
            protocol_headers(&map),
            [header("x-a", "1"), header("x-a", "3"), header("x-b", "2")]
        );
    }

    #[test]
    fn headers_http_cannot_carry_are_invalid_params() {
        for bad in [header("bad name", "v"), header("x", "line\nbreak")] {
            let error = header_map(&[bad]).expect_err("refused");
            assert_eq!(error.kind(), exec_protocol::ErrorKind::InvalidParams);
        }
    }
}
