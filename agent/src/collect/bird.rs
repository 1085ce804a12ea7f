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
use terway_hybrid_api::snapshot::{BirdProtocol, BirdState, MAX_BGP_PEERS};

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
    let mut protocols = parse_protocols(&lines);
    // The details of each BGP session (neighbour, state, routes), one
    // protocol at a time: `show protocols all` for every protocol at once
    // runs to tens of lines per protocol, too long on a large mesh.
    let bgp = protocols.iter_mut().filter(|p| p.proto.eq_ignore_ascii_case("bgp") && is_symbol(&p.name));
    for protocol in bgp.take(MAX_BGP_PEERS) {
        let mut details = || -> Result<(), String> {
            writer.set_write_timeout(Some(remaining(deadline)?)).map_err(|e| e.to_string())?;
            writer
                .write_all(format!("show protocols all {}\n", protocol.name).as_bytes())
                .map_err(|e| format!("send command: {e}"))?;
            add_details(protocol, &read_reply(&mut reader, deadline, "show protocols all")?);
            Ok(())
        };
        // The table alone decides the scenario: without details a session
        // is still reported, by its protocol name and table state.
        if let Err(error) = details() {
            tracing::debug!(%error, "BIRD: no details of the BGP sessions");
            break;
        }
    }
    Ok(protocols)
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
pub fn add_details(protocol: &mut BirdProtocol, lines: &[(u16, String)]) {
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
                    return Err(format!("{what}: BIRD error {code}: {text}"));
                }
                lines.push((code, text.to_owned()));
                return Ok(lines);
            }
            _ => return Err(format!("{what}: not a BIRD reply line: {line:?}")),
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
            Some(BirdProtocol { name, proto, state, info, established, ..Default::default() })
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
        read_reply(&mut BufReader::new(b), Instant::now() + DEADLINE, "test").unwrap()
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
