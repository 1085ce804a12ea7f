//! `/proc/net/tcp` and `/proc/net/tcp6`, folded into the BGP socket counts.
//! Property: the peer list stays bounded (8) and holds no duplicates.
#![no_main]
use libfuzzer_sys::fuzz_target;
use terway_hybrid_agent::collect::fuzzing::fold_table;
use terway_hybrid_api::snapshot::BgpSockets;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut sockets = BgpSockets::default();
    fold_table(text, &mut sockets);
    fold_table(text, &mut sockets); // tcp then tcp6 fold into the same counts
    assert!(sockets.peers.len() <= 8);
    let mut peers = sockets.peers.clone();
    peers.sort();
    peers.dedup();
    assert_eq!(peers.len(), sockets.peers.len(), "duplicate peers");
});
