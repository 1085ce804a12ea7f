//! probe_plan: which peers on the other site each node's agent probes
//! (`spec.probeTargets`, docs/contracts.md §3; docs/architecture.md,
//! "Probing between the sites"). Pure: nodes in, targets out.
//!
//! Every node and every peer sits on one hash ring (a position from its
//! name), and the cloud site anchors the assignment. Every change is a
//! write, so a node that joins or leaves must move only a few others'
//! targets, and the cloud site is the one whose nodes come in bulk (a
//! scale-out; a rollout wave makes a hundred responder pods Ready at once).
//! - A cloud node probes the first `peersPerNode` on-prem nodes clockwise
//!   from its own position, its *gap* (the on-prem nodes before the next
//!   cloud node) first. On-prem nodes past the room of a long gap go to the
//!   nearest cloud node before them that still has room
//!   ([`MAX_PROBE_TARGETS`] per node), so every on-prem node is probed
//!   whenever the cloud site has the room.
//! - An on-prem node probes the cloud nodes that chose it: each cloud node
//!   is probed by the first `peersPerNode` on-prem nodes clockwise from it
//!   that have room, first one each, so every cloud node is probed whenever
//!   the on-prem site has the room. A cloud node that joins adds itself to
//!   `peersPerNode` on-prem nodes' targets; were on-prem nodes to pick their
//!   next cloud peers instead, a hundred joining among a hundred would move
//!   the targets of nearly every on-prem node. The price: an on-prem node
//!   may probe nothing when cloud nodes are few, and is then only probed.
//!
//! Pod-network probes use the same ring over the nodes whose responder pod
//! runs (on-prem nodes, and cloud nodes whose Terway gate is open); such a
//! node also gets a `Pod` target naming itself: its own responder pod, which
//! sends the pod-path probes for the agent (docs/contracts.md §2, `respond`).

use crate::pure::cluster::{pod_ready, Cluster};
use crate::pure::view::ClusterView;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use terway_hybrid_api::cross_site::{ProbePath, ProbeTarget, MAX_PROBE_TARGETS};
use terway_hybrid_api::rollout::{GATE_LABEL, GATE_OPEN};
use terway_hybrid_api::Role;

/// The port agents and responder pods answer probes on (`--probe-port`).
pub const DEFAULT_PROBE_PORT: u16 = 9799;
/// Host targets of a node that also probes the pod network: the rest of
/// [`MAX_PROBE_TARGETS`] is its own responder and [`POD_TARGETS`] pod peers.
const HOST_TARGETS_WITH_PODS: usize = 4;
/// Pod peers of a node whose responder pod runs.
const POD_TARGETS: usize = MAX_PROBE_TARGETS - HOST_TARGETS_WITH_PODS - 1;

/// One node as the assignment sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub role: Role,
    /// The first IPv4 InternalIP; a node without one probes but is not probed.
    pub host: Option<Ipv4Addr>,
    /// Its responder pod's address, when the pod runs and may be probed.
    pub pod: Option<IpAddr>,
}

/// Every node's targets in a view (`spec.crossSite.peersPerNode` of its
/// TerwayRollout, or the default).
pub fn targets(view: &ClusterView, port: u16) -> BTreeMap<String, Vec<ProbeTarget>> {
    let peers_per_node = view.rollout.as_ref().map_or_else(
        || terway_hybrid_api::CrossSite::default().peers_per_node,
        |r| r.spec.cross_site.peers_per_node,
    );
    assign(&members(view), peers_per_node, port)
}

/// The members of a view: nodes whose agent has reported (a report with a
/// status, for the node's present incarnation). A node without an agent can
/// neither write its results nor answer probes.
pub fn members(view: &ClusterView) -> Vec<Member> {
    let c = Cluster::new(view);
    c.nodes
        .values()
        .filter(|n| n.current_report().is_some_and(|r| r.status.is_some()))
        .map(|n| {
            let gate_open = n.role == Role::OnPrem || n.label(GATE_LABEL) == Some(GATE_OPEN);
            let pod = c
                .responder
                .and_then(|ds| c.pod_of(ds, n.name()))
                .filter(|p| gate_open && pod_ready(p))
                .and_then(|p| p.status.as_ref()?.pod_ip.as_deref()?.parse().ok());
            Member { name: n.name().to_owned(), role: n.role, host: internal_ipv4(n.node), pod }
        })
        .collect()
}

/// The node's first IPv4 InternalIP.
fn internal_ipv4(node: &k8s_openapi::api::core::v1::Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
}

/// Each member's targets (members with none are absent). `peers_per_node` is
/// `spec.crossSite.peersPerNode`, clamped to 1..=8 (the CRD refuses others).
pub fn assign(members: &[Member], peers_per_node: u32, port: u16) -> BTreeMap<String, Vec<ProbeTarget>> {
    let k = (peers_per_node as usize).clamp(1, MAX_PROBE_TARGETS);
    let mut ring: Vec<(u64, &Member)> = members.iter().map(|m| (position(&m.name), m)).collect();
    // Sorted by position, then name: the input's order does not matter, and
    // two names with one position (a 64-bit collision) still have an order.
    ring.sort_by(|a, b| (a.0, a.1.name.as_str()).cmp(&(b.0, b.1.name.as_str())));
    ring.dedup_by(|a, b| a.1.name == b.1.name);
    let site = |role: Role, pods: bool| -> Vec<(u64, &Member)> {
        ring.iter().filter(|(_, m)| m.role == role && (!pods || m.pod.is_some())).copied().collect()
    };
    let (on_prem, cloud) = (site(Role::OnPrem, false), site(Role::Cloud, false));
    let (on_prem_pods, cloud_pods) = (site(Role::OnPrem, true), site(Role::Cloud, true));
    let mut out: BTreeMap<String, Vec<ProbeTarget>> = BTreeMap::new();
    for (probers_site, probers, peers, pod_probers, pod_peers) in [
        (Role::OnPrem, &on_prem, &cloud, &on_prem_pods, &cloud_pods),
        (Role::Cloud, &cloud, &on_prem, &cloud_pods, &on_prem_pods),
    ] {
        let probes_pods = |m: &Member| m.pod.is_some() && !pod_peers.is_empty();
        let host_peers: Vec<(u64, &Member)> =
            peers.iter().filter(|(_, m)| m.host.is_some()).copied().collect();
        let caps: Vec<usize> = probers
            .iter()
            .map(|(_, m)| if probes_pods(m) { HOST_TARGETS_WITH_PODS } else { MAX_PROBE_TARGETS })
            .collect();
        let pod_caps = vec![POD_TARGETS; pod_probers.len()];
        // Anchored on the cloud site (the module's doc says why).
        let (host, pod) = if probers_site == Role::OnPrem {
            (
                chosen_by_peers(probers, &host_peers, k, &caps),
                chosen_by_peers(pod_probers, pod_peers, k, &pod_caps),
            )
        } else {
            (ring_assign(probers, &host_peers, k, &caps), ring_assign(pod_probers, pod_peers, k, &pod_caps))
        };
        let mut pod_of: BTreeMap<&str, &Vec<usize>> = BTreeMap::new();
        for ((_, m), targets) in pod_probers.iter().zip(&pod) {
            pod_of.insert(&m.name, targets);
        }
        for ((_, m), targets) in probers.iter().zip(&host) {
            let mut list: Vec<ProbeTarget> = targets
                .iter()
                .map(|&i| {
                    let peer = host_peers[i].1;
                    let ip = IpAddr::V4(peer.host.expect("host peers have an address"));
                    target(&peer.name, ip, port, ProbePath::Host)
                })
                .collect();
            if let (Some(own), Some(pods)) = (m.pod, pod_of.get(m.name.as_str())) {
                if !pods.is_empty() {
                    list.push(target(&m.name, own, port, ProbePath::Pod));
                    for &i in pods.iter() {
                        let peer = pod_peers[i].1;
                        list.push(target(
                            &peer.name,
                            peer.pod.expect("pod peers have one"),
                            port,
                            ProbePath::Pod,
                        ));
                    }
                }
            }
            debug_assert!(list.len() <= MAX_PROBE_TARGETS);
            list.truncate(MAX_PROBE_TARGETS);
            if !list.is_empty() {
                out.insert(m.name.clone(), list);
            }
        }
    }
    out
}

fn target(node: &str, ip: IpAddr, port: u16, path: ProbePath) -> ProbeTarget {
    ProbeTarget { node: node.to_owned(), address: SocketAddr::new(ip, port).to_string(), path }
}

/// Where `e` sorts on the ring: position, then name (two names may share a
/// 64-bit position).
fn key<'a>(e: &(u64, &'a Member)) -> (u64, &'a str) {
    (e.0, e.1.name.as_str())
}

/// Each prober's targets, as indexes into `peers` (both sorted by position),
/// chosen by the peers: every peer is probed by the first `k` probers
/// clockwise from it with room left under `caps`. First every peer takes
/// one, so every peer is probed whenever the caps add up to the peers; then
/// each takes its others. A prober lists its peers in ring order.
/// Near-linear: one binary search per peer, and a union-find over the
/// probers that skips the full ones.
fn chosen_by_peers(
    probers: &[(u64, &Member)],
    peers: &[(u64, &Member)],
    k: usize,
    caps: &[usize],
) -> Vec<Vec<usize>> {
    let (n, m) = (probers.len(), peers.len());
    if n == 0 || m == 0 {
        return vec![Vec::new(); n];
    }
    let mut room = Room::new(caps);
    let first: Vec<Option<usize>> = peers
        .iter()
        .enumerate()
        .map(|(j, peer)| room.take(probers.partition_point(|p| key(p) < key(peer)) % n, j))
        .collect();
    for (j, first) in first.into_iter().enumerate() {
        let Some(first) = first else { break };
        let mut mine = vec![first];
        while mine.len() < k.min(n) {
            // Clockwise past the last one taken; one taken before again
            // means the search went all the way around.
            let from = (mine[mine.len() - 1] + 1) % n;
            match room.peek(from) {
                Some(i) if !mine.contains(&i) => {
                    room.take(from, j);
                    mine.push(i);
                }
                _ => break,
            }
        }
    }
    let mut out = room.lists;
    for list in &mut out {
        list.sort_unstable();
    }
    out
}

/// Probers with room left, found clockwise: a union-find in which a full
/// prober points at the one after it (path halving).
struct Room<'c> {
    caps: &'c [usize],
    lists: Vec<Vec<usize>>,
    next: Vec<usize>,
    with_room: usize,
}

impl<'c> Room<'c> {
    fn new(caps: &'c [usize]) -> Self {
        let n = caps.len();
        Room {
            caps,
            lists: vec![Vec::new(); n],
            next: (0..n).map(|i| if caps[i] == 0 { (i + 1) % n } else { i }).collect(),
            with_room: caps.iter().filter(|&&c| c > 0).count(),
        }
    }

    /// The first prober at or after `from` with room.
    fn peek(&mut self, from: usize) -> Option<usize> {
        if self.with_room == 0 {
            return None;
        }
        let mut i = from;
        while self.next[i] != i {
            let up = self.next[self.next[i]];
            self.next[i] = up;
            i = up;
        }
        Some(i)
    }

    /// Gives `peer` to the first prober at or after `from` with room.
    fn take(&mut self, from: usize, peer: usize) -> Option<usize> {
        let i = self.peek(from)?;
        self.lists[i].push(peer);
        if self.lists[i].len() >= self.caps[i] {
            self.next[i] = (i + 1) % self.caps.len();
            self.with_room -= 1;
        }
        Some(i)
    }
}

/// Each prober's targets, as indexes into `peers` (both sorted by position).
///
/// The peers between a prober and the next prober clockwise are its *gap*:
/// it takes them first, up to its cap, so every peer is probed by the prober
/// just before it. A prober whose gap holds fewer than `k` peers goes on
/// clockwise into the next gaps (peers their own probers take too) until it
/// has `k`. Peers past the cap of a long gap go to the nearest prober before
/// it with room. So every peer is probed when the probers' caps add up to
/// the peers, and a node that joins or leaves moves only its neighbours.
/// Near-linear: the caller sorted, then one binary search per prober, at
/// most `k` steps each, and a union-find over the probers for the overflow.
fn ring_assign(
    probers: &[(u64, &Member)],
    peers: &[(u64, &Member)],
    k: usize,
    caps: &[usize],
) -> Vec<Vec<usize>> {
    let (n, m) = (probers.len(), peers.len());
    if n == 0 || m == 0 {
        return vec![Vec::new(); n];
    }
    // Where each prober's gap starts; the last one wraps around.
    let starts: Vec<usize> = probers.iter().map(|p| peers.partition_point(|q| key(q) < key(p))).collect();
    let gap = |i: usize| if i + 1 < n { starts[i + 1] - starts[i] } else { starts[0] + m - starts[i] };
    let mut own: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut overflow: Vec<(usize, usize)> = Vec::new();
    for i in 0..n {
        let peers_in_gap = (0..gap(i)).map(|p| (starts[i] + p) % m);
        own.push(peers_in_gap.clone().take(caps[i]).collect());
        overflow.extend(peers_in_gap.skip(caps[i]).map(|t| (i, t)));
    }
    // `next[i]`: toward the nearest prober at or before i (cyclically) with
    // room; a full prober points at the one before it (path halving).
    let mut next: Vec<usize> =
        (0..n).map(|i| if own[i].len() >= caps[i] { (i + n - 1) % n } else { i }).collect();
    let mut with_room = (0..n).filter(|&i| own[i].len() < caps[i]).count();
    let mut extra: Vec<Vec<usize>> = vec![Vec::new(); n];
    fn find(next: &mut [usize], mut i: usize) -> usize {
        while next[i] != i {
            let up = next[next[i]];
            next[i] = up;
            i = up;
        }
        i
    }
    for (owner, t) in overflow {
        if with_room == 0 {
            break;
        }
        let i = find(&mut next, owner);
        extra[i].push(t);
        if own[i].len() + extra[i].len() >= caps[i] {
            next[i] = (i + n - 1) % n;
            with_room -= 1;
        }
    }
    (0..n)
        .map(|i| {
            let mut targets = std::mem::take(&mut own[i]);
            // Up to k, clockwise past the gap, never around into it again.
            let want = k.min(caps[i]);
            let more = want.saturating_sub(targets.len() + extra[i].len()).min(m - gap(i));
            targets.extend((0..more).map(|p| (starts[i] + gap(i) + p) % m));
            // A gap past a smaller cap than this prober's k may have handed
            // it, as overflow, a peer it reaches anyway.
            for t in std::mem::take(&mut extra[i]) {
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
            targets
        })
        .collect()
}

/// A node's place on the ring: FNV-1a of its name, mixed (splitmix64's
/// finalizer) so similar names spread out. Fixed here, not the standard
/// library's hasher, whose output may change between Rust releases: an
/// upgrade must not reshuffle every node's targets.
pub fn position(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn member(name: &str, role: Role, i: u32, has_host: bool, has_pod: bool) -> Member {
        Member {
            name: name.to_owned(),
            role,
            host: has_host.then(|| Ipv4Addr::from(0x0a00_0000 + i)),
            pod: has_pod.then(|| IpAddr::V4(Ipv4Addr::from(0xac10_0000 + i))),
        }
    }

    /// `on_prem` and `cloud` nodes; `flags[i]` says whether node i has a host
    /// address and a running responder pod.
    fn cluster(on_prem: usize, cloud: usize, flags: &[(bool, bool)]) -> Vec<Member> {
        (0..on_prem + cloud)
            .map(|i| {
                let (role, name) = if i < on_prem {
                    (Role::OnPrem, format!("idc-{i}"))
                } else {
                    (Role::Cloud, format!("ecs-{}", i - on_prem))
                };
                let (host, pod) = flags.get(i).copied().unwrap_or((true, false));
                member(&name, role, i as u32, host, pod)
            })
            .collect()
    }

    fn probed_by_other_site(
        members: &[Member],
        out: &BTreeMap<String, Vec<ProbeTarget>>,
        path: ProbePath,
    ) -> BTreeSet<String> {
        let role: BTreeMap<&str, Role> = members.iter().map(|m| (m.name.as_str(), m.role)).collect();
        let role = &role;
        out.iter()
            .flat_map(|(prober, targets)| {
                targets
                    .iter()
                    .filter(move |t| t.path == path && role.get(t.node.as_str()) != role.get(prober.as_str()))
            })
            .map(|t| t.node.clone())
            .collect()
    }

    /// Every rule the output must keep, whatever the input.
    fn check_bounds(members: &[Member], k: u32, out: &BTreeMap<String, Vec<ProbeTarget>>) {
        let by_name: BTreeMap<&str, &Member> = members.iter().map(|m| (m.name.as_str(), m)).collect();
        for (name, targets) in out {
            let me = by_name[name.as_str()];
            assert!(targets.len() <= MAX_PROBE_TARGETS, "{name}: {} targets", targets.len());
            let unique: BTreeSet<(&str, ProbePath)> =
                targets.iter().map(|t| (t.node.as_str(), t.path)).collect();
            assert_eq!(unique.len(), targets.len(), "{name}: a peer twice: {targets:?}");
            let hosts = targets.iter().filter(|t| t.path == ProbePath::Host).count();
            let pods = targets.iter().filter(|t| t.path == ProbePath::Pod && t.node != *name).count();
            let selves = targets.iter().filter(|t| t.node == *name).count();
            // More than k only to cover a peer no one else probes.
            assert!(pods <= POD_TARGETS, "{name}: {pods} pod peers");
            let _ = k;
            assert_eq!(selves, usize::from(pods > 0), "{name}: its own responder iff it probes pods");
            if pods > 0 {
                assert!(hosts <= HOST_TARGETS_WITH_PODS, "{name}: {hosts} host targets beside pods");
                let own = targets.iter().find(|t| t.node == *name).unwrap();
                assert_eq!(own.path, ProbePath::Pod);
                assert_eq!(own.address, SocketAddr::new(me.pod.unwrap(), 9799).to_string());
            }
            for t in targets.iter().filter(|t| t.node != *name) {
                let peer = by_name[t.node.as_str()];
                assert_ne!(peer.role, me.role, "{name} probes {} on its own site", t.node);
                let ip = match t.path {
                    ProbePath::Host => IpAddr::V4(peer.host.expect("a host target has an address")),
                    ProbePath::Pod => peer.pod.expect("a pod target has a pod"),
                };
                assert_eq!(t.address, SocketAddr::new(ip, 9799).to_string());
            }
        }
    }

    /// Every node of a site with an address is probed by some node of the
    /// other site when that site has the room (host and pod paths alike).
    fn check_coverage(members: &[Member], out: &BTreeMap<String, Vec<ProbeTarget>>) {
        let probed = probed_by_other_site(members, out, ProbePath::Host);
        let pod_probed = probed_by_other_site(members, out, ProbePath::Pod);
        for (site, other) in [(Role::OnPrem, Role::Cloud), (Role::Cloud, Role::OnPrem)] {
            let peers: Vec<&Member> = members.iter().filter(|m| m.role == site && m.host.is_some()).collect();
            let probers: Vec<&Member> = members.iter().filter(|m| m.role == other).collect();
            let other_pods = members.iter().any(|m| m.role == site && m.pod.is_some());
            let room: usize =
                probers
                    .iter()
                    .map(|p| {
                        if p.pod.is_some() && other_pods {
                            HOST_TARGETS_WITH_PODS
                        } else {
                            MAX_PROBE_TARGETS
                        }
                    })
                    .sum();
            if room >= peers.len() {
                for p in &peers {
                    assert!(probed.contains(&p.name), "{} is probed by no node of the other site", p.name);
                }
            }
            let pod_peers: Vec<&Member> =
                members.iter().filter(|m| m.role == site && m.pod.is_some()).collect();
            let pod_probers = members.iter().filter(|m| m.role == other && m.pod.is_some()).count();
            if pod_probers * POD_TARGETS >= pod_peers.len() {
                for p in &pod_peers {
                    assert!(
                        pod_probed.contains(&p.name),
                        "{}'s pod is probed by no pod of the other site",
                        p.name
                    );
                }
            }
        }
    }

    /// How many nodes, besides `except`, have other targets in `b` than in `a`.
    fn changed(
        a: &BTreeMap<String, Vec<ProbeTarget>>,
        b: &BTreeMap<String, Vec<ProbeTarget>>,
        except: &str,
    ) -> usize {
        let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        names.into_iter().filter(|n| n.as_str() != except && a.get(*n) != b.get(*n)).count()
    }

    /// What a node joining or leaving may cost: the nodes of the other site
    /// whose share it takes or gives back (each of the `other` nodes probes
    /// `k` of the `same` nodes: about `k * other / same` of them hold it),
    /// and a few coverage hand-overs.
    fn churn_bound(k: u32, other: usize, same: usize) -> usize {
        let k = k as usize;
        3 * k * (other / same.max(1) + 1) + 2 * MAX_PROBE_TARGETS
    }

    /// What each cloud node whose responder pod turns Ready may cost: its
    /// own targets, the `k` on-prem nodes that now probe its pod, and a
    /// host target handed over (its host targets shrink to make room).
    fn wave_bound(k: u32, pods: usize) -> usize {
        pods * (k as usize + 2) + 2 * MAX_PROBE_TARGETS
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn bounded_covering_deterministic_and_stable(
            on_prem in 0usize..40,
            cloud in 0usize..40,
            k in 1u32..=8,
            flags in proptest::collection::vec((prop::bool::weighted(0.9), prop::bool::weighted(0.4)), 80),
            seed in any::<u64>(),
            join_cloud in any::<bool>(),
            wave in 1usize..20,
        ) {
            let members = cluster(on_prem, cloud, &flags);
            let out = assign(&members, k, 9799);
            check_bounds(&members, k, &out);
            check_coverage(&members, &out);

            // Any order of the same nodes gives the same targets.
            let mut shuffled = members.clone();
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(&assign(&shuffled, k, 9799), &out);

            // One node joins: few others change.
            let (role, name) = if join_cloud { (Role::Cloud, "ecs-new") } else { (Role::OnPrem, "idc-new") };
            let mut joined = members.clone();
            joined.push(member(name, role, 999, true, false));
            let after = assign(&joined, k, 9799);
            check_bounds(&joined, k, &after);
            check_coverage(&joined, &after);
            let (same, other) = if join_cloud { (cloud + 1, on_prem) } else { (on_prem + 1, cloud) };
            let n = changed(&out, &after, name);
            prop_assert!(n <= churn_bound(k, other, same), "{} nodes changed when {} joined", n, name);
            // And leaves again: back to where it was.
            prop_assert_eq!(&assign(&members, k, 9799), &out);

            // A rollout wave: the responder pods of the first `wave` cloud
            // nodes without one turn Ready at once.
            let mut waved = members.clone();
            let mut turned = 0;
            for m in waved.iter_mut().filter(|m| m.role == Role::Cloud && m.pod.is_none()).take(wave) {
                m.pod = Some(IpAddr::V4(Ipv4Addr::new(192, 168, 0, turned as u8)));
                turned += 1;
            }
            let after = assign(&waved, k, 9799);
            check_bounds(&waved, k, &after);
            check_coverage(&waved, &after);
            let n = changed(&out, &after, "");
            prop_assert!(n <= wave_bound(k, turned), "{} nodes changed when {} pods turned Ready", n, turned);
        }
    }

    fn view() -> ClusterView {
        use crate::pure::pod::SlimPod;
        use k8s_openapi::api::apps::v1::DaemonSet;
        use k8s_openapi::api::core::v1::Node;
        use std::sync::Arc;
        use terway_hybrid_api::NodeNetworkReport;
        let node = |name: &str, cloud: bool, gate: bool, ip: &str| -> Arc<Node> {
            let mut labels = serde_json::Map::new();
            if cloud {
                labels.insert("alibabacloud.com/external".into(), "true".into());
            }
            if gate {
                labels.insert(GATE_LABEL.into(), GATE_OPEN.into());
            }
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels},
                "status": {"addresses": [{"type": "Hostname", "address": name},
                    {"type": "InternalIP", "address": "fd00::1"}, {"type": "InternalIP", "address": ip}]}
            }))
            .map(Arc::new)
            .unwrap()
        };
        let report = |name: &str, role: &str, status: bool| -> Arc<NodeNetworkReport> {
            let mut r = serde_json::json!({"apiVersion": "terway-hybrid.io/v1alpha1", "kind": "NodeNetworkReport",
                "metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": format!("uid-{name}")}]},
                "spec": {"nodeName": name}});
            if status {
                r["status"] = serde_json::json!({"scenario": "overlay", "plugin": "flannel-vxlan", "confidence": "high",
                    "role": role, "kernelVersion": "6.1", "evidence": [], "checks": [], "ready": true,
                    "lastDetected": "2026-01-01T00:00:00Z", "agentVersion": "0"});
            }
            serde_json::from_value(r).map(Arc::new).unwrap()
        };
        let pod = |node: &str, ip: &str, ready: bool| -> Arc<SlimPod> {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("responder-{node}"), "namespace": "terway-hybrid",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "terway-hybrid-responder",
                        "uid": "ds", "controller": true}]},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": "Running", "podIP": ip,
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
            }))
            .map(Arc::new)
            .unwrap()
        };
        let responder: DaemonSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "terway-hybrid-responder", "namespace": "terway-hybrid"},
            "spec": {"selector": {"matchLabels": {"app": "responder"}}, "template": {}}
        }))
        .unwrap();
        ClusterView {
            nodes: vec![
                node("idc-0", false, false, "10.0.0.1"),
                node("idc-1", false, false, "10.0.0.2"),
                node("idc-2", false, false, "10.0.0.3"),
                node("ecs-0", true, true, "10.1.0.1"),
                node("ecs-1", true, false, "10.1.0.2"),
            ],
            reports: vec![
                report("idc-0", "on-prem", true),
                report("idc-1", "on-prem", false),
                report("idc-2", "on-prem", true),
                report("ecs-0", "cloud", true),
                report("ecs-1", "cloud", true),
                // A report whose node is gone (the garbage collector's).
                report("gone", "cloud", true),
            ],
            daemon_sets: vec![responder],
            pods: vec![
                pod("idc-0", "172.16.0.1", true),
                pod("idc-2", "172.16.0.3", false),
                pod("ecs-0", "172.17.0.1", true),
                pod("ecs-1", "172.17.0.2", true),
            ],
            ..ClusterView::default()
        }
    }

    /// Who takes part, with which addresses: reported nodes only, the first
    /// IPv4 InternalIP, a responder pod only when Ready and, on a cloud
    /// node, behind an open gate.
    #[test]
    fn members_of_a_view() {
        let got: Vec<(String, Option<Ipv4Addr>, Option<IpAddr>)> =
            members(&view()).into_iter().map(|m| (m.name, m.host, m.pod)).collect();
        let v4 = |s: &str| Some(s.parse::<Ipv4Addr>().unwrap());
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            got,
            [
                ("ecs-0".to_owned(), v4("10.1.0.1"), ip("172.17.0.1")),
                ("ecs-1".to_owned(), v4("10.1.0.2"), None),
                ("idc-0".to_owned(), v4("10.0.0.1"), ip("172.16.0.1")),
                ("idc-2".to_owned(), v4("10.0.0.3"), None),
            ]
        );
    }

    /// A node without targets is written before one whose targets change;
    /// otherwise the reports' order holds.
    #[test]
    fn first_assignments_come_first() {
        use crate::pure::actions::{probe_actions, Action};
        let mut view = view();
        let want = targets(&view, 9799);
        assert_ne!(want["idc-0"], want["ecs-0"]);
        let r = view.reports.iter_mut().find(|r| r.metadata.name.as_deref() == Some("idc-0")).unwrap();
        std::sync::Arc::make_mut(r).spec.probe_targets = want["ecs-0"].clone();
        let nodes: Vec<String> = probe_actions(&view, &want)
            .into_iter()
            .map(|a| match a {
                Action::ProbeTargets { node, .. } => node,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(nodes, ["idc-2", "ecs-0", "ecs-1", "idc-0"]);
    }

    /// A write per report whose targets differ, none on a report without a
    /// status or of a node that is gone, and none once they are written.
    #[test]
    fn writes_only_what_differs() {
        use crate::pure::actions::{probe_actions, Action};
        let mut view = view();
        let want = targets(&view, 9799);
        assert_eq!(want["ecs-0"].iter().filter(|t| t.path == ProbePath::Pod).count(), 2, "{want:?}");
        let first = probe_actions(&view, &want);
        let nodes: Vec<&str> = first
            .iter()
            .map(|a| match a {
                Action::ProbeTargets { node, .. } => node.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(nodes, ["idc-0", "idc-2", "ecs-0", "ecs-1"]);
        for action in first {
            let Action::ProbeTargets { node, targets } = action else { unreachable!() };
            let r =
                view.reports.iter_mut().find(|r| r.metadata.name.as_deref() == Some(node.as_str())).unwrap();
            std::sync::Arc::make_mut(r).spec.probe_targets = targets;
        }
        assert_eq!(probe_actions(&view, &targets(&view, 9799)), []);
        // A node that leaves empties the lists that named it, and only those.
        view.nodes.retain(|n| n.metadata.name.as_deref() != Some("ecs-1"));
        let after = probe_actions(&view, &targets(&view, 9799));
        assert!(!after.is_empty() && after.len() <= 2, "{after:?}");
        for a in &after {
            let Action::ProbeTargets { targets, .. } = a else { unreachable!() };
            assert!(targets.iter().all(|t| t.node != "ecs-1"));
        }
    }

    #[test]
    fn a_site_without_nodes_gives_no_targets() {
        assert!(assign(&cluster(5, 0, &[]), 3, 9799).is_empty());
        assert!(assign(&cluster(0, 5, &[]), 3, 9799).is_empty());
        assert!(assign(&[], 3, 9799).is_empty());
    }

    #[test]
    fn one_node_per_site_probe_each_other_on_both_paths() {
        let members = cluster(1, 1, &[(true, true), (true, true)]);
        let out = assign(&members, 3, 9799);
        let show = |n: &str| {
            out[n].iter().map(|t| format!("{} {} {:?}", t.node, t.address, t.path)).collect::<Vec<_>>()
        };
        assert_eq!(
            show("idc-0"),
            ["ecs-0 10.0.0.1:9799 Host", "idc-0 172.16.0.0:9799 Pod", "ecs-0 172.16.0.1:9799 Pod"]
        );
        assert_eq!(
            show("ecs-0"),
            ["idc-0 10.0.0.0:9799 Host", "ecs-0 172.16.0.1:9799 Pod", "idc-0 172.16.0.0:9799 Pod"]
        );
    }

    #[test]
    fn the_ring_position_never_changes() {
        // An upgrade must not reshuffle every node's targets: fixed values
        // (FNV-1a 64 with splitmix64's finalizer, computed independently).
        assert_eq!(position(""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(position("node-1"), 0x1395_0d4e_f307_e655);
        assert_eq!(position("ecs-0"), 0x6b95_3f04_cf13_d4ec);
    }

    /// 5,000 nodes, 4,000 of them on-prem, in the middle of a rollout: every
    /// node covered, every cloud node probing, and neither a joining node
    /// nor a wave of responder pods moves more than a few others per
    /// joiner (the cost is `controller/benches/probe_plan.rs`'s).
    #[test]
    fn five_thousand_nodes() {
        // Every on-prem node runs its responder pod; the first `ready` cloud nodes too.
        let at_wave = |ready: usize| {
            let flags: Vec<(bool, bool)> = (0..5_000).map(|i| (true, i < 4_000 + ready)).collect();
            cluster(4_000, 1_000, &flags)
        };
        let members = at_wave(100);
        let out = assign(&members, 3, 9799);
        check_bounds(&members, 3, &out);
        check_coverage(&members, &out);
        for m in members.iter().filter(|m| m.role == Role::Cloud) {
            assert!(out.get(&m.name).is_some_and(|t| t.len() >= 3), "{} probes nothing", m.name);
        }
        let mut joined = members.clone();
        joined.push(member("ecs-new", Role::Cloud, 99_999, true, false));
        let n = changed(&out, &assign(&joined, 3, 9799), "ecs-new");
        assert!(n <= churn_bound(3, 4_000, 1_001), "{n} nodes changed");
        let next = at_wave(200);
        let after = assign(&next, 3, 9799);
        check_bounds(&next, 3, &after);
        check_coverage(&next, &after);
        let n = changed(&out, &after, "");
        assert!(n <= wave_bound(3, 100), "a wave of 100 pods changed {n} nodes");
    }
}
