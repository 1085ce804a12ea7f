//! `--from-dump FILE` holding one object of each kind the view keeps. The
//! first input byte picks the kind (low four bits, modulo 9) and the format
//! (high bit: YAML, else JSON); the rest is the object after its
//! `apiVersion` and `kind` (seeds: every object of `examples/`), so mutations
//! land in the decoding of that kind rather than in finding its name.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

const KINDS: [(&str, &str); 9] = [
    ("v1", "Node"),
    ("terway-hybrid.io/v1alpha1", "NodeNetworkReport"),
    ("apps/v1", "DaemonSet"),
    ("v1", "Pod"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("operator.tigera.io/v1", "Installation"),
    ("terway-hybrid.io/v1alpha1", "TerwayRollout"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (api_version, kind) = KINDS[usize::from(selector & 0x0f) % KINDS.len()];
    let mut file = if selector & 0x80 != 0 {
        format!("apiVersion: {api_version}\nkind: {kind}\n").into_bytes()
    } else {
        format!("{{\"apiVersion\":\"{api_version}\",\"kind\":\"{kind}\",").into_bytes()
    };
    file.extend_from_slice(rest);
    common::load(&file);
});
