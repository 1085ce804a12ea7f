//! Test support for terway-hybrid integration tests.
//!
//! Everything here works on the real kernel: namespaces are created with
//! iproute2, BIRD 2 is the real daemon. Helpers panic with a clear message
//! instead of returning errors, because a test that cannot set up its world
//! must fail loudly, never skip.
#![forbid(unsafe_code)]

pub mod bird;
mod host_root;
mod netns;
mod system;
mod wait;

pub use host_root::HostRoot;
pub use netns::{veth_pair, ChildGuard, NetNs};
pub use system::{find_program, require_program, require_root};
pub use wait::{wait_for, wait_for_described};
