//! Asks BIRD, through its control socket, which protocols run and which BGP
//! sessions are Established (`show protocols`). Works with Calico's BIRD 1.x
//! fork and BIRD 2: both speak the same line protocol.
//!
//! Every step shares one deadline, so a socket nobody answers on costs at most
//! [`DEADLINE`].

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use terway_hybrid_api::snapshot::{BirdProtocol, BirdState};

pub const DEADLINE: Duration = Duration::from_secs(1);
/// Bounds a garbled or endless answer.
const MAX_LINES: usize = 10_000;

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
    let stream = UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;

    // BIRD greets with "0001 BIRD <version> ready." before taking commands.
    read_reply(&mut reader, deadline, "greeting")?;
    writer.set_write_timeout(Some(remaining(deadline)?)).map_err(|e| e.to_string())?;
    writer.write_all(b"show protocols\n").map_err(|e| format!("send command: {e}"))?;
    let lines = read_reply(&mut reader, deadline, "show protocols")?;
    Ok(parse_protocols(&lines))
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("no answer within {}s", DEADLINE.as_secs_f32()))
}

/// Reads one reply: lines `CCCC-text` continue it, ` text` continues the
/// previous code, and `CCCC text` ends it. Returns (code, text) pairs.
fn read_reply(
    reader: &mut BufReader<UnixStream>,
    deadline: Instant,
    what: &str,
) -> Result<Vec<(u16, String)>, String> {
    let mut lines = Vec::new();
    let mut code = 0u16;
    let mut buf = String::new();
    while lines.len() < MAX_LINES {
        reader.get_ref().set_read_timeout(Some(remaining(deadline)?)).map_err(|e| e.to_string())?;
        buf.clear();
        match reader.read_line(&mut buf) {
            Ok(0) => return Err(format!("{what}: connection closed mid-reply")),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(format!("{what}: no answer within {}s", DEADLINE.as_secs_f32()))
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
        let line = buf.trim_end_matches(['\r', '\n']);
        if let Some(text) = line.strip_prefix(' ') {
            lines.push((code, text.to_owned()));
            continue;
        }
        let (head, sep, text) = match (line.get(..4), line.get(4..5), line.get(5..)) {
            (Some(h), Some(s), t) if h.bytes().all(|b| b.is_ascii_digit()) => (h, s, t.unwrap_or("")),
            _ => {
                return Err(format!(
                    "{what}: not a BIRD reply line: {:?}",
                    line.chars().take(60).collect::<String>()
                ))
            }
        };
        code = head.parse().unwrap_or(0);
        match sep {
            "-" => lines.push((code, text.to_owned())),
            " " => {
                // 8xxx/9xxx are BIRD's errors (e.g. "9001 Access denied").
                if code >= 8000 {
                    return Err(format!(
                        "{what}: BIRD error {code}: {}",
                        text.chars().take(200).collect::<String>()
                    ));
                }
                lines.push((code, text.to_owned()));
                return Ok(lines);
            }
            // Cut as above: the error ends up in the node's report (found by fuzz/ bird_reply).
            _ => {
                return Err(format!(
                    "{what}: not a BIRD reply line: {:?}",
                    line.chars().take(60).collect::<String>()
                ))
            }
        }
    }
    Err(format!("{what}: reply longer than {MAX_LINES} lines"))
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
    use std::os::unix::net::UnixListener;
    use std::thread;

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
