use std::path::Path;
use terway_hybrid_controller::{dump, plan};
#[test]
fn scratch() {
    let now: k8s_openapi::jiff::Timestamp = "2026-11-20T09:00:00Z".parse().unwrap();
    for e in
        ["overlay-pass", "overlay-fail", "bgp-pass", "bgp-fail", "host-network-pass", "host-network-fail"]
    {
        let v = dump::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(e)).unwrap();
        let p = plan::plan(&v, now);
        println!("=== {e}\n{}", serde_json::to_string_pretty(&p).unwrap());
        println!("{}", serde_json::to_string_pretty(&p.status).unwrap());
        println!("{:?}", p.events);
    }
}
