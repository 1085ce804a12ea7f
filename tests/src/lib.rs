//! Test support for terway-hybrid integration tests.
//!
//! Everything here is real: namespaces are created with iproute2 on the
//! kernel, BIRD 2 is the real daemon, and the Kubernetes control plane is
//! the real one, built from its Go modules ([`control_plane`]). Helpers panic with a clear message
//! instead of returning errors, because a test that cannot set up its world
//! must fail loudly, never skip.
#![forbid(unsafe_code)]

pub mod admission;
pub mod agent_node;
pub mod bird;
pub mod cluster;
pub mod control_plane;
pub mod corpus;
mod host_root;
pub mod manifests;
mod netns;
mod system;
mod wait;

pub use control_plane::{example_dir, unique_name, ControlPlane};
pub use host_root::HostRoot;
pub use netns::{veth_pair, ChildGuard, NetNs};
pub use system::{find_program, require_program, require_root};
pub use wait::{wait_for, wait_for_described};
