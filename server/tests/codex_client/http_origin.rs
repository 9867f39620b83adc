//! A local HTTP/1.1 origin for `http/request`: `/echo` answers the request
//! it got (head and body) as its body, `/large` answers
//! [`large_body`]. One request per connection (`Connection: close`); the
//! head is parsed by `httparse`.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The body of `/large`: 3.5 MiB of a pattern, so a streamed body needs
/// several 1 MiB deltas and a lost or reordered one shows.
pub fn large_body() -> Vec<u8> {
    (0..(7 << 19))
        .map(|index: u32| (index % 251) as u8)
        .collect()
}

/// The origin, serving until dropped.
pub struct HttpOrigin {
    address: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HttpOrigin {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream));
            }
        });
        Self { address, task }
    }

    /// The `http://` URL of `path` on this origin.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for HttpOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers one request on `stream`.
async fn serve(mut stream: TcpStream) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let (path, body_start, length) = loop {
        let Ok(read) = stream.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        request.extend_from_slice(&buffer[..read]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(end)) = head.parse(&request) {
            let length = head
                .headers
                .iter()
                .find(|header| header.name.eq_ignore_ascii_case("content-length"))
                .and_then(|header| std::str::from_utf8(header.value).ok()?.parse().ok())
                .unwrap_or(0usize);
            break (head.path.unwrap_or("/").to_owned(), end, length);
        }
    };
    while request.len() < body_start + length {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let body = match path.as_str() {
        "/echo" => request,
        "/large" => large_body(),
        _ => b"not found".to_vec(),
    };
    let status = if path == "/echo" || path == "/large" {
        "200 OK"
    } else {
        "404 Not Found"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}
