//! Links and their addresses, from an rtnetlink link dump and an address dump.

use super::netlink::{dump, DumpEvent, NetlinkError};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use std::collections::BTreeMap;
use terway_hybrid_api::snapshot::{Link, Vxlan};

/// Every link of the namespace, by index order, with its addresses.
pub fn collect() -> Result<Vec<Link>, NetlinkError> {
    let mut links: BTreeMap<u32, Link> = BTreeMap::new();
    dump("link dump", RouteNetlinkMessage::GetLink(LinkMessage::default()), |event| match event {
        DumpEvent::Message(RouteNetlinkMessage::NewLink(m)) => {
            let link = link_from(m);
            links.insert(link.index, link);
        }
        DumpEvent::Message(_) => {}
        DumpEvent::Restart => links.clear(),
    })?;

    let mut addresses: Vec<(u32, String)> = Vec::new();
    dump("address dump", RouteNetlinkMessage::GetAddress(AddressMessage::default()), |event| match event {
        DumpEvent::Message(RouteNetlinkMessage::NewAddress(m)) => {
            if let Some(cidr) = address_from(&m) {
                addresses.push((m.header.index, cidr));
            }
        }
        DumpEvent::Message(_) => {}
        DumpEvent::Restart => addresses.clear(),
    })?;
    for (index, cidr) in addresses {
        if let Some(link) = links.get_mut(&index) {
            link.addresses.push(cidr);
        }
    }
    Ok(links.into_values().collect())
}

fn link_from(m: LinkMessage) -> Link {
    let mut link =
        Link { index: m.header.index, up: m.header.flags.contains(LinkFlags::Up), ..Link::default() };
    for attr in m.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
                        LinkInfo::Data(InfoData::Vxlan(attrs)) => link.vxlan = Some(vxlan_from(&attrs)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn vxlan_from(attrs: &[InfoVxlan]) -> Vxlan {
    let mut v = Vxlan::default();
    for a in attrs {
        match a {
            InfoVxlan::Id(id) => v.vni = *id,
            InfoVxlan::Port(port) => v.port = *port,
            InfoVxlan::Local(ip) => v.local = Some(ip.to_string()),
            InfoVxlan::Local6(ip) => v.local = Some(ip.to_string()),
            InfoVxlan::CollectMetadata(on) => v.flow_based = *on,
            _ => {}
        }
    }
    v
}

/// IFA_LOCAL is the interface's own address on point-to-point links, where
/// IFA_ADDRESS is the peer's; elsewhere they are equal.
fn address_from(m: &AddressMessage) -> Option<String> {
    let mut address = None;
    let mut local = None;
    for attr in &m.attributes {
        match attr {
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Local(ip) => local = Some(*ip),
            _ => {}
        }
    }
    local.or(address).map(|ip| format!("{ip}/{}", m.header.prefix_len))
}
