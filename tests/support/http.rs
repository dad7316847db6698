//! Plain HTTP/1.1 requests to the test server, headers and all (enough for
//! status codes, cookies and JSON; no client library in the way).

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response: status, headers (names lower-cased) and body. Status 0: the
/// server closed the connection without answering.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `headers` and an optional JSON `body`.
pub async fn request(
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    request_from(
        std::net::Ipv4Addr::LOCALHOST.into(),
        base_url,
        method,
        path,
        headers,
        body,
    )
    .await
}

/// [`request`] from the loopback address `source`, as another client.
pub async fn request_from(
    source: std::net::IpAddr,
    base_url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let host = base_url.trim_start_matches("http://");
    let server: std::net::SocketAddr = tokio::net::lookup_host(host)
        .await
        .expect("server address")
        .next()
        .expect("an address");
    let socket = match server {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .expect("socket");
    if server.ip().is_loopback() && source.is_loopback() && source.is_ipv4() == server.is_ipv4() {
        socket.bind((source, 0).into()).expect("bind source");
    }
    let mut s = socket.connect(server).await.expect("connect HTTP");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or(""));
    // A server that refuses the connection closes it unanswered: status 0.
    let _ = s.write_all(head.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `GET path` with `headers` (a session's cookie, a bearer token).
pub async fn get_with(base_url: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(base_url, "GET", path, headers, None).await
}

/// `GET path`; returns (status, whole response text).
pub async fn get(base_url: &str, path: &str) -> (u16, String) {
    let r = request(base_url, "GET", path, &[], None).await;
    (r.status, r.body)
}
