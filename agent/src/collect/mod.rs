//! Collection: the I/O edge that turns a node's kernel and files into a
//! [`NodeSnapshot`]. Only netlink failures are errors; everything read from
//! files or sockets that turns out wrong is recorded in the snapshot.

mod bird;
mod files;
pub(crate) mod links;
pub(crate) mod netlink;
mod routes;
mod sockets;

pub use netlink::NetlinkError;
pub use routes::RouteFold;

use std::path::{Path, PathBuf};
use terway_hybrid_api::NodeSnapshot;

/// Where to look.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The node's root filesystem (`/`, or `/host` in the DaemonSet).
    pub host_root: PathBuf,
    /// `/proc/net` of the namespace being inspected.
    pub proc_net: PathBuf,
}

impl Sources {
    pub fn new(host_root: impl Into<PathBuf>) -> Self {
        Sources { host_root: host_root.into(), proc_net: PathBuf::from("/proc/net") }
    }
}

/// Collects everything classification needs from the network namespace the
/// process runs in and the files under the host root.
pub fn collect(sources: &Sources) -> Result<NodeSnapshot, NetlinkError> {
    let links = links::collect()?;
    let routes = routes::collect(&links)?;
    Ok(NodeSnapshot {
        kernel_version: kernel_version(),
        links,
        routes,
        cni: files::cni_dir(&sources.host_root),
        flannel_subnet: files::flannel_subnet(&sources.host_root),
        bird: bird_state(&sources.host_root),
        calico_nodename: files::calico_nodename(&sources.host_root),
        bgp_sockets: sockets::collect(&sources.proc_net),
        ip_forward: files::ip_forward(&sources.host_root),
    })
}

fn bird_state(host_root: &Path) -> terway_hybrid_api::snapshot::BirdState {
    match files::run_path(host_root, "calico/bird.ctl") {
        Some(path) => bird::query(&path),
        None => Default::default(),
    }
}

fn kernel_version() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}
