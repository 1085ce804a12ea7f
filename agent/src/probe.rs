//! probe: can this node reach a peer on the other site, in how long, and how
//! large a packet does the path carry with fragmentation forbidden?
//!
//! The prober sends UDP datagrams with DF set (`IP_PMTUDISC_DO`) to the
//! peer's responder ([`serve`]), which answers each with 16 bytes: the answer
//! fits any path back, and a large probe never buys a large reply (nothing
//! to amplify). The path MTU comes from the kernel where the path sends ICMP
//! "fragmentation needed" (the kernel records it on the route, and a larger
//! send then fails with `EMSGSIZE`), and from a search over sizes where the
//! path drops large packets silently ([`MtuSearch`], pure).
//!
//! The route the kernel chose for the peer is read over netlink, as the
//! evidence a person needs to see which link a failure is on.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use crate::collect::netlink;

/// The port the agent answers probes on (TCP and UDP).
const DEFAULT_PORT: u16 = 9799;
/// A probe starts with these bytes; anything else is ignored by the responder.
const MAGIC: [u8; 4] = *b"THP1";
/// magic + nonce.
const REQUEST_HEADER: usize = 12;
/// The smallest probe: no shorter than its answer, so the responder never
/// sends more than it received.
const MIN_REQUEST: usize = REPLY_LEN;
/// magic + nonce + the request's length as received.
const REPLY_LEN: usize = 16;
const UDP_HEADER: u32 = 8;
/// Tries of one size before it counts as lost: one lost packet on a lossy
/// path must not pass for a size limit.
const ATTEMPTS: u32 = 2;
/// Reachability tries with a small probe.
const HELLO_ATTEMPTS: u32 = 3;

/// IP header size without options: what an IP packet of a given size
/// carries besides the UDP datagram.
fn ip_header(ip: IpAddr) -> u32 {
    if ip.is_ipv4() {
        20
    } else {
        40
    }
}

/// What became of one probe of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The responder answered.
    Delivered,
    /// No answer within the wait, every attempt.
    Lost,
    /// The kernel refused the size: an ICMP "fragmentation needed" told it
    /// the path carries at most `kernel_mtu`.
    TooBig { kernel_mtu: u32 },
}

/// The search for the largest packet that arrives. `good` is a size known
/// to arrive, `bad` one known not to (or one more than the route allows).
/// The route's own MTU is tried first (the common answer, in one probe),
/// then the MTU an ICMP reported, then halving what is left.
#[derive(Debug, Clone)]
struct MtuSearch {
    good: u32,
    bad: u32,
    exact: Option<u32>,
}

impl MtuSearch {
    /// `good`: the size of the probe that answered; `route_mtu`: the most
    /// the kernel sends on the route (`IP_MTU` of the connected socket).
    pub fn new(good: u32, route_mtu: u32) -> Self {
        let bad = route_mtu.max(good).saturating_add(1);
        MtuSearch { good, bad, exact: (route_mtu > good).then_some(route_mtu) }
    }

    /// The next size to try, or None when the answer is known.
    pub fn next(&self) -> Option<u32> {
        if let Some(size) = self.exact {
            return Some(size);
        }
        (self.bad - self.good > 1).then(|| self.good + (self.bad - self.good) / 2)
    }

    pub fn record(&mut self, size: u32, outcome: Outcome) {
        let exact = self.exact.take() == Some(size);
        match outcome {
            Outcome::Delivered => {
                self.good = self.good.max(size);
                // The route's MTU, or what an ICMP said the next hop takes:
                // nothing larger can pass, no need to search above it.
                if exact {
                    self.bad = self.bad.min(size.saturating_add(1));
                }
            }
            Outcome::Lost => self.bad = self.bad.min(size).max(self.good + 1),
            Outcome::TooBig { kernel_mtu } => {
                self.bad = self.bad.min(size).max(self.good + 1);
                if kernel_mtu > self.good && kernel_mtu < self.bad {
                    self.exact = Some(kernel_mtu);
                }
            }
        }
    }

    /// The largest size known to arrive.
    pub fn path_mtu(&self) -> u32 {
        self.good
    }
}

/// The route the kernel chose for a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteEvidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Who installed the route: `kernel`, `static`, `boot`, `bird`, `bgp`, ... or its number.
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
}

/// One peer's result (`terway-hybrid-agent probe --output json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerProbe {
    pub peer: SocketAddr,
    pub reachable: bool,
    pub rtt_ms: Option<f64>,
    /// The largest IP packet, headers included, that reaches the peer with
    /// fragmentation forbidden.
    pub path_mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteEvidence>,
    /// Why a figure is missing, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Probes `peer` within `timeout`: reachability and round trip with a small
/// probe (UDP, else a TCP connect), then the path MTU over UDP.
pub fn probe(peer: SocketAddr, timeout: Duration) -> PeerProbe {
    let deadline = Instant::now() + timeout;
    let route = route_to(peer.ip()).ok();
    let mut result = PeerProbe { peer, reachable: false, rtt_ms: None, path_mtu: None, route, note: None };
    let mut udp = match Prober::connect(peer) {
        Ok(p) => p,
        Err(e) => {
            result.note = Some(format!("cannot send to {peer}: {e}"));
            return result;
        }
    };
    let hello = udp.ip_size(MIN_REQUEST);
    let hello_wait = (timeout / 4).min(Duration::from_secs(1));
    let mut rtt = None;
    let mut udp_error = None;
    for _ in 0..HELLO_ATTEMPTS {
        match udp.exchange(hello, hello_wait.min(remaining(deadline))) {
            Ok(Some(t)) => {
                rtt = Some(t);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                udp_error = Some(e);
                break;
            }
        }
        if remaining(deadline).is_zero() {
            break;
        }
    }
    let Some(rtt) = rtt else {
        // No UDP answer: the peer may still be there (a firewall that lets
        // only TCP through, or no responder): say so rather than guess.
        let why = match &udp_error {
            Some(e) => format!("UDP probe failed: {e}"),
            None => "no answer to UDP probes".to_owned(),
        };
        let start = Instant::now();
        match TcpStream::connect_timeout(&peer, remaining(deadline).max(Duration::from_millis(1))) {
            Ok(_) => {
                result.reachable = true;
                result.rtt_ms = Some(ms(start.elapsed()));
                result.note = Some(format!("{why}; TCP connects, so the path MTU is unknown"));
            }
            Err(e) => result.note = Some(format!("{why}; TCP connect failed: {e}")),
        }
        return result;
    };
    result.reachable = true;
    result.rtt_ms = Some(ms(rtt));
    // Generous against jitter, short enough that a silent search (about a
    // dozen sizes) ends in seconds on a path of tens of milliseconds.
    let wait = (rtt * 4 + Duration::from_millis(20)).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let route_mtu = udp.kernel_mtu().unwrap_or(hello);
    let mut search = MtuSearch::new(hello, route_mtu);
    while let Some(size) = search.next() {
        if remaining(deadline).is_zero() {
            result.note = Some(format!(
                "the path MTU search did not finish within the timeout: at least {} bytes",
                search.path_mtu()
            ));
            return result;
        }
        search.record(size, udp.try_size(size, wait, deadline));
    }
    result.path_mtu = Some(search.path_mtu());
    result
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A UDP socket connected to the peer, with DF set on everything it sends.
struct Prober {
    socket: UdpSocket,
    peer: SocketAddr,
    nonce: u64,
}

impl Prober {
    fn connect(peer: SocketAddr) -> io::Result<Prober> {
        let bind: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let socket = UdpSocket::bind(bind)?;
        socket.connect(peer)?;
        if peer.is_ipv4() {
            rustix::net::sockopt::set_ip_mtu_discover(
                socket.as_fd(),
                rustix::net::sockopt::Ipv4PathMtuDiscovery::DO,
            )?;
        } else {
            rustix::net::sockopt::set_ipv6_mtu_discover(
                socket.as_fd(),
                rustix::net::sockopt::Ipv6PathMtuDiscovery::DO,
            )?;
        }
        Ok(Prober { socket, peer, nonce: rand::random() })
    }

    /// The IP packet size of a datagram with `payload` bytes.
    fn ip_size(&self, payload: usize) -> u32 {
        ip_header(self.peer.ip()) + UDP_HEADER + payload as u32
    }

    /// What the kernel allows on the route now (its MTU, or the path MTU an
    /// ICMP taught it).
    fn kernel_mtu(&self) -> io::Result<u32> {
        Ok(if self.peer.is_ipv4() {
            rustix::net::sockopt::ip_mtu(self.socket.as_fd())?
        } else {
            rustix::net::sockopt::ipv6_mtu(self.socket.as_fd())?
        })
    }

    /// One size, up to [`ATTEMPTS`] times.
    fn try_size(&mut self, size: u32, wait: Duration, deadline: Instant) -> Outcome {
        for _ in 0..ATTEMPTS {
            match self.exchange(size, wait.min(remaining(deadline))) {
                Ok(Some(_)) => return Outcome::Delivered,
                Ok(None) => {}
                Err(e) if is_too_big(&e) => {}
                Err(_) => return Outcome::Lost,
            }
            // An ICMP "fragmentation needed" may have arrived meanwhile: the
            // kernel then knows better than another try.
            if let Ok(mtu) = self.kernel_mtu() {
                if mtu < size {
                    return Outcome::TooBig { kernel_mtu: mtu };
                }
            }
        }
        Outcome::Lost
    }

    /// Sends one probe of IP size `size` and waits up to `wait` for its
    /// answer: the round trip, or None when none came.
    fn exchange(&mut self, size: u32, wait: Duration) -> io::Result<Option<Duration>> {
        self.nonce = self.nonce.wrapping_add(1);
        let payload = (size.saturating_sub(ip_header(self.peer.ip()) + UDP_HEADER) as usize).max(MIN_REQUEST);
        let mut datagram = vec![0u8; payload];
        datagram[..4].copy_from_slice(&MAGIC);
        datagram[4..12].copy_from_slice(&self.nonce.to_be_bytes());
        let start = Instant::now();
        self.socket.send(&datagram)?;
        let mut reply = [0u8; 64];
        loop {
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.recv(&mut reply) {
                Ok(n) if is_reply(&reply[..n], self.nonce, payload) => return Ok(Some(start.elapsed())),
                Ok(_) => {} // a late answer to an earlier probe
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn is_too_big(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::MSGSIZE.raw_os_error())
}

fn is_reply(reply: &[u8], nonce: u64, payload: usize) -> bool {
    reply.len() == REPLY_LEN
        && reply[..4] == MAGIC
        && reply[4..12] == nonce.to_be_bytes()
        && reply[12..16] == (payload as u32).to_be_bytes()
}

/// The answer to a probe datagram, or None for anything that is not one.
pub fn answer(request: &[u8]) -> Option<[u8; REPLY_LEN]> {
    if request.len() < MIN_REQUEST || request[..4] != MAGIC {
        return None;
    }
    let mut reply = [0u8; REPLY_LEN];
    reply[..REQUEST_HEADER].copy_from_slice(&request[..REQUEST_HEADER]);
    reply[REQUEST_HEADER..].copy_from_slice(&u32::try_from(request.len()).unwrap_or(u32::MAX).to_be_bytes());
    Some(reply)
}

/// Answers probes on `addr` until `shutdown` resolves: UDP datagrams get
/// [`answer`], TCP connections are accepted and closed at once (a connect
/// is the answer). No state per peer; every reply is smaller than its
/// request.
pub async fn serve(addr: SocketAddr, shutdown: impl std::future::Future<Output = ()>) -> io::Result<()> {
    let udp = tokio::net::UdpSocket::bind(addr).await?;
    let tcp = tokio::net::TcpListener::bind(addr).await?;
    serve_on(udp, tcp, None, shutdown).await
}

/// Who may ask a responder to probe for it, and where it may send
/// (`respond --delegate-from`, docs/contracts.md §2): the agent of the
/// responder pod's own node, which is hostNetwork and cannot send from a pod
/// address itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delegation {
    /// The node's address (`status.hostIP`): the only source answered.
    pub from: IpAddr,
    /// The only port probed: the probe port.
    pub port: u16,
}

/// Most peers one delegated request names.
pub const MAX_DELEGATED_PEERS: usize = 8;
/// The longest delegated request, and how long its sender has to send it.
const MAX_DELEGATION_REQUEST: usize = 2048;
const DELEGATION_READ: Duration = Duration::from_secs(2);
/// The longest a delegated probe may take (each peer, in parallel).
const MAX_DELEGATED_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest answer a delegating agent reads.
const MAX_DELEGATION_ANSWER: usize = 64 * 1024;

/// A delegated request: one JSON object on one connection, then EOF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DelegatedRequest {
    pub peers: Vec<SocketAddr>,
    pub timeout_ms: u64,
}

/// The peers a delegated request may probe, and each one's time, or why it
/// is refused. Pure, so every rule is tested without sockets.
fn check_delegation(request: &[u8], port: u16) -> Result<(Vec<SocketAddr>, Duration), String> {
    let r: DelegatedRequest = serde_json::from_slice(request)
        .map_err(|e| format!("not a probe request ({})", e.classify_name()))?;
    if r.peers.len() > MAX_DELEGATED_PEERS {
        return Err(format!("{} peers: at most {MAX_DELEGATED_PEERS}", r.peers.len()));
    }
    if let Some(p) = r.peers.iter().find(|p| p.port() != port) {
        return Err(format!("{p}: only port {port} is probed"));
    }
    let timeout = Duration::from_millis(r.timeout_ms).clamp(Duration::from_millis(1), MAX_DELEGATED_TIMEOUT);
    Ok((r.peers, timeout))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "unexpected fields or values",
            serde_json::error::Category::Eof => "ends early",
        }
    }
}

/// [`serve`] on sockets already bound (so a caller learns the ports first),
/// answering delegated requests from `delegation.from` when given: one at
/// a time (a second one while a round runs is closed unanswered), each read
/// within 2 s and at most 2 KiB, each peer probed within the request's
/// timeout (at most 10 s), the answer a JSON list of [`PeerProbe`].
pub async fn serve_on(
    udp: tokio::net::UdpSocket,
    tcp: tokio::net::TcpListener,
    delegation: Option<Delegation>,
    shutdown: impl std::future::Future<Output = ()>,
) -> io::Result<()> {
    // The largest UDP payload: a bigger datagram is truncated, and then it
    // is no longer the size the prober sent (its length is in the reply).
    let mut buf = vec![0u8; 65_536];
    let busy = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            got = udp.recv_from(&mut buf) => {
                // A send or receive error concerns one datagram (an ICMP
                // for an earlier reply, say): never a reason to stop.
                if let Ok((n, from)) = got {
                    if let Some(reply) = answer(&buf[..n]) {
                        let _ = udp.send_to(&reply, from).await;
                    }
                }
            }
            conn = tcp.accept() => match conn {
                Ok((stream, from)) => {
                    let Some(d) = delegation.filter(|d| same_ip(d.from, from.ip())) else { continue };
                    let Ok(permit) = busy.clone().try_acquire_owned() else { continue };
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Err(e) = delegated(stream, d.port).await {
                            tracing::debug!(error = %e, "delegated probe request");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors: back off instead of spinning.
                    tracing::debug!(error = %e, "probe responder: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// An IPv4 peer may show up as `::ffff:a.b.c.d` on a dual-stack socket.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    canon(a) == canon(b)
}

/// One delegated request: read it (bounded), probe (off the runtime, in
/// parallel), answer, close.
async fn delegated(mut stream: tokio::net::TcpStream, port: u16) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = Vec::new();
    let mut limited = (&mut stream).take(MAX_DELEGATION_REQUEST as u64 + 1);
    match tokio::time::timeout(DELEGATION_READ, limited.read_to_end(&mut request)).await {
        Ok(r) => r.map(drop)?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "request not sent in time")),
    }
    if request.len() > MAX_DELEGATION_REQUEST {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "request too long"));
    }
    let (peers, timeout) =
        check_delegation(&request, port).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let results = probe_all(&peers, timeout).await;
    let body = serde_json::to_vec(&results).map_err(io::Error::other)?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// Probes every peer at once, each on the blocking pool within `timeout`;
/// a probe thread that fails (it cannot, short of a bug) gives an
/// unreachable result saying so.
pub async fn probe_all(peers: &[SocketAddr], timeout: Duration) -> Vec<PeerProbe> {
    let handles: Vec<_> =
        peers.iter().map(|&peer| (peer, tokio::task::spawn_blocking(move || probe(peer, timeout)))).collect();
    let mut out = Vec::with_capacity(handles.len());
    for (peer, handle) in handles {
        out.push(handle.await.unwrap_or_else(|e| PeerProbe {
            peer,
            reachable: false,
            rtt_ms: None,
            path_mtu: None,
            route: None,
            note: Some(format!("the probe failed: {e}")),
        }));
    }
    out
}

/// What a responder's silence means to the delegating agent.
const REFUSED: &str = "no answer: the responder refused the request (not from this node's address?)";

/// A responder refuses by closing the connection unanswered (it never says
/// why, to a stranger). The close is a FIN when it had read the request and
/// a reset when the request was still unread, and which of the two the
/// sender meets depends on timing: at sending, at shutting down or at
/// reading. Before any answer, each of them means refused.
fn refused_or(stage: &str, e: io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected => {
            REFUSED.into()
        }
        _ => format!("{stage}: {e}"),
    }
}

/// Asks the responder at `responder` to probe `peers` from its own network
/// namespace (the pod network) and returns its answer, within `timeout`
/// plus a margin for the exchange.
pub async fn delegate(
    responder: SocketAddr,
    peers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<PeerProbe>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = DelegatedRequest { peers: peers.to_vec(), timeout_ms: timeout.as_millis() as u64 };
    let exchange = async {
        let mut stream =
            tokio::net::TcpStream::connect(responder).await.map_err(|e| format!("connect: {e}"))?;
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        stream.write_all(&body).await.map_err(|e| refused_or("send", e))?;
        stream.shutdown().await.map_err(|e| refused_or("send", e))?;
        let mut answer = Vec::new();
        let read = (&mut stream).take(MAX_DELEGATION_ANSWER as u64 + 1).read_to_end(&mut answer).await;
        match read {
            // Cut in the middle of an answer: not a refusal.
            Err(e) if !answer.is_empty() => return Err(format!("receive: {e}")),
            Err(e) => return Err(refused_or("receive", e)),
            Ok(_) => {}
        }
        if answer.len() > MAX_DELEGATION_ANSWER {
            return Err(format!("an answer over {MAX_DELEGATION_ANSWER} bytes"));
        }
        if answer.is_empty() {
            return Err(REFUSED.into());
        }
        let results: Vec<PeerProbe> =
            serde_json::from_slice(&answer).map_err(|e| format!("an answer that is not results ({e})"))?;
        if results.len() != peers.len() || results.iter().zip(peers).any(|(r, p)| r.peer != *p) {
            return Err("an answer for other peers".into());
        }
        Ok(results)
    };
    let margin = DELEGATION_READ + Duration::from_secs(1);
    tokio::time::timeout(timeout.min(MAX_DELEGATED_TIMEOUT) + margin, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", (timeout + margin).as_secs())))
}

/// The route the kernel would use for `dst` (`ip route get`).
fn route_to(dst: IpAddr) -> Result<RouteEvidence, netlink::NetlinkError> {
    let mut request = RouteMessage::default();
    // The FIB entry that matched (`ip route get fibmatch`): a plain lookup
    // answers with a cached destination, which has no protocol.
    request.header.flags = RouteFlags::FibMatch;
    match dst {
        IpAddr::V4(v4) => {
            request.header.address_family = AddressFamily::Inet;
            request.header.destination_prefix_length = 32;
            request.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(v4)));
        }
        IpAddr::V6(v6) => {
            request.header.address_family = AddressFamily::Inet6;
            request.header.destination_prefix_length = 128;
            request.attributes.push(RouteAttribute::Destination(RouteAddress::Inet6(v6)));
        }
    }
    let answer = netlink::request("route get", RouteNetlinkMessage::GetRoute(request))?;
    let RouteNetlinkMessage::NewRoute(route) = answer else {
        return Err(netlink::NetlinkError::Decode {
            op: "route get",
            detail: "the answer is not a route".into(),
        });
    };
    let address = |a: &RouteAddress| match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    let mut evidence = RouteEvidence {
        gateway: None,
        device: None,
        protocol: protocol_name(route.header.protocol),
        source: None,
    };
    let mut oif = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Gateway(a) => evidence.gateway = address(a),
            RouteAttribute::PrefSource(a) => evidence.source = address(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    if let Some(index) = oif {
        // One name by index, not a dump of every link per peer.
        evidence.device = Some(
            nix::net::if_::if_indextoname(index)
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|_| format!("if{index}")),
        );
    }
    Ok(evidence)
}

fn protocol_name(p: RouteProtocol) -> String {
    match p {
        RouteProtocol::Other(n) => n.to_string(),
        RouteProtocol::IcmpRedirect => "redirect".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT` or a bare IPv6 address; the port
/// defaults to [`DEFAULT_PORT`].
pub fn parse_peer(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        .map_err(|_| format!("{s:?}: expected ADDR, ADDR:PORT or [IPV6]:PORT"))
}

/// The results as a table.
pub fn render_text(results: &[PeerProbe]) -> String {
    let mut out =
        String::from("PEER                                      REACHABLE  RTT(ms)  PATH-MTU  ROUTE\n");
    for r in results {
        let route = r.route.as_ref().map_or_else(
            || "-".to_owned(),
            |rt| {
                let via = rt.gateway.map(|g| format!("via {g} ")).unwrap_or_default();
                format!("{via}dev {} proto {}", rt.device.as_deref().unwrap_or("?"), rt.protocol)
            },
        );
        out += &format!(
            "{:<41} {:<10} {:<8} {:<9} {}\n",
            r.peer.to_string(),
            if r.reachable { "yes" } else { "NO" },
            r.rtt_ms.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}")),
            r.path_mtu.map_or_else(|| "-".to_owned(), |v| v.to_string()),
            crate::text::printable(&route),
        );
        if let Some(note) = &r.note {
            out += &format!("  note: {}\n", crate::text::printable(note));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path that carries up to `limit` bytes, and either says so by ICMP
    /// or drops bigger packets silently.
    fn search(route_mtu: u32, limit: u32, icmp: bool) -> (u32, u32) {
        let mut s = MtuSearch::new(44, route_mtu);
        let mut kernel = route_mtu;
        let mut probes = 0;
        while let Some(size) = s.next() {
            probes += 1;
            assert!(probes < 40, "no end: route {route_mtu} limit {limit} icmp {icmp}");
            let outcome = if size > kernel {
                Outcome::TooBig { kernel_mtu: kernel }
            } else if size <= limit {
                Outcome::Delivered
            } else if icmp {
                kernel = limit;
                Outcome::TooBig { kernel_mtu: kernel }
            } else {
                Outcome::Lost
            };
            s.record(size, outcome);
        }
        (s.path_mtu(), probes)
    }

    #[test]
    fn the_search_finds_every_limit_with_and_without_icmp() {
        for route_mtu in [68, 576, 1280, 1400, 1450, 1500, 9000] {
            // 68: the smallest MTU IPv4 allows on a link.
            for limit in 68..=route_mtu + 100 {
                let want = limit.min(route_mtu);
                let (got, probes) = search(route_mtu, limit, true);
                assert_eq!(got, want, "icmp: route {route_mtu} limit {limit}");
                // ICMP: the route's MTU, then the reported one.
                assert!(probes <= 2, "icmp: {probes} probes for route {route_mtu} limit {limit}");
                let (got, probes) = search(route_mtu, limit, false);
                assert_eq!(got, want, "silent: route {route_mtu} limit {limit}");
                // Silent: one try of the route's MTU, then halving.
                let bound = 1 + (32 - (route_mtu - 44).leading_zeros());
                assert!(
                    probes <= bound,
                    "silent: {probes} > {bound} probes for route {route_mtu} limit {limit}"
                );
            }
        }
    }

    #[test]
    fn a_full_path_takes_one_probe() {
        assert_eq!(search(1500, 1500, false), (1500, 1));
    }

    #[test]
    fn answers_only_probes_and_never_more_than_they_sent() {
        assert_eq!(answer(b""), None);
        assert_eq!(answer(b"THP1short"), None);
        assert_eq!(answer(b"XXXX12345678"), None);
        let mut request = b"THP1".to_vec();
        request.extend_from_slice(&7u64.to_be_bytes());
        request.resize(1400, 0);
        let reply = answer(&request).unwrap();
        assert_eq!(reply.len(), REPLY_LEN);
        assert!(is_reply(&reply, 7, 1400));
        assert!(!is_reply(&reply, 8, 1400), "another probe's answer");
        assert!(!is_reply(&reply, 7, 1399), "a truncated probe");
        // A probe shorter than the answer gets none.
        assert_eq!(answer(&request[..MIN_REQUEST - 1]), None);
        assert!(answer(&request[..MIN_REQUEST]).is_some());
    }

    #[test]
    fn delegated_requests_are_bounded() {
        let ok = br#"{"peers": ["10.0.0.1:9799", "[fd00::1]:9799"], "timeoutMs": 3000}"#;
        let (peers, timeout) = check_delegation(ok, 9799).unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(timeout, Duration::from_secs(3));
        let long = br#"{"peers": [], "timeoutMs": 3600000}"#;
        assert_eq!(check_delegation(long, 9799).unwrap().1, MAX_DELEGATED_TIMEOUT);
        let nine = format!(
            r#"{{"peers": [{}], "timeoutMs": 1}}"#,
            (1..=9).map(|i| format!("\"10.0.0.{i}:9799\"")).collect::<Vec<_>>().join(",")
        );
        assert_eq!(check_delegation(nine.as_bytes(), 9799).unwrap_err(), "9 peers: at most 8");
        let other_port = br#"{"peers": ["10.0.0.1:22"], "timeoutMs": 1}"#;
        assert_eq!(check_delegation(other_port, 9799).unwrap_err(), "10.0.0.1:22: only port 9799 is probed");
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"peers": ["host:9799"], "timeoutMs": 1}"#,
            br#"{"peers": [], "timeoutMs": 1, "extra": 1}"#,
            br#"{"peers": [], "timeoutMs": -1}"#,
        ] {
            let e = check_delegation(bad, 9799).unwrap_err();
            assert!(e.starts_with("not a probe request"), "{e}");
        }
        assert!(same_ip("10.0.0.1".parse().unwrap(), "::ffff:10.0.0.1".parse().unwrap()));
        assert!(!same_ip("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()));
    }

    /// A refusal reaches the delegating agent as a FIN or as a reset,
    /// whichever the timing gives: both read as refused. Many rounds on a
    /// real responder (on loopback the reset is the usual case), then each
    /// case forced.
    #[tokio::test]
    async fn a_refusal_reads_as_refused_whether_it_closes_or_resets() {
        use tokio::io::AsyncReadExt;
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = tcp.local_addr().unwrap();
        // Only 127.0.0.2 is served; the requests come from 127.0.0.1.
        let d = Delegation { from: "127.0.0.2".parse().unwrap(), port: at.port() };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(udp, tcp, Some(d), async { drop(stopped.await) }));
        for round in 0..200 {
            let e = delegate(at, &[at], Duration::from_secs(1)).await.unwrap_err();
            assert_eq!(e, REFUSED, "round {round}");
        }
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();

        // A reset for certain: closed with the request unread.
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = tcp.local_addr().unwrap();
        let reset = tokio::spawn(async move {
            let (s, _) = tcp.accept().await.unwrap();
            s.readable().await.unwrap();
        });
        assert_eq!(delegate(at, &[at], Duration::from_secs(1)).await.unwrap_err(), REFUSED);
        reset.await.unwrap();

        // An answer cut short is not a refusal.
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = tcp.local_addr().unwrap();
        let cut = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut s, _) = tcp.accept().await.unwrap();
            let mut request = Vec::new();
            s.read_to_end(&mut request).await.unwrap();
            s.write_all(b"[{").await.unwrap();
        });
        let e = delegate(at, &[at], Duration::from_secs(1)).await.unwrap_err();
        assert!(e.starts_with("an answer that is not results"), "{e}");
        cut.await.unwrap();

        // Nor is a reset after the first bytes of an answer (linger 0 makes
        // the close a reset; the pause lets those bytes be read first).
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = tcp.local_addr().unwrap();
        let reset_mid_answer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut s, _) = tcp.accept().await.unwrap();
            let mut request = Vec::new();
            s.read_to_end(&mut request).await.unwrap();
            s.write_all(b"[{").await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            s.set_zero_linger().unwrap();
        });
        let e = delegate(at, &[at], Duration::from_secs(1)).await.unwrap_err();
        assert!(e.starts_with("receive: "), "{e}");
        reset_mid_answer.await.unwrap();
    }

    #[test]
    fn peers_parse_with_and_without_a_port() {
        assert_eq!(parse_peer("10.0.0.1").unwrap(), "10.0.0.1:9799".parse().unwrap());
        assert_eq!(parse_peer("10.0.0.1:80").unwrap(), "10.0.0.1:80".parse().unwrap());
        assert_eq!(parse_peer("fd00::1").unwrap(), "[fd00::1]:9799".parse().unwrap());
        assert_eq!(parse_peer("[fd00::1]:80").unwrap(), "[fd00::1]:80".parse().unwrap());
        assert!(parse_peer("host.example:80").is_err());
        assert!(parse_peer("10.0.0.1:99999").is_err());
    }
}
