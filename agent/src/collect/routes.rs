//! Routes of every table, IPv4 and IPv6, folded into counters while the dump
//! streams in: a BGP node can carry hundreds of thousands of routes and the
//! agent never holds them.

use super::netlink::{dump, DumpEvent, NetlinkError};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteType as NlRouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::collections::HashMap;
use terway_hybrid_api::snapshot::{Family, Link, NextHop, RouteGroup, RouteSummary, RouteType};

/// Destinations kept per group, for people to read.
const SAMPLES: usize = 3;

/// Prefixes of per-pod (or per-peer) devices; their routes are counted under
/// one pattern, or a node with 200 pods would have 200 groups.
const FOLDED_DEVICE_PREFIXES: [&str; 4] = ["cali", "lxc", "veth", "tun-"];

/// Grouping key while folding. The device is kept as an index: resolving a
/// name per route would allocate on the hot path; names are resolved (and
/// per-pod devices merged) once, in [`RouteFold::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key<D> {
    family: Family,
    protocol: u8,
    device: D,
    route_type: RouteType,
    next_hop: NextHop,
    default: bool,
}

/// Folds route messages into a [`RouteSummary`].
pub struct RouteFold<'a> {
    links: &'a [Link],
    groups: HashMap<Key<Option<u32>>, (u64, Vec<String>)>,
    ipv4: u64,
    ipv6: u64,
}

impl<'a> RouteFold<'a> {
    pub fn new(links: &'a [Link]) -> Self {
        RouteFold { links, groups: HashMap::new(), ipv4: 0, ipv6: 0 }
    }

    pub fn reset(&mut self) {
        self.groups.clear();
        self.ipv4 = 0;
        self.ipv6 = 0;
    }

    pub fn add(&mut self, route: &RouteMessage) {
        let family = match route.header.address_family {
            AddressFamily::Inet => Family::Ipv4,
            AddressFamily::Inet6 => Family::Ipv6,
            _ => return,
        };
        match family {
            Family::Ipv4 => self.ipv4 += 1,
            Family::Ipv6 => self.ipv6 += 1,
        }
        let mut oif = None;
        let mut gateway = false;
        let mut multipath = false;
        let mut destination = None;
        for attr in &route.attributes {
            match attr {
                RouteAttribute::Oif(index) => oif = Some(*index),
                RouteAttribute::Gateway(_) | RouteAttribute::Via(_) => gateway = true,
                RouteAttribute::MultiPath(hops) => {
                    multipath = true;
                    oif = oif.or_else(|| hops.first().map(|h| h.interface_index));
                }
                RouteAttribute::Destination(addr) => destination = Some(addr),
                _ => {}
            }
        }
        let next_hop = if multipath {
            NextHop::Multipath
        } else if gateway && route.header.flags.contains(RouteFlags::Onlink) {
            NextHop::Onlink
        } else if gateway {
            NextHop::Gateway
        } else {
            NextHop::Direct
        };
        let prefix_len = route.header.destination_prefix_length;
        let key = Key {
            family,
            protocol: u8::from(route.header.protocol),
            device: oif,
            route_type: route_type(route.header.kind),
            next_hop,
            default: prefix_len == 0,
        };
        let (count, samples) = self.groups.entry(key).or_default();
        *count += 1;
        if samples.len() < SAMPLES {
            samples.push(destination_text(destination, prefix_len));
        }
    }

    fn device_label(&self, index: u32) -> String {
        match self.links.iter().find(|l| l.index == index) {
            Some(link) => match FOLDED_DEVICE_PREFIXES.iter().find(|p| link.name.starts_with(*p)) {
                Some(prefix) => format!("{prefix}*"),
                None => link.name.clone(),
            },
            // A link created between the two dumps.
            None => format!("if{index}"),
        }
    }

    pub fn finish(self) -> RouteSummary {
        let mut named: HashMap<Key<Option<String>>, (u64, Vec<String>)> = HashMap::new();
        for (key, (count, samples)) in &self.groups {
            let key = Key {
                family: key.family,
                protocol: key.protocol,
                device: key.device.map(|i| self.device_label(i)),
                route_type: key.route_type,
                next_hop: key.next_hop,
                default: key.default,
            };
            let (total, kept) = named.entry(key).or_default();
            *total += count;
            kept.extend(samples.iter().take(SAMPLES - kept.len().min(SAMPLES)).cloned());
        }
        let mut groups: Vec<RouteGroup> = named
            .into_iter()
            .map(|(k, (count, samples))| RouteGroup {
                family: k.family,
                protocol: k.protocol,
                device: k.device,
                route_type: k.route_type,
                next_hop: k.next_hop,
                default: k.default,
                count,
                samples,
            })
            .collect();
        // Largest groups first, then a stable order for equal counts.
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (a.family, a.protocol, &a.device).cmp(&(b.family, b.protocol, &b.device)))
                .then_with(|| {
                    (a.route_type, a.next_hop, a.default).cmp(&(b.route_type, b.next_hop, b.default))
                })
        });
        RouteSummary { ipv4: self.ipv4, ipv6: self.ipv6, groups }
    }
}

/// Dumps every table of both families and folds it.
pub fn collect(links: &[Link]) -> Result<RouteSummary, NetlinkError> {
    let mut fold = RouteFold::new(links);
    let mut request = RouteMessage::default();
    request.header.address_family = AddressFamily::Unspec;
    request.header.table = RouteHeader::RT_TABLE_UNSPEC;
    dump("route dump", RouteNetlinkMessage::GetRoute(request), |event| match event {
        DumpEvent::Message(RouteNetlinkMessage::NewRoute(route)) => fold.add(&route),
        DumpEvent::Message(_) => {}
        DumpEvent::Restart => fold.reset(),
    })?;
    Ok(fold.finish())
}

fn route_type(kind: NlRouteType) -> RouteType {
    match kind {
        NlRouteType::Unicast => RouteType::Unicast,
        NlRouteType::Local => RouteType::Local,
        NlRouteType::Broadcast => RouteType::Broadcast,
        NlRouteType::Anycast => RouteType::Anycast,
        NlRouteType::Multicast => RouteType::Multicast,
        NlRouteType::BlackHole => RouteType::Blackhole,
        NlRouteType::Unreachable => RouteType::Unreachable,
        NlRouteType::Prohibit => RouteType::Prohibit,
        _ => RouteType::Other,
    }
}

fn destination_text(destination: Option<&RouteAddress>, prefix_len: u8) -> String {
    match destination {
        Some(RouteAddress::Inet(ip)) => format!("{ip}/{prefix_len}"),
        Some(RouteAddress::Inet6(ip)) => format!("{ip}/{prefix_len}"),
        Some(other) => format!("{other:?}/{prefix_len}"),
        None => "default".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::{RouteProtocol, RouteScope};
    use std::net::Ipv4Addr;

    fn link(index: u32, name: &str) -> Link {
        Link { index, name: name.to_owned(), ..Link::default() }
    }

    fn route(dst: [u8; 4], len: u8, proto: u8, oif: u32, gateway: bool, onlink: bool) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = len;
        m.header.protocol = RouteProtocol::from(proto);
        m.header.scope = RouteScope::Universe;
        m.header.kind = NlRouteType::Unicast;
        if onlink {
            m.header.flags = RouteFlags::Onlink;
        }
        m.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::from(dst))));
        if gateway {
            m.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(10, 244, 1, 0))));
        }
        m.attributes.push(RouteAttribute::Oif(oif));
        m
    }

    #[test]
    fn per_pod_devices_fold_into_one_group_with_capped_samples() {
        let links = [link(2, "eth0"), link(10, "cali1"), link(11, "cali2"), link(4, "flannel.1")];
        let mut fold = RouteFold::new(&links);
        for i in 0..5u8 {
            fold.add(&route([10, 65, 1, i], 32, 4, 10 + u32::from(i % 2), false, false));
        }
        fold.add(&route([10, 244, 1, 0], 24, 3, 4, true, true));
        fold.add(&route([10, 244, 2, 0], 24, 3, 4, true, true));
        fold.add(&route([0, 0, 0, 0], 0, 3, 2, true, false));
        fold.add(&route([10, 9, 9, 0], 24, 3, 99, false, false));
        let summary = fold.finish();
        assert_eq!(summary.ipv4, 9);
        let cali = summary.groups.iter().find(|g| g.device.as_deref() == Some("cali*")).unwrap();
        assert_eq!((cali.count, cali.samples.len(), cali.protocol), (5, SAMPLES, 4));
        let flannel = summary.groups.iter().find(|g| g.device.as_deref() == Some("flannel.1")).unwrap();
        assert_eq!((flannel.count, flannel.next_hop), (2, NextHop::Onlink));
        assert_eq!(summary.carried_by("flannel.1"), 2);
        let default = summary.groups.iter().find(|g| g.default).unwrap();
        assert_eq!((default.next_hop, default.samples[0].as_str()), (NextHop::Gateway, "0.0.0.0/0"));
        assert!(summary.groups.iter().any(|g| g.device.as_deref() == Some("if99")));
        assert_eq!(summary.groups[0].device.as_deref(), Some("cali*"), "largest group first");
    }

    #[test]
    fn restart_forgets_the_interrupted_dump() {
        let links = [link(2, "eth0")];
        let mut fold = RouteFold::new(&links);
        fold.add(&route([10, 0, 0, 0], 8, 4, 2, false, false));
        fold.reset();
        fold.add(&route([10, 0, 0, 0], 8, 4, 2, false, false));
        let summary = fold.finish();
        assert_eq!((summary.ipv4, summary.groups[0].count), (1, 1));
    }
}
