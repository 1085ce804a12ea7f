//! The latency the Terway gate's admission webhook adds to a DaemonSet write,
//! on the real control plane (docs/benchmarks.md, "Admission latency").
//!
//! One controller with its webhook on loopback, Terway created as the add-on
//! manager creates it, then `BENCH_WRITES` (500) server-side applies of an
//! annotation (a real write, stored, no pod roll), alternately to Terway
//! (through the webhook) and to another DaemonSet of the same shape in the
//! same namespace (not matched), each timed by the client. Prints p50 and
//! p99 of both and their difference.
//!
//! `bench/admission-latency.sh` (as root: the test kit needs it), or
//! `cargo bench -p terway-hybrid-controller --bench admission_latency`.

use std::time::Instant;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;
use terway_hybrid_testkit::admission::{requires_gate, rollout_yaml, terway_affinity, wait_webhooks};
use terway_hybrid_testkit::cluster::{addon_terway, Cluster};

const CONTROLLER: &str = env!("CARGO_BIN_EXE_terway-hybrid-controller");
/// Writes of each kind that only warm connections and caches.
const WARM_UP: usize = 20;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass
    // nothing: either way there is one measurement to make.
    terway_hybrid_testkit::require_root();
    let n: usize = std::env::var("BENCH_WRITES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let cluster = Cluster::new();
    let cp = cluster.cp;
    cluster.apply(&rollout_yaml("Auto"));
    let controller = cluster.start_controller(CONTROLLER, "bench");
    wait_webhooks(&cluster, 1, &controller);
    cluster.apply(&addon_terway("terway-eniip"));
    cluster.apply(&addon_terway("not-terway"));
    assert!(requires_gate(&terway_affinity(&cluster)), "the webhook did not gate Terway");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (with, without) = rt.block_on(async {
        let api: Api<DaemonSet> = Api::namespaced(cp.admin_client().await, "kube-system");
        let mut with = Vec::with_capacity(n);
        let mut without = Vec::with_capacity(n);
        for i in 0..n + WARM_UP {
            for (name, out) in [("terway-eniip", &mut with), ("not-terway", &mut without)] {
                let body = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": {"name": name, "annotations": {"bench": i.to_string()}}});
                let started = Instant::now();
                api.patch(name, &PatchParams::apply("bench").force(), &Patch::Apply(&body))
                    .await
                    .unwrap_or_else(|e| panic!("write {i} to {name}: {e}"));
                if i >= WARM_UP {
                    out.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        (with, without)
    });
    let (with, without) = (sorted(with), sorted(without));
    println!("admission-latency writes={n}");
    println!(
        "through the webhook (terway-eniip): p50 {:.2} ms  p99 {:.2} ms",
        pct(&with, 0.5),
        pct(&with, 0.99)
    );
    println!(
        "not matched (another DaemonSet):   p50 {:.2} ms  p99 {:.2} ms",
        pct(&without, 0.5),
        pct(&without, 0.99)
    );
    println!(
        "added by the webhook:              p50 {:.2} ms  p99 {:.2} ms",
        pct(&with, 0.5) - pct(&without, 0.5),
        pct(&with, 0.99) - pct(&without, 0.99)
    );
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The `p` quantile of sorted, non-empty `v` (nearest rank).
fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}
