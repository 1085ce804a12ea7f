//! Collection: the I/O edge that turns a node's kernel and files into a
//! [`NodeSnapshot`]. Only netlink failures are errors; everything read from
//! files or sockets that turns out wrong is recorded in the snapshot.

mod bird;
mod files;
mod links;
pub(crate) mod netlink;
mod routes;
mod sockets;

pub use netlink::NetlinkError;
pub use routes::RouteFold;

// What the agent reads under `--host-root`: the DaemonSet must mount each
// (its test checks that it does).
pub const CNI_DIR: &str = "etc/cni/net.d";
pub const CALICO_NODENAME: &str = "var/lib/calico/nodename";
pub const IP_FORWARD: &str = "proc/sys/net/ipv4/ip_forward";
/// Read under `run/` or, failing that, `var/run/`: hosts have either.
pub const RUN_FLANNEL_SUBNET_ENV: &str = "flannel/subnet.env";
/// Read under `run/` or `var/run/`, as [`RUN_FLANNEL_SUBNET_ENV`].
pub const RUN_BIRD_SOCKET: &str = "calico/bird.ctl";

/// The parsers of outside input, for the fuzz targets in `fuzz/` (not an API:
/// re-exported as they are, so the targets call exactly what `collect` calls).
#[doc(hidden)]
pub mod fuzzing {
    pub use super::bird::{canonical_prefix, parse_protocols, query as bird_query};
    pub use super::files::{parse_cni_config, parse_subnet_env};
    pub use super::sockets::collect as proc_net_collect;
}

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
    collect_tracked(sources, &Progress::default())
}

/// [`collect`], saying in `progress` which step it is in, so a collection
/// that overruns its deadline can be named from another thread.
pub fn collect_tracked(sources: &Sources, progress: &Progress) -> Result<NodeSnapshot, NetlinkError> {
    progress.set("reading links (netlink)");
    let links = links::collect()?;
    progress.set("reading routes (netlink)");
    let routes = routes::collect(&links)?;
    progress.set("reading the CNI config directory");
    let cni = files::cni_dir(&sources.host_root);
    progress.set("reading flannel's subnet.env");
    let flannel_subnet = files::flannel_subnet(&sources.host_root);
    progress.set("asking BIRD (bird.ctl)");
    let bird = bird_state(&sources.host_root);
    progress.set("reading Calico's nodename");
    let calico_nodename = files::calico_nodename(&sources.host_root);
    progress.set("reading /proc/net/tcp");
    let bgp_sockets = sockets::collect(&sources.proc_net);
    progress.set("reading ip_forward");
    let ip_forward = files::ip_forward(&sources.host_root);
    progress.set("classifying");
    Ok(NodeSnapshot {
        kernel_version: kernel_version(),
        links,
        routes,
        cni,
        flannel_subnet,
        bird,
        calico_nodename,
        bgp_sockets,
        ip_forward,
    })
}

/// Which step a collection is in; cheap to clone, shared across threads.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<&'static str>>);

impl Progress {
    pub fn set(&self, step: &'static str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = step;
    }

    pub fn step(&self) -> &'static str {
        let step = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        if step.is_empty() {
            "starting"
        } else {
            step
        }
    }
}

/// A detection that failed or overran its deadline.
#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("detection did not finish within {}s (stuck {step})", .deadline.as_secs_f32())]
    Deadline { deadline: Duration, step: &'static str },
}

/// Runs `work` on a thread of its own and waits for it at most `deadline`.
/// A thread stuck in a system call cannot be cancelled: past the deadline it
/// is left behind (and the caller decides what to do: `detect` exits).
pub fn within_deadline<T: Send + 'static>(
    deadline: Duration,
    work: impl FnOnce(&Progress) -> Result<T, DetectionError> + Send + 'static,
) -> Result<T, DetectionError> {
    let progress = Progress::default();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let theirs = progress.clone();
    std::thread::Builder::new()
        .name("collect".to_owned())
        .spawn(move || {
            let _ = tx.send(work(&theirs));
        })
        .map_err(|_| DetectionError::Deadline { deadline, step: "starting (no thread)" })?;
    rx.recv_timeout(deadline).unwrap_or(Err(DetectionError::Deadline { deadline, step: progress.step() }))
}

fn bird_state(host_root: &Path) -> terway_hybrid_api::snapshot::BirdState {
    match files::run_path(host_root, RUN_BIRD_SOCKET) {
        Some(path) => bird::query(&path),
        None => Default::default(),
    }
}

fn kernel_version() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A thread blocked for good (here on a channel nobody sends on) does
    /// not hold the caller past the deadline, and the step it is in is named.
    #[test]
    fn a_stuck_collection_ends_at_the_deadline() {
        let (_keep, never) = std::sync::mpsc::channel::<()>();
        let start = Instant::now();
        let r: Result<(), _> = within_deadline(Duration::from_millis(300), move |p| {
            p.set("asking BIRD (bird.ctl)");
            let _ = never.recv();
            Ok(())
        });
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        let e = r.unwrap_err().to_string();
        assert_eq!(e, "detection did not finish within 0.3s (stuck asking BIRD (bird.ctl))");
    }

    #[test]
    fn a_quick_collection_returns_its_result() {
        assert_eq!(within_deadline(Duration::from_secs(5), |_| Ok(7)).unwrap(), 7);
    }
}
