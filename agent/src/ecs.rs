//! The ECS metadata probe for the `EcsMetadata` check: one plain HTTP GET
//! with a hard deadline. The metadata service only speaks HTTP on a link-local
//! address, so a full HTTP client would be weight without use.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub const DEFAULT_URL: &str = "http://100.100.100.200/latest/meta-data/instance-id";
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// An instance ID is short; anything longer than this is not the service we want.
const MAX_RESPONSE: u64 = 64 * 1024;

/// GETs `url` and returns the body (the instance ID), or why not.
pub fn probe(url: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let (host, port, path) = parse_url(url)?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host}: no address"))?;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let timed_out = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no answer within {}s", timeout.as_secs_f32())
        }
        _ => e.to_string(),
    };
    let mut stream = TcpStream::connect_timeout(&addr, left()).map_err(timed_out)?;
    stream.set_write_timeout(Some(left())).map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(timed_out)?;
    stream.set_read_timeout(Some(left())).map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut response).map_err(timed_out)?;
    parse_response(&response)
}

/// `http://host[:port]/path` only: the metadata service has no TLS.
fn parse_url(url: &str) -> Result<(String, u16, String), String> {
    let rest =
        url.strip_prefix("http://").ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| format!("{url:?}: bad port {p:?}"))?),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok((host.trim_matches(['[', ']']).to_owned(), port, path.to_owned()))
}

fn parse_response(response: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("truncated HTTP response")?;
    let status = head.lines().next().unwrap_or("");
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(body.trim().chars().take(100).collect()),
        Some(code) => Err(format!("HTTP {code}")),
        None => Err(format!("not an HTTP response: {:?}", status.chars().take(40).collect::<String>())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            // Read the whole request: closing on unread data would reset the connection.
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(answer.as_bytes());
        });
        format!("http://{addr}/latest/meta-data/instance-id")
    }

    #[test]
    fn instance_id_from_a_200() {
        let url = serve("HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\ni-bp1234567890abcdefg\n");
        // A generous deadline: the test machine may be busy.
        assert_eq!(probe(&url, Duration::from_secs(10)).unwrap(), "i-bp1234567890abcdefg");
    }

    #[test]
    fn other_status_is_an_error() {
        let url = serve("HTTP/1.1 404 Not Found\r\n\r\n");
        assert_eq!(probe(&url, Duration::from_secs(10)).unwrap_err(), "HTTP 404");
    }

    #[test]
    fn silence_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap(); // accepts via backlog, never answers
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let start = Instant::now();
        let err = probe(&url, Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("no answer"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn bad_urls_are_explained() {
        assert!(parse_url("https://x/").unwrap_err().contains("only http://"));
        assert!(parse_url("http://x:abc/").unwrap_err().contains("bad port"));
        assert_eq!(
            parse_url("http://100.100.100.200/a").unwrap(),
            ("100.100.100.200".into(), 80, "/a".into())
        );
    }
}
