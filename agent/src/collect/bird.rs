//! Asks BIRD, through its control socket, which protocols run and which BGP
//! sessions are Established (`show protocols`). Works with Calico's BIRD 1.x
//! fork and BIRD 2: both speak the same line protocol.
//!
//! The whole exchange (connect, greeting, command, reply) shares one
//! deadline and one byte budget, so a socket that never accepts (backlog
//! full), never answers, streams bytes without a newline or trickles them
//! costs at most [`DEADLINE`] and [`MAX_REPLY_BYTES`] of memory.

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use terway_hybrid_api::snapshot::{BirdProtocol, BirdState};

/// For the whole exchange; BIRD answers `show protocols` in milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(1);
/// Everything BIRD may send in one exchange: `show protocols` with a
/// thousand peers is about 100 KB.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;
/// Bounds a garbled or endless answer made of short lines.
pub const MAX_LINES: usize = 10_000;
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
    conn.stream.set_write_timeout(Some(remaining(deadline)?)).map_err(|e| e.to_string())?;
    conn.stream.write_all(b"show protocols\n").map_err(|e| format!("send command: {e}"))?;
    let lines = conn.read_reply("show protocols")?;
    Ok(parse_protocols(&lines))
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
        let mut code = 0u16;
        while lines.len() < MAX_LINES {
            let line = self.next_line(what)?;
            match reply_line(&line) {
                Some(ReplyLine::Continued(text)) => lines.push((code, text.to_owned())),
                Some(ReplyLine::More(c, text)) => {
                    code = c;
                    lines.push((code, text.to_owned()));
                }
                // 8xxx/9xxx are BIRD's errors (e.g. "9001 Access denied").
                Some(ReplyLine::Last(c, text)) if c >= 8000 => {
                    return Err(format!("{what}: BIRD error {c}: {}", shorten(text)))
                }
                Some(ReplyLine::Last(c, text)) => {
                    lines.push((c, text.to_owned()));
                    return Ok(lines);
                }
                None => return Err(format!("{what}: not a BIRD reply line: {:?}", shorten(&line))),
            }
        }
        Err(format!("{what}: reply longer than {MAX_LINES} lines"))
    }
}

/// One line of BIRD's control protocol.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyLine<'a> {
    /// ` text`: continues the previous code.
    Continued(&'a str),
    /// `CCCC-text`: more lines follow.
    More(u16, &'a str),
    /// `CCCC text`: the reply ends here.
    Last(u16, &'a str),
}

/// Parses one line; None when it is not BIRD's protocol.
pub fn reply_line(line: &str) -> Option<ReplyLine<'_>> {
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
            Some(BirdProtocol { name, proto, state, info, established })
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

    /// A BIRD that greets, reads the command, then runs `misbehave` on the
    /// connection; the thread returns how many bytes `misbehave` got out
    /// before the agent hung up.
    fn serve_then(
        misbehave: impl FnOnce(&mut UnixStream) -> usize + Send + 'static,
    ) -> (tempfile::TempDir, std::path::PathBuf, thread::JoinHandle<usize>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"0001 BIRD 2.0.12 ready.\n").unwrap();
            let mut cmd = String::new();
            BufReader::new(conn.try_clone().unwrap()).read_line(&mut cmd).unwrap();
            misbehave(&mut conn)
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
            serve_then(|conn| write_until_closed(conn, &[b'x'; 65536], Duration::ZERO));
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
            serve_then(|conn| write_until_closed(conn, &b"1002-x\n".repeat(1000), Duration::ZERO));
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
            serve_then(|conn| write_until_closed(conn, b"1", Duration::from_millis(500)));
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

    fn serve_once(answer: &'static [u8]) -> (tempfile::TempDir, std::path::PathBuf, thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.ctl");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"0001 BIRD 2.0.12 ready.\n").unwrap();
            let mut cmd = String::new();
            BufReader::new(conn.try_clone().unwrap()).read_line(&mut cmd).unwrap();
            assert_eq!(cmd, "show protocols\n");
            conn.write_all(answer).unwrap();
        });
        (dir, path, handle)
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
