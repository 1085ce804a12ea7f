//! `--from-dump FILE` with a YAML file: multi-document streams, `kind: List`,
//! typed lists and single objects. Inputs the loader would read as JSON are
//! left to `dump_json`.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if !matches!(common::first_byte(data), Some(b'{' | b'[')) {
        common::load(data);
    }
});
