//! `--from-dump FILE` with a JSON file (streamed): whole kubectl `-o json`
//! files (Lists, arrays, several values) and single objects. Inputs the
//! loader would read as YAML are left to `dump_yaml`.
#![no_main]
#[path = "common.rs"]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if matches!(common::first_byte(data), Some(b'{' | b'[')) {
        common::load(data);
    }
});
