//! `terway-hybrid-agent classify --snapshot FILE`: a NodeSnapshot as JSON,
//! classified and rendered with every role. Property: a snapshot that parses
//! survives a JSON round trip unchanged and classifies the same way after it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use terway_hybrid_agent::checks::NodeContext;
use terway_hybrid_agent::output::{render, Format};
use terway_hybrid_api::{NodeSnapshot, Role};

fuzz_target!(|data: &[u8]| {
    let Ok(snapshot) = serde_json::from_slice::<NodeSnapshot>(data) else { return };
    let again: NodeSnapshot = serde_json::from_str(&serde_json::to_string(&snapshot).unwrap())
        .expect("a snapshot we wrote must parse");
    assert_eq!(snapshot, again, "JSON round trip changed the snapshot");
    for role in [None, Some(Role::Cloud), Some(Role::OnPrem)] {
        let ctx = NodeContext { role, ecs_metadata: None, cloud_network: None };
        let d = terway_hybrid_agent::detect(&snapshot, &ctx);
        let text = render(&d, Format::Text);
        let json = render(&d, Format::Json);
        let d2 = terway_hybrid_agent::detect(&again, &ctx);
        assert_eq!(text, render(&d2, Format::Text), "classification changed after a round trip");
        assert_eq!(json, render(&d2, Format::Json));
    }
});
