//! ConfigMap kube-system/eni-config: `eni_conf` (JSON) and `10-terway.conf`,
//! as the EniConfig, ServiceCIDR and RamSecret checks and `terway-hybrid dump`
//! (which redacts eni_conf's keys) read them. The input is `eni_conf`, then
//! optionally a NUL byte and `10-terway.conf`.
#![no_main]
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use terway_hybrid_api::Scenario;
use terway_hybrid_controller::pure::checks;
use terway_hybrid_controller::pure::cluster::Cluster;
use terway_hybrid_controller::pure::view::ClusterView;

fuzz_target!(|data: &[u8]| {
    let (conf, terway) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let mut map = BTreeMap::new();
    map.insert("eni_conf".to_owned(), String::from_utf8_lossy(conf).into_owned());
    if let Some(t) = terway {
        map.insert("10-terway.conf".to_owned(), String::from_utf8_lossy(t).into_owned());
    }
    let view = ClusterView {
        eni_config: Some(ConfigMap {
            metadata: ObjectMeta {
                name: Some("eni-config".to_owned()),
                namespace: Some("kube-system".to_owned()),
                ..Default::default()
            },
            data: Some(map),
            ..Default::default()
        }),
        ..Default::default()
    };
    let c = Cluster::new(&view);
    for scenario in [Scenario::Bgp, Scenario::HostNetwork] {
        let _ = checks::eni_config(&c, scenario);
        let _ = checks::service_cidr(&c, scenario);
        let _ = checks::ram_secret(&c, scenario);
    }
    let objects = terway_hybrid_controller::cli::dump_cmd::objects(&view, None).unwrap();
    // What `terway-hybrid dump` writes carries no AccessKey in clear: every
    // non-empty access_key/access_secret of the written eni_conf is redacted.
    let written = objects
        .iter()
        .find_map(|o| o.pointer("/data/eni_conf").and_then(|v| v.as_str()))
        .expect("the dump keeps eni-config");
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(written) {
        for key in ["access_key", "access_secret"] {
            if let Some(serde_json::Value::String(v)) = map.get(key) {
                let redacted = v
                    .strip_prefix("<redacted:")
                    .and_then(|r| r.strip_suffix('>'))
                    .is_some_and(|n| n.parse::<usize>().is_ok());
                assert!(v.is_empty() || redacted, "dump leaks eni_conf {key}");
            }
        }
    }
});
