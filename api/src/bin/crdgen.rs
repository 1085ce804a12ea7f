//! Prints the project's CRDs as YAML. The committed copy is
//! `deploy/crds/terway-hybrid.io.yaml`; a test fails when they differ:
//! `cargo run -p terway-hybrid-api --bin crdgen > deploy/crds/terway-hybrid.io.yaml`.
fn main() {
    print!("{}", terway_hybrid_api::crd::crds_yaml());
}
