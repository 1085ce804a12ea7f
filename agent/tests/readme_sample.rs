//! The detect sample in README.md is what the binary prints for the saved
//! snapshot it names, so the README cannot drift from the code.

use std::process::Command;

#[test]
fn readme_detect_sample_is_the_real_output() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let start = readme.find("On a Calico BGP node, `detect` prints").expect("the sample's heading");
    let block = &readme[start..];
    let open = block.find("```\n").expect("a code block") + 4;
    let close = open + block[open..].find("```").expect("its end");
    let sample = &block[open..close];

    let snapshot = format!("{root}/agent/testdata/snapshots/calico-bgp.json");
    let out = Command::new(env!("CARGO_BIN_EXE_terway-hybrid-agent"))
        .args(["classify", "--snapshot", &snapshot])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sample, String::from_utf8(out.stdout).unwrap(), "README.md's detect sample is out of date");
}
