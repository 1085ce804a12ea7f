//! The CRDs under deploy/ are generated, never edited by hand.

#[test]
fn committed_crds_match_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds/terway-hybrid.io.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        committed == terway_hybrid_api::crd::crds_yaml(),
        "{path} is out of date: run `cargo run -p terway-hybrid-api --bin crdgen > deploy/crds/terway-hybrid.io.yaml`"
    );
}
