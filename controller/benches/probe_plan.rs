//! The controller's probe assignment at scale (docs/benchmarks.md, "Probe
//! assignment"): `probe_plan::assign` over 1,000 to 20,000 nodes, four
//! fifths of them on-prem, a tenth of the cloud nodes' responder pods Ready
//! (a rollout's first wave); and how many other nodes' targets (so writes)
//! one joining cloud node changes, and the next wave.
//!
//! `cargo bench -p terway-hybrid-controller --bench probe_plan`

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use terway_hybrid_api::{ProbeTarget, Role};
use terway_hybrid_controller::pure::probe_plan::{assign, Member};

/// Timed runs per size; the median is printed.
const RUNS: usize = 7;

/// Node `i` of `nodes`: the first four fifths on-prem, each with its
/// responder pod; cloud nodes with theirs up to `waves` tenths of them.
fn member(i: usize, nodes: usize, waves: usize) -> Member {
    let on_prem = nodes * 4 / 5;
    let (name, role, pod) = if i < on_prem {
        (format!("idc-{i}"), Role::OnPrem, true)
    } else {
        (format!("ecs-{}", i - on_prem), Role::Cloud, (i - on_prem) * 10 < (nodes - on_prem) * waves)
    };
    Member {
        name,
        role,
        host: Some(Ipv4Addr::from(0x0a00_0000 + i as u32)),
        pod: pod.then(|| IpAddr::V4(Ipv4Addr::from(0xac10_0000 + i as u32))),
    }
}

/// Nodes, besides a joining `ecs-new`, whose targets differ (a write each).
fn changed(a: &BTreeMap<String, Vec<ProbeTarget>>, b: &BTreeMap<String, Vec<ProbeTarget>>) -> usize {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names.into_iter().filter(|n| *n != "ecs-new" && a.get(*n) != b.get(*n)).count()
}

fn main() {
    println!(
        "{:>7}  {:>12}  {:>12}  {:>13}  {:>22}  {:>18}",
        "nodes", "median", "max", "targets", "changed by one joining", "changed by a wave"
    );
    for nodes in [1_000, 5_000, 10_000, 20_000] {
        let at_wave = |waves: usize| (0..nodes).map(|i| member(i, nodes, waves)).collect::<Vec<_>>();
        let members = at_wave(1);
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
        joined.push(Member { name: "ecs-new".into(), role: Role::Cloud, ..member(nodes - 1, nodes, 0) });
        let moved = changed(&out, &assign(&joined, 3, 9799));
        let wave = changed(&out, &assign(&at_wave(2), 3, 9799));
        println!(
            "{nodes:>7}  {:>10.1}ms  {:>10.1}ms  {targets:>13}  {moved:>22}  {wave:>18}",
            times[RUNS / 2].as_secs_f64() * 1e3,
            times[RUNS - 1].as_secs_f64() * 1e3,
        );
    }
}
