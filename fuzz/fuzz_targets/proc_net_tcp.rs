//! `/proc/net/tcp` and `/proc/net/tcp6`, read and folded into the BGP socket
//! counts by the agent's own reader (`sockets::collect` on a directory that
//! holds the input as both files). Property: the peer list stays bounded (8)
//! and holds no duplicates.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use terway_hybrid_agent::collect::fuzzing::proc_net_collect;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // FUZZ_SCRATCH: scripts/fuzz's directory for the run, removed after it.
        let base = std::env::var_os("FUZZ_SCRATCH").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("terway-hybrid-fuzz-proc-net-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    std::fs::write(dir.join("tcp"), data).unwrap();
    std::fs::write(dir.join("tcp6"), data).unwrap();
    let sockets = proc_net_collect(dir);
    assert!(sockets.peers.len() <= 8);
    let mut peers = sockets.peers.clone();
    peers.sort();
    peers.dedup();
    assert_eq!(peers.len(), sockets.peers.len(), "duplicate peers");
});
