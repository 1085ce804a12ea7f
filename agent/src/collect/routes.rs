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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    family: Family,
    protocol: u8,
    device: Option<String>,
    route_type: RouteType,
    next_hop: NextHop,
    default: bool,
}

/// Folds route messages into a [`RouteSummary`].
pub struct RouteFold<'a> {
    device_names: HashMap<u32, &'a str>,
    groups: HashMap<Key, (u64, Vec<String>)>,
    ipv4: u64,
    ipv6: u64,
}

impl<'a> RouteFold<'a> {
    pub fn new(links: &'a [Link]) -> Self {
        RouteFold {
            device_names: links.iter().map(|l| (l.index, l.name.as_str())).collect(),
            groups: HashMap::new(),
            ipv4: 0,
            ipv6: 0,
        }
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
            device: oif.map(|index| self.device_label(index)),
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
        match self.device_names.get(&index) {
            Some(name) => match FOLDED_DEVICE_PREFIXES.iter().find(|p| name.starts_with(*p)) {
                Some(prefix) => format!("{prefix}*"),
                None => (*name).to_owned(),
            },
            // A link created between the two dumps.
            None => format!("if{index}"),
        }
    }

    pub fn finish(self) -> RouteSummary {
        let mut groups: Vec<RouteGroup> = self
            .groups
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
        RouteSummary {
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            groups,
        }
    }
}

/// Dumps every table of both families and folds it.
pub fn collect(links: &[Link]) -> Result<RouteSummary, NetlinkError> {
    let mut fold = RouteFold::new(links);
    let mut request = RouteMessage::default();
    request.header.address_family = AddressFamily::Unspec;
    request.header.table = RouteHeader::RT_TABLE_UNSPEC;
    dump(
        "route dump",
        RouteNetlinkMessage::GetRoute(request),
        |event| match event {
            DumpEvent::Message(RouteNetlinkMessage::NewRoute(route)) => fold.add(&route),
            DumpEvent::Message(_) => {}
            DumpEvent::Restart => fold.reset(),
        },
    )?;
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
