//! The MTU a node's pods use, read from the CNI's devices in the snapshot
//! (docs/contracts.md §2, `podMtu`): the overlay device when the CNI has
//! one, else the pods' host-side veths. Pure, so every CNI's rule is tested
//! on snapshots.

use std::collections::BTreeMap;
use terway_hybrid_api::snapshot::Link;
use terway_hybrid_api::{NodeSnapshot, Plugin};

/// Cilium's `TunnelOverhead` (outer IPv4, UDP, VXLAN/Geneve and inner
/// Ethernet headers): in tunnel mode Cilium gives the pods' veths the device
/// MTU and puts this much less on the pods' routes, where the node cannot
/// see it.
const CILIUM_TUNNEL_OVERHEAD: u32 = 50;

/// The pods' MTU for the detected `plugin`, or None when no device shows it
/// (host network, an unknown CNI, Terway in IPvlan mode, no pod yet).
pub fn pod_mtu(s: &NodeSnapshot, plugin: Plugin) -> Option<u32> {
    match plugin {
        // Canal runs flannel's VXLAN underneath.
        Plugin::FlannelVxlan | Plugin::Canal => first_up(s, |n| n.starts_with("flannel."))
            .or_else(|| first_up(s, |n| n.starts_with("flannel-v6."))),
        // host-gw: no overlay; the pods hang off cni0 through veth*.
        Plugin::FlannelHostGw => most_common(s, "veth").or_else(|| first_up(s, |n| n == "cni0")),
        Plugin::CalicoVxlan => {
            first_up(s, |n| n == "vxlan.calico").or_else(|| first_up(s, |n| n == "vxlan-v6.calico"))
        }
        Plugin::CalicoIpip => first_up(s, |n| n == "tunl0"),
        Plugin::CalicoBgp => most_common(s, "cali"),
        Plugin::CiliumVxlan | Plugin::CiliumGeneve => {
            cilium_device_mtu(s).and_then(|m| m.checked_sub(CILIUM_TUNNEL_OVERHEAD)).filter(|m| *m > 0)
        }
        Plugin::CiliumNative => cilium_device_mtu(s),
        // kube-router sizes kube-bridge for its pods (less the tunnel
        // overhead when it overlays).
        Plugin::KubeRouter => first_up(s, |n| n == "kube-bridge").or_else(|| most_common(s, "veth")),
        // Terway's veth datapath names the host side cali*; in IPvlan mode
        // no host-side device exists and the MTU stays unseen.
        Plugin::Terway => most_common(s, "cali"),
        Plugin::None | Plugin::Unknown => None,
    }
}

/// The device MTU Cilium gives its endpoints: the lxc* veths, else cilium_host.
fn cilium_device_mtu(s: &NodeSnapshot) -> Option<u32> {
    most_common(s, "lxc").or_else(|| first_up(s, |n| n == "cilium_host"))
}

fn usable(l: &Link) -> bool {
    // A snapshot rebuilt from `ip route` alone has no MTU (0).
    l.up && l.mtu > 0
}

fn first_up(s: &NodeSnapshot, name: impl Fn(&str) -> bool) -> Option<u32> {
    s.links.iter().find(|l| usable(l) && name(&l.name)).map(|l| l.mtu)
}

/// The MTU most of the up links named `prefix*` have; a tie goes to the
/// smaller MTU, the one that fits every pod of the tie.
fn most_common(s: &NodeSnapshot, prefix: &str) -> Option<u32> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for l in s.links.iter().filter(|l| usable(l) && l.name.starts_with(prefix)) {
        *counts.entry(l.mtu).or_default() += 1;
    }
    // BTreeMap iterates smallest MTU first; max_by_key keeps the last
    // maximum, so compare on (count, reversed MTU) to keep the smallest.
    counts.into_iter().max_by_key(|&(mtu, n)| (n, std::cmp::Reverse(mtu))).map(|(mtu, _)| mtu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, up: bool, mtu: u32) -> Link {
        Link { name: name.into(), up, mtu, ..Link::default() }
    }

    /// (name, up, MTU) of each link.
    type Links<'a> = &'a [(&'a str, bool, u32)];

    fn node(links: Links) -> NodeSnapshot {
        NodeSnapshot {
            links: links.iter().map(|&(n, up, mtu)| link(n, up, mtu)).collect(),
            ..NodeSnapshot::default()
        }
    }

    #[test]
    fn each_cni_reads_its_own_device() {
        let cases: &[(Plugin, Links, Option<u32>)] = &[
            (
                Plugin::FlannelVxlan,
                &[("eth0", true, 1500), ("flannel.1", true, 1450), ("cni0", true, 1450)],
                Some(1450),
            ),
            (Plugin::Canal, &[("flannel.1", true, 1450), ("cali0123456789a", true, 1450)], Some(1450)),
            (Plugin::FlannelVxlan, &[("flannel-v6.1", true, 1430)], Some(1430)),
            (Plugin::FlannelVxlan, &[("flannel.1", false, 1450)], None),
            (Plugin::FlannelHostGw, &[("cni0", true, 1500), ("veth1", true, 1500)], Some(1500)),
            (Plugin::FlannelHostGw, &[("cni0", true, 9000)], Some(9000)),
            (Plugin::CalicoVxlan, &[("vxlan.calico", true, 1450), ("cali1", true, 1450)], Some(1450)),
            (Plugin::CalicoVxlan, &[("vxlan-v6.calico", true, 1430)], Some(1430)),
            (Plugin::CalicoIpip, &[("tunl0", true, 1480), ("eth0", true, 1500)], Some(1480)),
            (
                Plugin::CalicoBgp,
                &[("tunl0", true, 1480), ("cali1", true, 1500), ("cali2", true, 1500)],
                Some(1500),
            ),
            (Plugin::CalicoBgp, &[("eth0", true, 1500)], None),
            (
                Plugin::CiliumVxlan,
                &[("cilium_host", true, 1500), ("cilium_vxlan", true, 1500), ("lxc1", true, 1500)],
                Some(1450),
            ),
            (Plugin::CiliumGeneve, &[("cilium_host", true, 9001)], Some(8951)),
            (
                Plugin::CiliumNative,
                &[("cilium_host", true, 1500), ("lxc_health", true, 9000), ("lxc1", true, 9000)],
                Some(9000),
            ),
            (Plugin::KubeRouter, &[("kube-bridge", true, 1480), ("veth1", true, 1480)], Some(1480)),
            (Plugin::KubeRouter, &[("veth1", true, 1500)], Some(1500)),
            (Plugin::Terway, &[("eth0", true, 1500), ("cali1", true, 1500)], Some(1500)),
            (Plugin::Terway, &[("eth0", true, 1500), ("ipvl_8", true, 1500)], None),
            (Plugin::None, &[("eth0", true, 1500), ("cali1", true, 1500)], None),
            (Plugin::Unknown, &[("flannel.1", true, 1450)], None),
        ];
        for (plugin, links, want) in cases {
            assert_eq!(pod_mtu(&node(links), *plugin), *want, "{plugin} on {links:?}");
        }
    }

    #[test]
    fn veths_vote_down_ones_and_unknown_mtus_abstain() {
        let s = node(&[
            ("cali1", true, 1440),
            ("cali2", true, 1500),
            ("cali3", true, 1500),
            ("cali4", false, 1440),
            ("cali5", false, 1440),
            ("cali6", true, 0),
        ]);
        assert_eq!(pod_mtu(&s, Plugin::CalicoBgp), Some(1500));
        let tie = node(&[("cali1", true, 1500), ("cali2", true, 1440)]);
        assert_eq!(pod_mtu(&tie, Plugin::CalicoBgp), Some(1440), "a tie goes to the smaller MTU");
    }

    /// Property: over generated veth sets, the answer is an MTU some veth
    /// has, held by at least as many veths as any other MTU, and the
    /// smallest such.
    #[test]
    fn most_common_is_the_mode_over_generated_sets() {
        let mtus = [1280u32, 1400, 1450, 1500, 9000];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 12) as usize;
            let links: Vec<(String, bool, u32)> = (0..n)
                .map(|i| {
                    (
                        format!("cali{i}"),
                        (seed >> (i + 8)) & 3 != 0,
                        mtus[((seed >> (i * 3 + 20)) % 5) as usize],
                    )
                })
                .collect();
            let s = NodeSnapshot {
                links: links.iter().map(|(n, up, m)| link(n, *up, *m)).collect(),
                ..NodeSnapshot::default()
            };
            let got = pod_mtu(&s, Plugin::CalicoBgp);
            let count = |m: u32| links.iter().filter(|(_, up, x)| *up && *x == m).count();
            match got {
                None => assert!(links.iter().all(|(_, up, _)| !up), "{links:?}"),
                Some(m) => {
                    let best = mtus.iter().map(|&x| count(x)).max().unwrap();
                    assert_eq!(count(m), best, "{links:?}");
                    assert!(mtus.iter().all(|&x| x >= m || count(x) < best), "{links:?}");
                }
            }
        }
    }
}
