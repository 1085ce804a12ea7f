//! The controller's probe assignment at scale (docs/benchmarks.md, "Probe
//! assignment"): `probe_plan::assign` over 1,000 to 20,000 nodes, half of
//! them on each site, and how many other nodes' targets (so writes) one
//! joining node changes.
//!
//! `cargo bench -p terway-hybrid-controller --bench probe_plan`

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use terway_hybrid_api::{ProbeTarget, Role};
use terway_hybrid_controller::pure::probe_plan::{assign, Member};

/// Timed runs per size; the median is printed.
const RUNS: usize = 7;

fn member(i: usize, role: Role) -> Member {
    let prefix = if role == Role::OnPrem { "idc" } else { "ecs" };
    Member {
        name: format!("{prefix}-{i}"),
        role,
        host: Some(Ipv4Addr::from(0x0a00_0000 + i as u32)),
        // Every fifth node runs a responder pod (a rollout under way).
        pod: i.is_multiple_of(5).then(|| IpAddr::V4(Ipv4Addr::from(0xac10_0000 + i as u32))),
    }
}

fn changed(a: &BTreeMap<String, Vec<ProbeTarget>>, b: &BTreeMap<String, Vec<ProbeTarget>>) -> usize {
    a.iter().filter(|(name, targets)| b.get(*name) != Some(targets)).count()
}

fn main() {
    println!(
        "{:>7}  {:>12}  {:>12}  {:>13}  {:>22}",
        "nodes", "median", "max", "targets", "changed by one joining"
    );
    for nodes in [1_000, 5_000, 10_000, 20_000] {
        let members: Vec<Member> = (0..nodes)
            .map(|i| member(i, if i.is_multiple_of(2) { Role::OnPrem } else { Role::Cloud }))
            .collect();
        let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
        let mut out = BTreeMap::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            out = std::hint::black_box(assign(&members, 3, 9799));
            times.push(started.elapsed());
        }
        times.sort();
        let targets: usize = out.values().map(Vec::len).sum();
        let mut joined = members.clone();
        joined.push(member(nodes + 1, Role::Cloud));
        let moved = changed(&out, &assign(&joined, 3, 9799));
        println!(
            "{nodes:>7}  {:>10.1}ms  {:>10.1}ms  {targets:>13}  {moved:>22}",
            times[RUNS / 2].as_secs_f64() * 1e3,
            times[RUNS - 1].as_secs_f64() * 1e3,
        );
    }
}
