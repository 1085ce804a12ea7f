//! `maxUnavailable` as a string (`25%`, `3`) turned into a node count for a
//! wave. The first two bytes are the number of cloud nodes, the rest the
//! value. Properties: a wave is at least one node; a percentage never asks
//! for more than all the cloud nodes (or one); `100%` is all of them.
#![no_main]
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use libfuzzer_sys::fuzz_target;
use terway_hybrid_controller::pure::plan::max_unavailable;

fuzz_target!(|data: &[u8]| {
    let Some((n, text)) = data.split_first_chunk::<2>() else { return };
    let cloud = usize::from(u16::from_le_bytes(*n));
    let Ok(text) = std::str::from_utf8(text) else { return };
    let wave = max_unavailable(&IntOrString::String(text.to_owned()), cloud);
    assert!(wave >= 1);
    if text.ends_with('%') {
        assert!(wave <= cloud.max(1), "{text:?} of {cloud} nodes is {wave}");
    }
    assert_eq!(max_unavailable(&IntOrString::String("100%".into()), cloud), cloud.max(1));
    if let Ok(i) = text.parse::<i32>() {
        assert_eq!(wave, max_unavailable(&IntOrString::Int(i), cloud), "\"{i}\" and {i} differ");
    }
});
