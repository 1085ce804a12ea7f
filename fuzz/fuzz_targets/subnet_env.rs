//! flannel's `/run/flannel/subnet.env`. Property: every line that is not
//! blank, a comment or `KEY=value` is kept as a problem (never lost, never
//! a panic), and each problem is at most one line of bounded length.
#![no_main]
use libfuzzer_sys::fuzz_target;
use terway_hybrid_agent::collect::fuzzing::parse_subnet_env;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = parse_subnet_env(text);
    let malformed = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('='))
        .count();
    assert!(env.problems.len() >= malformed, "a malformed line was not reported");
    for p in &env.problems {
        assert!(p.len() < 1024, "problem text grows with the input: {} bytes", p.len());
    }
});
