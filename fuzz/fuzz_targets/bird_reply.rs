//! BIRD's control socket (`/var/run/calico/bird.ctl`): the input is everything
//! BIRD sends (greeting, then the replies to `show protocols`, each session's
//! `show protocols all NAME` and `show route protocol NAME`), served on a
//! real unix socket to the agent's own client (`bird::query`: line protocol,
//! deadline, line cap, then the protocol table, details and prefixes).
//! Property: the answer is bounded (the reply is capped at 10,000 lines),
//! every protocol row parsed from it has a name, a protocol and a state, and
//! every imported prefix is a canonical prefix, at most 16 per session.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, OnceLock};
use terway_hybrid_agent::collect::fuzzing::{bird_query, canonical_prefix};
use terway_hybrid_api::snapshot::BirdState;

struct Server {
    path: PathBuf,
    inputs: Mutex<SyncSender<Vec<u8>>>,
}

/// One listener for the whole run; a thread answers each connection with
/// the next input, then reads until the client hangs up.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        // FUZZ_SCRATCH: scripts/fuzz's directory for the run, removed after it.
        let base = std::env::var_os("FUZZ_SCRATCH").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("terway-hybrid-fuzz-bird-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bird.ctl");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let (tx, rx) = sync_channel::<Vec<u8>>(1);
        std::thread::spawn(move || {
            for input in rx {
                let Ok((mut conn, _)) = listener.accept() else { continue };
                let _ = conn.write_all(&input);
                let _ = conn.shutdown(std::net::Shutdown::Write);
                let mut sink = Vec::new();
                let _ = conn.read_to_end(&mut sink);
            }
        });
        Server { path, inputs: Mutex::new(tx) }
    })
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    server.inputs.lock().unwrap().send(data.to_vec()).unwrap();
    match bird_query(&server.path) {
        BirdState::Answered { protocols, .. } => {
            assert!(protocols.len() <= 10_000);
            for p in &protocols {
                assert!(!p.name.is_empty() && !p.proto.is_empty() && !p.state.is_empty());
                assert!(p.imported_prefixes.len() <= 16);
                for prefix in &p.imported_prefixes {
                    assert_eq!(canonical_prefix(prefix).as_ref(), Some(prefix));
                }
            }
        }
        BirdState::NoAnswer { error, .. } => assert!(error.len() < 1024, "error grows with the input"),
        other => panic!("a listening socket is neither absent nor not a socket: {other:?}"),
    }
});
