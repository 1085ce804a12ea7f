//! TCP sockets on the BGP port, from `/proc/net/tcp{,6}`.
//!
//! These files describe the network namespace of the reading process, the
//! same namespace the netlink dumps describe (the DaemonSet runs with
//! hostNetwork), so they are read from the agent's own `/proc`, not from
//! under `--host-root`.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use terway_hybrid_api::snapshot::BgpSockets;

const BGP_PORT: u16 = 179;
const TCP_ESTABLISHED: &str = "01";
const TCP_LISTEN: &str = "0A";
const MAX_PEERS: usize = 8;

pub fn collect(proc_net: &Path) -> BgpSockets {
    let mut sockets = BgpSockets::default();
    let mut errors = Vec::new();
    for file in ["tcp", "tcp6"] {
        match fold_file(&proc_net.join(file), &mut sockets) {
            Ok(()) => {}
            // tcp6 is absent when IPv6 is disabled.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file == "tcp6" => {}
            Err(e) => errors.push(format!("{}: {e}", proc_net.join(file).display())),
        }
    }
    if !errors.is_empty() {
        sockets.error = Some(errors.join("; "));
    }
    sockets
}

/// The kernel rescans its whole TCP hash table for every read of these
/// files, so they are read with one large buffer rather than in small chunks;
/// row by row, so a node with 100,000 sockets (15 MB of table) costs the
/// buffer, not the table.
fn fold_file(path: &Path, into: &mut BgpSockets) -> std::io::Result<()> {
    let reader = BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
    for row in reader.split(b'\n').skip(1) {
        fold_row(&String::from_utf8_lossy(&row?), into);
    }
    Ok(())
}

/// Folds the rows of one `/proc/net/tcp*` table held whole (the tests' form
/// of [`fold_file`]).
#[cfg(test)]
fn fold_table(text: &str, into: &mut BgpSockets) {
    for row in text.lines().skip(1) {
        fold_row(row, into);
    }
}

/// Folds one row. Rows that do not parse are skipped: the kernel's format is
/// stable, so they can only be truncation.
fn fold_row(row: &str, into: &mut BgpSockets) {
    let mut fields = row.split_whitespace();
    let (Some(_slot), Some(local), Some(remote), Some(state)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    let (Some((_, local_port)), Some((remote_ip, remote_port))) = (endpoint(local), endpoint(remote)) else {
        return;
    };
    match state {
        TCP_LISTEN if local_port == BGP_PORT => into.listening = true,
        TCP_ESTABLISHED if local_port == BGP_PORT || remote_port == BGP_PORT => {
            if local_port == BGP_PORT {
                into.established_inbound += 1;
            } else {
                into.established_outbound += 1;
            }
            if into.peers.len() < MAX_PEERS && !into.peers.contains(&remote_ip) {
                into.peers.push(remote_ip);
            }
        }
        _ => {}
    }
}

/// `0100007F:00B3` -> ("127.0.0.1", 179). Addresses are stored as the kernel's
/// 32-bit words in host byte order (little-endian on the platforms we run on).
fn endpoint(field: &str) -> Option<(String, u16)> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..addr.len() / 8)
        .map(|i| addr.get(i * 8..i * 8 + 8).and_then(|w| u32::from_str_radix(w, 16).ok()))
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [w] => Ipv4Addr::from(w.to_le_bytes()).to_string(),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            Ipv6Addr::from(bytes).to_string()
        }
        _ => return None,
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:00B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0200000A:00B3 0300000A:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n\
   2: 0200000A:C350 0400000A:00B3 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n\
   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0\n\
   garbage\n";

    #[test]
    fn counts_listen_inbound_and_outbound() {
        let mut s = BgpSockets::default();
        fold_table(TCP, &mut s);
        assert!(s.listening);
        assert_eq!((s.established_inbound, s.established_outbound), (1, 1));
        assert_eq!(s.peers, ["10.0.0.3", "10.0.0.4"]);
    }

    #[test]
    fn ipv6_endpoint() {
        // ::1 as /proc/net/tcp6 prints it.
        assert_eq!(endpoint("00000000000000000000000001000000:00B3"), Some(("::1".to_owned(), 179)));
        assert_eq!(endpoint("zz:00B3"), None);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// One row as the kernel prints it: slot, local, remote, state.
        fn row(slot: usize, (lip, lport): (u32, u16), (rip, rport): (u32, u16), state: &str) -> String {
            format!(
                "{slot:4}: {lip:08X}:{lport:04X} {rip:08X}:{rport:04X} {state} 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0"
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            /// The counters are exactly the rows on port 179, by state and
            /// direction; peers are the distinct remote addresses, at most 8.
            #[test]
            fn counts_are_the_bgp_rows(rows in proptest::collection::vec(
                ((any::<u32>(), prop_oneof![Just(179u16), any::<u16>()]),
                 (1u32..50, prop_oneof![Just(179u16), any::<u16>()]),
                 prop_oneof![Just("01"), Just("0A"), Just("06")]),
                0..60,
            )) {
                let mut text = String::from("  sl  local_address rem_address   st ...\n");
                for (i, (local, remote, state)) in rows.iter().enumerate() {
                    text.push_str(&row(i, *local, *remote, state));
                    text.push('\n');
                }
                let mut s = BgpSockets::default();
                fold_table(&text, &mut s);
                let est = |r: &&((u32, u16), (u32, u16), &str)| r.2 == "01";
                let inbound = rows.iter().filter(est).filter(|r| r.0 .1 == 179).count();
                let outbound = rows.iter().filter(est).filter(|r| r.0 .1 != 179 && r.1 .1 == 179).count();
                prop_assert_eq!(s.established_inbound as usize, inbound);
                prop_assert_eq!(s.established_outbound as usize, outbound);
                prop_assert_eq!(s.listening, rows.iter().any(|r| r.2 == "0A" && r.0 .1 == 179));
                let mut peers: Vec<String> = Vec::new();
                for r in rows.iter().filter(est).filter(|r| r.0 .1 == 179 || r.1 .1 == 179) {
                    let ip = Ipv4Addr::from(r.1 .0.to_le_bytes()).to_string();
                    if peers.len() < MAX_PEERS && !peers.contains(&ip) {
                        peers.push(ip);
                    }
                }
                prop_assert_eq!(s.peers, peers);
            }

            /// Arbitrary text (a truncated or foreign file) counts only rows
            /// that parse: never more sessions than lines.
            #[test]
            fn junk_counts_nothing_it_cannot_parse(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let text = String::from_utf8_lossy(&bytes);
                let mut s = BgpSockets::default();
                fold_table(&text, &mut s);
                let lines = text.lines().count() as u32;
                prop_assert!(s.established_inbound + s.established_outbound <= lines.saturating_sub(1));
                prop_assert!(s.peers.len() <= MAX_PEERS);
            }
        }
    }

    /// Read row by row from a file, the table counts the same as in one piece.
    #[test]
    fn file_is_folded_row_by_row() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tcp"), TCP).unwrap();
        let s = collect(dir.path());
        assert_eq!(s.error, None, "tcp6 may be absent");
        let mut whole = BgpSockets::default();
        fold_table(TCP, &mut whole);
        assert_eq!(s, whole);
    }

    #[test]
    fn missing_proc_is_an_error_not_a_panic() {
        let s = collect(Path::new("/nonexistent"));
        assert!(s.error.unwrap().contains("/nonexistent/tcp"));
    }
}
