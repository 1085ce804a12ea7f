//! Asks BIRD, through its control socket, which protocols run and which BGP
//! sessions are Established (`show protocols`), each session's details
//! (`show protocols all NAME`) and the first prefixes each Established
//! session imported (`show route protocol NAME`). Works with Calico's BIRD
//! 1.x fork and BIRD 2: both speak the same line protocol.
//!
//! The whole exchange (connect, greeting, command, reply) shares one
//! deadline and one byte budget, so a socket that never accepts (backlog
//! full), never answers, streams bytes without a newline or trickles them
//! costs at most [`DEADLINE`] and [`MAX_REPLY_BYTES`] of memory.

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use std::fs;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use terway_hybrid_api::cross_site::MAX_BGP_PREFIXES;
use terway_hybrid_api::snapshot::{BirdProtocol, BirdState, MAX_BGP_PEERS};

/// For the whole exchange; BIRD answers `show protocols` in milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(1);
/// Everything BIRD may send in one exchange: `show protocols` with a
/// thousand peers is about 100 KB.
const MAX_REPLY_BYTES: usize = 1024 * 1024;
/// Bounds a garbled or endless answer made of short lines.
const MAX_LINES: usize = 10_000;
/// How often a connect to a socket whose backlog is full is retried.
const CONNECT_RETRY: Duration = Duration::from_millis(20);

pub fn query(path: &Path) -> BirdState {
    let shown = path.display().to_string();
    match fs::metadata(path) {
        Err(_) => return BirdState::Absent,
        Ok(meta) if !meta.file_type().is_socket() => return BirdState::NotSocket { path: shown },
        Ok(_) => {}
    }
    match show_protocols(path, Instant::now() + DEADLINE) {
        Ok(protocols) => BirdState::Answered { path: shown, protocols },
        Err(error) => BirdState::NoAnswer { path: shown, error },
    }
}

fn show_protocols(path: &Path, deadline: Instant) -> Result<Vec<BirdProtocol>, String> {
    let mut conn =
        Exchange { stream: connect(path, deadline)?, deadline, buf: Vec::new(), scanned: 0, received: 0 };
    // BIRD greets with "0001 BIRD <version> ready." before taking commands.
    conn.read_reply("greeting")?;
    conn.command("show protocols")?;
    let lines = conn.read_reply("show protocols")?;
    let mut protocols = parse_protocols(&lines);
    // The details of each BGP session (neighbour, state, routes), one
    // protocol at a time: `show protocols all` for every protocol at once
    // runs to tens of lines per protocol, too long on a large mesh.
    let bgp = |p: &BirdProtocol| p.proto.eq_ignore_ascii_case("bgp") && is_symbol(&p.name);
    let mut failed = false;
    for protocol in protocols.iter_mut().filter(|p| bgp(p)).take(MAX_BGP_PEERS) {
        let details = conn.command(&format!("show protocols all {}", protocol.name)).and_then(|()| {
            let mut lines = Vec::new();
            conn.read_reply_with("show protocols all", |code, text| lines.push((code, text.to_owned())))?;
            add_details(protocol, &lines);
            Ok(())
        });
        // The table alone decides the scenario: without details a session
        // is still reported, by its protocol name and table state.
        if let Err(error) = details {
            tracing::debug!(%error, "BIRD: no details of the BGP sessions");
            failed = true;
            break;
        }
    }
    // Prefixes last, so a session with a huge table cannot use up the
    // budget the details of the others need. Only sessions that are up and
    // imported something: the others have nothing to show. One command per
    // session rather than one `show route` for all: docs/benchmarks.md
    // ("BIRD: imported prefixes") has the figures.
    let wanted = |p: &BirdProtocol| {
        bgp(p)
            && p.bgp_state.as_deref().map_or(p.established, |s| s == "Established")
            && p.imported_routes != Some(0)
    };
    for protocol in protocols.iter_mut().filter(|p| !failed && wanted(p)).take(MAX_BGP_PEERS) {
        let mut prefixes = Prefixes::default();
        let listed = conn
            .command(&format!("show route protocol {}", protocol.name))
            .and_then(|()| conn.read_reply_with("show route", |code, text| prefixes.add(code, text)));
        // What was read before a cap or the deadline still counts: these
        // are "the first prefixes", not all of them.
        protocol.imported_prefixes = prefixes.list;
        if let Err(error) = listed {
            tracing::debug!(%error, "BIRD: not every session's imported prefixes");
            break;
        }
    }
    Ok(protocols)
}

/// The first [`MAX_BGP_PREFIXES`] distinct prefixes of a `show route` reply.
#[derive(Debug, Default)]
pub struct Prefixes {
    pub list: Vec<String>,
}

impl Prefixes {
    /// Code 1007 lines are routes. A route line starts with its prefix
    /// (BIRD 2: `10.20.0.0/16  unicast [vbr1 ...] * (100)`; BIRD 1.x:
    /// `10.20.0.0/16 via 172.16.0.1 on eth0 [vbr1 ...]`); further routes of
    /// the same network, next hops (1008) and the `Table master4:` header
    /// start otherwise and are skipped.
    pub fn add(&mut self, code: u16, text: &str) {
        if code != 1007 || self.list.len() >= MAX_BGP_PREFIXES || text.starts_with(char::is_whitespace) {
            return;
        }
        let Some(prefix) = text.split_whitespace().next().and_then(canonical_prefix) else {
            return;
        };
        // At most 16 entries: a linear scan is cheaper than a set.
        if !self.list.contains(&prefix) {
            self.list.push(prefix);
        }
    }
}

/// `ADDR/LEN` with a valid address and length, written the standard way;
/// None for anything else.
pub fn canonical_prefix(word: &str) -> Option<String> {
    let (addr, len) = word.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    // Digits only: `u8::from_str` would take a leading `+`.
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then(|| format!("{addr}/{len}"))
}

/// A BIRD symbol (protocol names are): safe to put in a command line.
fn is_symbol(name: &str) -> bool {
    name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Code 1006 lines are a protocol's details. BIRD 2 and Calico's BIRD 1.x
/// both write `BGP state:`, `Neighbor address:` and, per channel,
/// `Routes: N imported, [N filtered, ]N exported, N preferred`.
fn add_details(protocol: &mut BirdProtocol, lines: &[(u16, String)]) {
    let bounded = |v: &str, max: usize| v.trim().chars().take(max).collect::<String>();
    for (_, text) in lines.iter().filter(|(code, _)| *code == 1006) {
        let text = text.trim();
        if let Some(v) = text.strip_prefix("BGP state:") {
            protocol.bgp_state = Some(bounded(v, 32));
        } else if let Some(v) = text.strip_prefix("Neighbor address:") {
            protocol.neighbor = Some(bounded(v, 64));
        } else if let Some(v) = text.strip_prefix("Routes:") {
            for part in v.split(',') {
                let mut words = part.split_whitespace();
                let (Some(n), Some(what)) = (words.next().and_then(|n| n.parse::<u64>().ok()), words.next())
                else {
                    continue;
                };
                let slot = match what {
                    "imported" => &mut protocol.imported_routes,
                    "exported" => &mut protocol.exported_routes,
                    _ => continue,
                };
                *slot = Some(slot.unwrap_or(0).saturating_add(n));
            }
        }
    }
}

/// A blocking connect(2) to a unix socket whose listener does not accept
/// waits for room in the backlog, forever. Non-blocking, it fails with
/// EAGAIN instead (unix sockets have no EINPROGRESS to poll): retry until
/// the deadline.
fn connect(path: &Path, deadline: Instant) -> Result<UnixStream, String> {
    let addr = UnixAddr::new(path).map_err(|e| format!("connect: {e}"))?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("connect: socket: {e}"))?;
    loop {
        match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
            Ok(()) => break,
            Err(Errno::EAGAIN) if Instant::now() + CONNECT_RETRY < deadline => {
                std::thread::sleep(CONNECT_RETRY)
            }
            Err(Errno::EAGAIN) => {
                return Err(format!(
                    "connect: BIRD accepts no connection (its backlog is full) within {}s",
                    DEADLINE.as_secs_f32()
                ))
            }
            Err(e) => return Err(format!("connect: {}", std::io::Error::from(e))),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    Ok(stream)
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("no answer within {}s", DEADLINE.as_secs_f32()))
}

/// One connection: every read is bounded by what is left of the deadline,
/// everything received by [`MAX_REPLY_BYTES`].
struct Exchange {
    stream: UnixStream,
    deadline: Instant,
    /// Received, not yet split into lines.
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    received: usize,
}

impl Exchange {
    /// Sends one command line (a BIRD symbol at most in it).
    fn command(&mut self, line: &str) -> Result<(), String> {
        self.stream.set_write_timeout(Some(remaining(self.deadline)?)).map_err(|e| e.to_string())?;
        self.stream.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("send command: {e}"))
    }

    /// The next line without its end, or why there is none.
    fn next_line(&mut self, what: &str) -> Result<String, String> {
        loop {
            if let Some(at) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + at;
                self.scanned = 0;
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..end]);
                return Ok(text.trim_end_matches('\r').to_owned());
            }
            self.scanned = self.buf.len();
            if self.received >= MAX_REPLY_BYTES {
                return Err(format!("{what}: reply larger than {MAX_REPLY_BYTES} bytes"));
            }
            let timeout = remaining(self.deadline).map_err(|e| format!("{what}: {e}"))?;
            self.stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 8192];
            let room = (MAX_REPLY_BYTES - self.received).min(chunk.len());
            match self.stream.read(&mut chunk[..room]) {
                Ok(0) => return Err(format!("{what}: connection closed mid-reply")),
                Ok(n) => {
                    self.received += n;
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    return Err(format!("{what}: no answer within {}s", DEADLINE.as_secs_f32()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("{what}: {e}")),
            }
        }
    }

    /// Reads one reply: lines `CCCC-text` continue it, ` text` continues the
    /// previous code, and `CCCC text` ends it. Returns (code, text) pairs.
    fn read_reply(&mut self, what: &str) -> Result<Vec<(u16, String)>, String> {
        let mut lines = Vec::new();
        self.read_reply_with(what, |code, text| lines.push((code, text.to_owned())))?;
        Ok(lines)
    }

    /// [`Exchange::read_reply`], handing each (code, text) to `line` as it
    /// arrives instead of keeping them: a caller that wants a few lines of
    /// a long reply holds only those.
    fn read_reply_with(&mut self, what: &str, mut line: impl FnMut(u16, &str)) -> Result<(), String> {
        let mut code = 0u16;
        for _ in 0..MAX_LINES {
            let raw = self.next_line(what)?;
            match reply_line(&raw) {
                Some(ReplyLine::Continued(text)) => line(code, text),
                Some(ReplyLine::More(c, text)) => {
                    code = c;
                    line(code, text);
                }
                // 8xxx/9xxx are BIRD's errors (e.g. "9001 Access denied").
                Some(ReplyLine::Last(c, text)) if c >= 8000 => {
                    return Err(format!("{what}: BIRD error {c}: {}", shorten(text)))
                }
                Some(ReplyLine::Last(c, text)) => {
                    line(c, text);
                    return Ok(());
                }
                None => return Err(format!("{what}: not a BIRD reply line: {:?}", shorten(&raw))),
            }
        }
        Err(format!("{what}: reply longer than {MAX_LINES} lines"))
    }
}

/// One line of BIRD's control protocol.
#[derive(Debug, PartialEq, Eq)]
enum ReplyLine<'a> {
    /// ` text`: continues the previous code.
    Continued(&'a str),
    /// `CCCC-text`: more lines follow.
    More(u16, &'a str),
    /// `CCCC text`: the reply ends here.
    Last(u16, &'a str),
}

/// Parses one line; None when it is not BIRD's protocol.
fn reply_line(line: &str) -> Option<ReplyLine<'_>> {
    if let Some(text) = line.strip_prefix(' ') {
        return Some(ReplyLine::Continued(text));
    }
    let head = line.get(..4).filter(|h| h.bytes().all(|b| b.is_ascii_digit()))?;
    let code: u16 = head.parse().ok()?;
    let text = line.get(5..).unwrap_or("");
    match line.get(4..5)? {
        "-" => Some(ReplyLine::More(code, text)),
        " " => Some(ReplyLine::Last(code, text)),
        _ => None,
    }
}

/// At most 60 characters of a line, for an error message.
fn shorten(line: &str) -> String {
    line.chars().take(60).collect()
}

/// Code 1002 lines are protocol rows: `name proto table state since info...`.
/// `since` may hold a space in some time formats, so Established is looked
/// for in the whole row.
pub fn parse_protocols(lines: &[(u16, String)]) -> Vec<BirdProtocol> {
    lines
        .iter()
        .filter(|(code, _)| *code == 1002)
        .filter_map(|(_, text)| {
            let mut fields = text.split_whitespace();
            let name = fields.next()?.to_owned();
            let proto = fields.next()?.to_owned();
            let _table = fields.next()?;
            let state = fields.next()?.to_owned();
            let info = fields.skip(1).collect::<Vec<_>>().join(" ");
            let established = text.contains("Established");
            Some(BirdProtocol { name, proto, state, info, established, ..Default::default() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::thread;

    /// Generous: what is asserted is that the exchange ends, not how fast.
    const SLACK: Duration = Duration::from_secs(5);

    /// A BIRD that greets, reads the command, then runs `misbehave` on it and
    /// the connection; the thread returns how many bytes `misbehave` got out
    /// before the agent hung up.
    fn serve_then(
        misbehave: impl FnOnce(&str, &mut UnixStream) -> usize + Send + 'static,
    ) -> (tempfile::TempDir, std::path::PathBuf, thread::JoinHandle<usize>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"0001 BIRD 2.0.12 ready.\n").unwrap();
            let mut cmd = String::new();
            BufReader::new(conn.try_clone().unwrap()).read_line(&mut cmd).unwrap();
            misbehave(&cmd, &mut conn)
        });
        (dir, path, handle)
    }

    /// Writes `chunk` until the peer is gone; returns the bytes written.
    fn write_until_closed(conn: &mut UnixStream, chunk: &[u8], pause: Duration) -> usize {
        let mut sent = 0;
        while conn.write_all(chunk).is_ok() {
            sent += chunk.len();
            thread::sleep(pause);
        }
        sent
    }

    fn no_answer(state: &BirdState) -> &str {
        match state {
            BirdState::NoAnswer { error, .. } => error,
            other => panic!("expected NoAnswer, got {other:?}"),
        }
    }

    /// A listener that never accepts, with a full backlog: a blocking
    /// connect(2) would wait forever.
    #[test]
    fn full_backlog_ends_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.ctl");
        let listener =
            socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
        socket::bind(std::os::fd::AsRawFd::as_raw_fd(&listener), &UnixAddr::new(&path).unwrap()).unwrap();
        socket::listen(&listener, socket::Backlog::new(0).unwrap()).unwrap();
        // Fill the backlog with connections nobody accepts.
        let mut queued = Vec::new();
        loop {
            let fd =
                socket::socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).unwrap();
            match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &UnixAddr::new(&path).unwrap()) {
                Ok(()) => queued.push(fd),
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("filling the backlog: {e}"),
            }
            assert!(queued.len() < 1000, "the backlog never filled");
        }
        let start = Instant::now();
        let state = query(&path);
        let took = start.elapsed();
        assert!(took < DEADLINE + SLACK, "took {took:?}");
        assert!(took >= DEADLINE - CONNECT_RETRY, "gave up before the deadline: {took:?}");
        assert!(no_answer(&state).contains("backlog is full"), "{state:?}");
    }

    /// Bytes without a newline, as fast as the socket takes them: the agent
    /// stops at its byte cap, well before the deadline.
    #[test]
    fn endless_line_stops_at_the_byte_cap() {
        let (_dir, path, handle) =
            serve_then(|_, conn| write_until_closed(conn, &[b'x'; 65536], Duration::ZERO));
        let start = Instant::now();
        let state = query(&path);
        let took = start.elapsed();
        let sent = handle.join().unwrap();
        assert!(took < DEADLINE + SLACK, "took {took:?}");
        let error = no_answer(&state);
        assert!(error.contains(&format!("larger than {MAX_REPLY_BYTES} bytes")), "{error}");
        // What the server got out is what the agent read plus the socket's buffers.
        assert!(sent < MAX_REPLY_BYTES + 4 * 1024 * 1024, "the server wrote {sent} bytes");
    }

    /// Short lines forever: the line cap ends it.
    #[test]
    fn endless_lines_stop_at_the_line_cap() {
        let (_dir, path, handle) =
            serve_then(|_, conn| write_until_closed(conn, &b"1002-x\n".repeat(1000), Duration::ZERO));
        let state = query(&path);
        handle.join().unwrap();
        let error = no_answer(&state);
        assert!(error.contains(&format!("longer than {MAX_LINES} lines")), "{error}");
    }

    /// One byte every 0.5 s never trips a per-read timeout; the deadline of
    /// the whole exchange ends it.
    #[test]
    fn trickle_ends_at_the_deadline() {
        let (_dir, path, handle) =
            serve_then(|_, conn| write_until_closed(conn, b"1", Duration::from_millis(500)));
        let start = Instant::now();
        let state = query(&path);
        let took = start.elapsed();
        handle.join().unwrap();
        assert!(took < DEADLINE + SLACK, "took {took:?}");
        assert!(no_answer(&state).contains("no answer within 1s"), "{state:?}");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // Generating 30 free-text lines per case is slow in a debug build.
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever the route lines say, at most MAX_BGP_PREFIXES
            /// distinct prefixes come out, each a valid prefix in canonical form.
            #[test]
            fn prefixes_are_bounded_distinct_and_canonical(lines in proptest::collection::vec(
                (prop_oneof![Just(1007u16), Just(1008), Just(0)],
                 prop_oneof![
                     "(10|fd00:)[0-9a-f.:]{0,12}/[0-9]{1,3}( unicast \\[p 1:00\\])?",
                     "\\PC{0,40}",
                 ]),
                0..30,
            )) {
                let mut p = Prefixes::default();
                for (code, text) in &lines {
                    p.add(*code, text);
                }
                prop_assert!(p.list.len() <= MAX_BGP_PREFIXES);
                for (i, prefix) in p.list.iter().enumerate() {
                    prop_assert_eq!(canonical_prefix(prefix), Some(prefix.clone()));
                    prop_assert!(!p.list[..i].contains(prefix));
                }
            }

        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// Every line BIRD can send parses back to its code and text.
            #[test]
            fn reply_lines_round_trip(code in 0u16..10_000, text in "\\PC{0,80}", last in any::<bool>()) {
                let line = format!("{code:04}{}{text}", if last { ' ' } else { '-' });
                let want = if last { ReplyLine::Last(code, &text) } else { ReplyLine::More(code, &text) };
                prop_assert_eq!(reply_line(&line), Some(want));
                let continued = format!(" {text}");
                prop_assert_eq!(reply_line(&continued), Some(ReplyLine::Continued(&text)));
            }

            /// A line is BIRD's exactly when it starts with a space, or with
            /// four digits and a space or a dash.
            #[test]
            fn other_lines_are_refused(line in "\\PC{0,40}") {
                let bytes = line.as_bytes();
                let birdish = bytes.first() == Some(&b' ')
                    || (bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) && matches!(bytes[4], b' ' | b'-'));
                prop_assert_eq!(reply_line(&line).is_some(), birdish);
            }

            /// `show protocols` rows: one protocol per 1002 row with its name,
            /// proto and state; Established wherever the row says so.
            #[test]
            fn protocol_rows(rows in proptest::collection::vec(
                ("[A-Za-z][A-Za-z0-9_]{0,15}", prop_oneof![Just("BGP"), Just("Kernel"), Just("Device")],
                 prop_oneof![Just("up"), Just("start"), Just("down")], any::<bool>()),
                0..20,
            )) {
                let lines: Vec<(u16, String)> = rows
                    .iter()
                    .map(|(name, proto, state, est)| {
                        (1002, format!("{name} {proto} --- {state} 13:00:00.000 {}", if *est { "Established" } else { "Active" }))
                    })
                    .chain([(2002, "Name Proto Table State Since Info".to_owned()), (0, String::new())])
                    .collect();
                let got = parse_protocols(&lines);
                prop_assert_eq!(got.len(), rows.len());
                for (p, (name, proto, state, est)) in got.iter().zip(&rows) {
                    prop_assert_eq!((&p.name, &p.proto, &p.state, p.established), (name, &proto.to_string(), &state.to_string(), *est));
                }
            }
        }
    }

    #[test]
    fn reply_lines() {
        assert_eq!(reply_line("0001 BIRD ready."), Some(ReplyLine::Last(1, "BIRD ready.")));
        assert_eq!(reply_line("1002-device1 up"), Some(ReplyLine::More(1002, "device1 up")));
        assert_eq!(reply_line(" kernel1 up"), Some(ReplyLine::Continued("kernel1 up")));
        assert_eq!(reply_line("0000"), None);
        assert_eq!(reply_line("0000 "), Some(ReplyLine::Last(0, "")));
        assert_eq!(reply_line("12a4 x"), None);
        assert_eq!(reply_line("1234+x"), None);
        assert_eq!(reply_line("é234 x"), None);
    }

    /// A BIRD that answers `show protocols` with `answer`.
    fn serve_once(
        answer: &'static [u8],
    ) -> (tempfile::TempDir, std::path::PathBuf, thread::JoinHandle<usize>) {
        serve_then(move |cmd, conn| {
            assert_eq!(cmd, "show protocols\n");
            conn.write_all(answer).unwrap();
            answer.len()
        })
    }

    #[test]
    fn reads_bird2_protocol_table() {
        let (_dir, path, handle) = serve_once(
            b"2002-Name       Proto      Table      State  Since         Info\n\
              1002-device1    Device     ---        up     13:00:00.000  \n \
              kernel1    Kernel     master4    up     13:00:00.000  \n \
              Mesh_10_0_0_2 BGP      ---        up     13:00:01.000  Established   \n \
              Mesh_10_0_0_3 BGP      ---        start  13:00:01.000  Active        Socket: Connection refused\n\
              0000 \n",
        );
        let state = query(&path);
        handle.join().unwrap();
        assert_eq!(state.bgp_sessions(), (2, 1), "{state:?}");
        let BirdState::Answered { protocols, .. } = state else { panic!() };
        assert_eq!(protocols[3].info, "Active Socket: Connection refused");
    }

    /// BIRD 2.0.12's answer for a session Established with two routes in.
    const BIRD2_DETAILS: &[u8] =
        b"1002-peer1      BGP        ---        up     11:54:46.121  Established   \n\
        1006-  BGP state:          Established\n \
            Neighbor address: 192.168.77.2\n \
            Neighbor AS:      64512\n \
          Channel ipv4\n \
            State:          UP\n \
            Routes:         2 imported, 1 exported, 2 preferred\n \
            Route change stats:     received   rejected   filtered    ignored   accepted\n \
              Import updates:              2          0          0          0          2\n \
          Channel ipv6\n \
            Routes:         1 imported, 0 exported, 1 preferred\n\
        0000 \n";

    fn lines(answer: &[u8]) -> Vec<(u16, String)> {
        // The same reader as the socket's, over a socket pair.
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(answer).unwrap();
        let mut conn = Exchange {
            stream: b,
            deadline: Instant::now() + DEADLINE,
            buf: Vec::new(),
            scanned: 0,
            received: 0,
        };
        conn.read_reply("test").unwrap()
    }

    #[test]
    fn session_details_from_bird2_and_calicos_bird1() {
        let mut p = BirdProtocol { name: "peer1".into(), proto: "BGP".into(), ..Default::default() };
        add_details(&mut p, &lines(BIRD2_DETAILS));
        assert_eq!(p.neighbor.as_deref(), Some("192.168.77.2"));
        assert_eq!(p.bgp_state.as_deref(), Some("Established"));
        assert_eq!((p.imported_routes, p.exported_routes), (Some(3), Some(1)), "summed over channels");
        // Calico's BIRD 1.6: routes before the BGP block, a `filtered` count.
        let mut p = BirdProtocol { name: "Mesh_10_0_0_3".into(), proto: "BGP".into(), ..Default::default() };
        add_details(
            &mut p,
            &lines(
                b"1002-Mesh_10_0_0_3 BGP      master   start  2026-11-30  Active        Socket: Connection refused\n\
                  1006-  Description:    Connection to BGP peer\n \
                    Routes:         0 imported, 0 filtered, 0 exported, 0 preferred\n \
                    BGP state:          Active\n \
                      Neighbor address: 10.0.0.3\n\
                  0000 \n",
            ),
        );
        assert_eq!(p.neighbor.as_deref(), Some("10.0.0.3"));
        assert_eq!(p.bgp_state.as_deref(), Some("Active"));
        assert_eq!((p.imported_routes, p.exported_routes), (Some(0), Some(0)));
        // Nothing recognisable: nothing made up.
        let mut p = BirdProtocol::default();
        add_details(&mut p, &[(1006, "Neighbor AS: 64512".into()), (1002, "Routes: 9 imported".into())]);
        assert_eq!(p, BirdProtocol::default());
    }

    /// A BIRD that answers each expected command with its reply, in order;
    /// the thread returns the commands it got.
    fn serve_script(
        script: Vec<(&'static str, Vec<u8>)>,
    ) -> (tempfile::TempDir, std::path::PathBuf, thread::JoinHandle<Vec<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"0001 BIRD 2.0.12 ready.\n").unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut got = Vec::new();
            for (want, answer) in script {
                let mut cmd = String::new();
                if reader.read_line(&mut cmd).unwrap_or(0) == 0 {
                    break;
                }
                got.push(cmd.trim_end().to_owned());
                assert_eq!(cmd.trim_end(), want);
                // The agent may hang up mid-answer (a cap): not the server's failure.
                let _ = conn.write_all(&answer);
            }
            got
        });
        (dir, path, handle)
    }

    /// BIRD 2.0.12's `show route protocol vbr` for two routes of a VBR
    /// session, the first network with a second (not best) route.
    const BIRD2_ROUTES: &[u8] = b"1007-Table master4:\n \
        10.20.0.0/16         unicast [vbr 14:33:25.575] * (100) [AS45104i]\n\
        1008-\tvia 172.16.0.1 on line\n\
        1007-                     unicast [vbr 14:33:26.000] (100) [AS45104i]\n\
        1008-\tvia 172.16.0.1 on line\n\
        1007-10.21.0.0/24         unicast [vbr 14:33:25.575] * (100) [AS45104i]\n\
        1008-\tvia 172.16.0.1 on line\n\
        0000 \n";

    #[test]
    fn established_sessions_list_their_first_imported_prefixes() {
        let table = b"2002-Name       Proto      Table      State  Since         Info\n\
            1002-vbr        BGP        ---        up     13:00:01.000  Established   \n \
            Mesh_10_0_0_3 BGP      ---        start  13:00:01.000  Active        Socket: Connection refused\n \
            Mesh_10_0_0_4 BGP      ---        up     13:00:01.000  Established   \n\
            0000 \n";
        let details = |state: &str, routes: u32| {
            format!(
                "1002-x BGP --- up 13:00:01.000 {state}\n1006-  BGP state:          {state}\n \
                 Neighbor address: 10.0.0.9\n   Routes:         {routes} imported, 0 exported, 0 preferred\n0000 \n"
            )
            .into_bytes()
        };
        let (_dir, path, handle) = serve_script(vec![
            ("show protocols", table.to_vec()),
            ("show protocols all vbr", details("Established", 3)),
            ("show protocols all Mesh_10_0_0_3", details("Active", 0)),
            ("show protocols all Mesh_10_0_0_4", details("Established", 0)),
            ("show route protocol vbr", BIRD2_ROUTES.to_vec()),
        ]);
        let state = query(&path);
        let commands = handle.join().unwrap();
        assert_eq!(commands.len(), 5, "nothing asked of a session down or empty: {commands:?}");
        let peers = state.bgp_peers();
        assert_eq!(peers[0].imported_prefixes, ["10.20.0.0/16", "10.21.0.0/24"], "{state:?}");
        assert!(peers[1].imported_prefixes.is_empty() && peers[2].imported_prefixes.is_empty());
    }

    /// A session with more routes than the reply may hold: the first
    /// prefixes are kept, and the cap is what stops the reading.
    #[test]
    fn a_huge_table_keeps_the_first_prefixes() {
        let mut routes = b"1007-Table master4:\n".to_vec();
        for i in 0..(MAX_LINES as u32 + 10) {
            routes.extend(
                format!(" 10.{}.{}.0/24 unicast [vbr 1:00] * (100)\n", i >> 8 & 255, i & 255).bytes(),
            );
        }
        let (_dir, path, handle) = serve_script(vec![
            ("show protocols", b"1002-vbr BGP --- up 13:00 Established\n0000 \n".to_vec()),
            ("show protocols all vbr", b"1006-  BGP state: Established\n0000 \n".to_vec()),
            ("show route protocol vbr", routes),
        ]);
        let state = query(&path);
        handle.join().unwrap();
        let peers = state.bgp_peers();
        assert_eq!(peers[0].imported_prefixes.len(), MAX_BGP_PREFIXES, "{state:?}");
        assert_eq!(peers[0].imported_prefixes[0], "10.0.0.0/24");
        assert_eq!(peers[0].imported_prefixes[15], "10.0.15.0/24");
    }

    #[test]
    fn route_lines_of_bird1_and_bird2_and_what_is_not_a_prefix() {
        let mut p = Prefixes::default();
        for (code, text) in [
            (1007, "Table master4:"),
            (1007, "10.20.0.0/16 via 172.16.0.1 on eth0 [vbr 2026-11-30] * (100/0) [AS45104i]"),
            (1007, "  10.99.0.0/16 unicast (a later route of the previous network)"),
            (1008, "10.98.0.0/16 via 1.2.3.4"),
            (1007, "fd00:20::/48          unicast [vbr6 14:33:25.575] * (100)"),
            (1007, "10.20.0.0/16 via 172.16.0.2 on eth1 [vbr 2026-11-30] (100/0)"),
            (1007, "300.1.1.1/8 garbage"),
            (1007, "1 of 1 routes for 1 networks in table master4"),
        ] {
            p.add(code, text);
        }
        assert_eq!(p.list, ["10.20.0.0/16", "fd00:20::/48"]);
    }

    #[test]
    fn prefixes_are_canonical_or_refused() {
        assert_eq!(canonical_prefix("10.20.0.0/16").as_deref(), Some("10.20.0.0/16"));
        assert_eq!(canonical_prefix("fd00:0020::/048").as_deref(), Some("fd00:20::/48"));
        assert_eq!(canonical_prefix("::/0").as_deref(), Some("::/0"));
        for bad in
            ["10.20.0.0", "10.20.0.0/33", "10.20.0.0/+8", "10.20.0.0/", "x/8", "/8", "::/129", "1.2.3.4/0008"]
        {
            assert_eq!(canonical_prefix(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_bird_symbols_go_into_a_command() {
        assert!(is_symbol("Mesh_10_0_0_2") && is_symbol("_x") && is_symbol("peer1"));
        for bad in ["", "1peer", "a b", "a\nshow", "x\"", &"a".repeat(65)] {
            assert!(!is_symbol(bad), "{bad:?}");
        }
    }

    #[test]
    fn error_reply_is_reported() {
        let (_dir, path, handle) = serve_once(b"9001 Access denied\n");
        let state = query(&path);
        handle.join().unwrap();
        assert!(matches!(&state, BirdState::NoAnswer { error, .. } if error.contains("9001")), "{state:?}");
    }

    #[test]
    fn silent_socket_times_out_within_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.ctl");
        let _listener = UnixListener::bind(&path).unwrap(); // accepts (backlog) but never speaks
        let start = Instant::now();
        let state = query(&path);
        assert!(start.elapsed() < DEADLINE + Duration::from_millis(500));
        assert!(
            matches!(&state, BirdState::NoAnswer { error, .. } if error.contains("no answer")),
            "{state:?}"
        );
    }

    #[test]
    fn not_a_socket_and_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.ctl");
        assert_eq!(query(&path), BirdState::Absent);
        fs::write(&path, "x").unwrap();
        assert!(matches!(query(&path), BirdState::NotSocket { .. }));
    }

    #[test]
    fn garbage_is_not_a_reply() {
        let (_dir, path, handle) = serve_once(b"HTTP/1.1 400 Bad Request\n");
        let state = query(&path);
        handle.join().unwrap();
        assert!(
            matches!(&state, BirdState::NoAnswer { error, .. } if error.contains("not a BIRD reply")),
            "{state:?}"
        );
    }
}
