//! The ECS metadata probe for the `EcsMetadata` check: plain HTTP GETs
//! under one hard deadline. The metadata service only speaks HTTP on a
//! link-local address, so a full HTTP client would be weight without use.
//!
//! On cloud nodes the same service also gives the VPC's and the vSwitch's
//! CIDRs (`status.cloudNetwork`, read by the `CIDROverlap` cluster check,
//! docs/checks.md).

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use terway_hybrid_api::CloudNetwork;

pub const DEFAULT_URL: &str = "http://100.100.100.200/latest/meta-data/instance-id";
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// An instance ID is short; anything longer than this is not the service we want.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Longest CIDR text taken from the service (`ffff:...:ffff/128` is 43).
const MAX_CIDR: usize = 64;

/// What the metadata service told this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsMetadata {
    /// The instance ID, or why the service did not give it.
    pub instance: Result<String, String>,
    /// The VPC's and the vSwitch's CIDRs; None when the service gave neither.
    pub cloud_network: Option<CloudNetwork>,
}

/// The instance ID at `url`, then `vpc-cidr-block`, `vswitch-cidr-block` and
/// `vswitch-ipv6-cidr-block` beside it (same host, sibling paths), all within
/// `timeout` together. A CIDR that is missing (404: a vSwitch without IPv6),
/// late or not a CIDR is left out, never trusted; without the instance ID the
/// service is not there and nothing more is asked.
pub fn metadata(url: &str, timeout: Duration) -> EcsMetadata {
    let deadline = Instant::now() + timeout;
    let instance = get(url, deadline, timeout);
    if instance.is_err() {
        return EcsMetadata { instance, cloud_network: None };
    }
    let cidr = |name: &str| {
        if Instant::now() >= deadline {
            tracing::debug!(path = name, "the ECS metadata budget is spent");
            return None;
        }
        let sibling = sibling(url, name)?;
        match get(&sibling, deadline, timeout) {
            Ok(body) => parse_cidr(&body).or_else(|| {
                tracing::warn!(path = name, "the ECS metadata service answered something that is not a CIDR");
                None
            }),
            Err(e) => {
                tracing::debug!(path = name, error = %e, "no answer from the ECS metadata service");
                None
            }
        }
    };
    let vpc_cidr = cidr("vpc-cidr-block");
    let vswitch_cidrs: Vec<String> =
        ["vswitch-cidr-block", "vswitch-ipv6-cidr-block"].into_iter().filter_map(cidr).collect();
    let cloud_network =
        (vpc_cidr.is_some() || !vswitch_cidrs.is_empty()).then_some(CloudNetwork { vpc_cidr, vswitch_cidrs });
    EcsMetadata { instance, cloud_network }
}

/// `url` with its last path segment replaced by `name`.
fn sibling(url: &str, name: &str) -> Option<String> {
    let (base, _) = url.rsplit_once('/')?;
    // `http://host` has no path: its last slash is the scheme's.
    (base.len() > "http:/".len()).then(|| format!("{base}/{name}"))
}

/// The body as a CIDR (`ADDRESS/PREFIX`, prefix within the family's width),
/// written back in its canonical form; None for anything else.
fn parse_cidr(body: &str) -> Option<String> {
    let text = body.trim();
    if text.len() > MAX_CIDR {
        return None;
    }
    let (addr, prefix) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    // Digits only: `u8::from_str` would take a leading `+`.
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= width).then(|| format!("{addr}/{prefix}"))
}

/// GETs `url` and returns the body (the instance ID), or why not.
pub fn probe(url: &str, timeout: Duration) -> Result<String, String> {
    get(url, Instant::now() + timeout, timeout)
}

/// GETs `url` before `deadline` (`timeout` is how long that was, for messages).
fn get(url: &str, deadline: Instant, timeout: Duration) -> Result<String, String> {
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
    // The read timeout is per read: a server that drips a byte at a time
    // would outlive it, so each read gets what is left of the deadline.
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if Instant::now() >= deadline {
            return Err(timed_out(std::io::ErrorKind::TimedOut.into()));
        }
        stream.set_read_timeout(Some(left())).map_err(|e| e.to_string())?;
        let room = (MAX_RESPONSE as usize).saturating_sub(response.len()).min(buf.len());
        if room == 0 {
            break;
        }
        match stream.read(&mut buf[..room]) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(timed_out(e)),
        }
    }
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

    #[test]
    fn instance_id_from_a_200() {
        let url = serve_paths(vec![("instance-id", Some("i-bp1234567890abcdefg\n"))]);
        // A generous deadline: the test machine may be busy.
        assert_eq!(probe(&url, Duration::from_secs(10)).unwrap(), "i-bp1234567890abcdefg");
    }

    #[test]
    fn other_status_is_an_error() {
        let url = serve_paths(vec![]);
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

    /// A stand-in metadata service: each connection's path is answered from
    /// `answers` (a 404 for any other path); `None` leaves it unanswered.
    fn serve_paths(answers: Vec<(&'static str, Option<&'static str>)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                match answers.iter().find(|(p, _)| path.ends_with(p)) {
                    Some((_, Some(body))) => {
                        let _ =
                            write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    }
                    // Silent: kept open, never answered.
                    Some((_, None)) => held.push(conn),
                    None => {
                        let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\n\r\n");
                    }
                }
            }
        });
        format!("http://{addr}/latest/meta-data/instance-id")
    }

    #[test]
    fn the_cloud_network_beside_the_instance_id() {
        let url = serve_paths(vec![
            ("/instance-id", Some("i-bp1")),
            ("/vpc-cidr-block", Some("192.168.0.0/16\n")),
            ("/vswitch-cidr-block", Some("192.168.3.0/24")),
            ("/vswitch-ipv6-cidr-block", Some("2408:4005:30a:ee00::/64")),
        ]);
        let m = metadata(&url, Duration::from_secs(10));
        assert_eq!(m.instance.as_deref(), Ok("i-bp1"));
        assert_eq!(
            m.cloud_network,
            Some(CloudNetwork {
                vpc_cidr: Some("192.168.0.0/16".into()),
                vswitch_cidrs: vec!["192.168.3.0/24".into(), "2408:4005:30a:ee00::/64".into()],
            })
        );
    }

    #[test]
    fn no_ipv6_and_garbage_are_left_out() {
        // No IPv6 path (404); the vSwitch answers something that is no CIDR.
        let url = serve_paths(vec![
            ("/instance-id", Some("i-bp1")),
            ("/vpc-cidr-block", Some("10.0.0.0/8")),
            ("/vswitch-cidr-block", Some("<html>\u{1b}[2J10.1.0.0/24</html>")),
        ]);
        let m = metadata(&url, Duration::from_secs(10));
        assert_eq!(
            m.cloud_network,
            Some(CloudNetwork { vpc_cidr: Some("10.0.0.0/8".into()), vswitch_cidrs: vec![] })
        );
        let url = serve_paths(vec![("/instance-id", Some("i-bp1"))]);
        assert_eq!(metadata(&url, Duration::from_secs(10)).cloud_network, None, "neither: no cloudNetwork");
    }

    #[test]
    fn without_the_instance_id_nothing_more_is_asked() {
        let url = serve_paths(vec![("/vpc-cidr-block", Some("10.0.0.0/8"))]);
        let m = metadata(&url, Duration::from_secs(10));
        assert_eq!(m.instance, Err("HTTP 404".to_owned()));
        assert_eq!(m.cloud_network, None);
    }

    /// The CIDR paths share the instance ID's budget: a silent one costs
    /// what is left of it, not a second.
    #[test]
    fn one_budget_for_every_path() {
        let url = serve_paths(vec![
            ("/instance-id", Some("i-bp1")),
            ("/vpc-cidr-block", None),
            ("/vswitch-cidr-block", None),
            ("/vswitch-ipv6-cidr-block", None),
        ]);
        let start = Instant::now();
        let m = metadata(&url, Duration::from_millis(400));
        let took = start.elapsed();
        assert_eq!(m.instance.as_deref(), Ok("i-bp1"));
        assert_eq!(m.cloud_network, None);
        assert!(took < Duration::from_millis(900), "took {took:?} for a 400 ms budget");
    }

    /// A server that sends one byte at a time, slower than nothing at all,
    /// is cut at the deadline, not at the per-read timeout.
    #[test]
    fn a_dripping_answer_is_cut_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let _ = conn.read(&mut [0u8; 1024]);
            for b in b"HTTP/1.1 200 OK\r\n\r\n".iter().cycle().take(1000) {
                if conn.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let start = Instant::now();
        let err = probe(&format!("http://{addr}/"), Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("no answer"), "{err}");
        assert!(start.elapsed() < Duration::from_millis(800), "{:?}", start.elapsed());
    }

    #[test]
    fn cidrs_are_checked_not_trusted() {
        for (body, want) in [
            ("10.0.0.0/8", Some("10.0.0.0/8")),
            (" 172.16.0.0/12\n", Some("172.16.0.0/12")),
            ("0.0.0.0/0", Some("0.0.0.0/0")),
            ("fd00::/8", Some("fd00::/8")),
            ("FD00:0::/8", Some("fd00::/8")),
            ("10.0.0.0/33", None),
            ("fd00::/129", None),
            ("10.0.0.0/+8", None),
            ("10.0.0.0/", None),
            ("10.0.0.0", None),
            ("10.0.0/8", None),
            ("/8", None),
            ("10.0.0.0/8/8", None),
            ("10.0.0.0/0008", None),
            ("", None),
        ] {
            assert_eq!(parse_cidr(body).as_deref(), want, "{body:?}");
        }
        assert_eq!(parse_cidr(&format!("10.0.0.0/8{}", " ".repeat(100))).as_deref(), Some("10.0.0.0/8"));
        assert_eq!(parse_cidr(&"1".repeat(100)), None);
        assert_eq!(
            sibling("http://h/latest/meta-data/instance-id", "vpc-cidr-block").as_deref(),
            Some("http://h/latest/meta-data/vpc-cidr-block")
        );
        assert_eq!(sibling("http://h", "x"), None);
    }
}
