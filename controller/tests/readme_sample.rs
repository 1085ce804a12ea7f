//! The preflight sample in README.md is what the CLI prints for the shipped
//! dump it names, so the README cannot drift from the code.

use std::process::Command;

#[test]
fn readme_preflight_sample_is_the_real_output() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let marker = "$ terway-hybrid preflight --from-dump examples/bgp-fail\n";
    let start = readme.find(marker).expect("the sample in README.md") + marker.len();
    let sample = &readme[start..start + readme[start..].find("```").expect("its end")];
    let out = Command::new(env!("CARGO_BIN_EXE_terway-hybrid"))
        .current_dir(root)
        .args(["preflight", "--from-dump", "examples/bgp-fail"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sample, String::from_utf8(out.stdout).unwrap(), "README.md's preflight sample is out of date");
}
