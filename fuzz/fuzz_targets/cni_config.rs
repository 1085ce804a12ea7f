//! The CNI config files of `/etc/cni/net.d` (and k3s' directory): a `.conf`
//! (one plugin) or a `.conflist` (a `plugins` chain). The first input byte
//! says which (odd: `.conflist`). Property: a config that parses names at
//! least one plugin type.
#![no_main]
use libfuzzer_sys::fuzz_target;
use terway_hybrid_agent::collect::fuzzing::parse_cni_config;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    if let Ok((_, types)) = parse_cni_config(text, kind & 1 == 1) {
        assert!(!types.is_empty());
    }
});
