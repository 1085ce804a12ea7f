//! terway-hybrid-controller and the `terway-hybrid` CLI, in folders by
//! program:
//!
//! - [`pure`]: the pure core both programs share: the ClusterView, the
//!   checks, the plan. No I/O.
//! - [`daemon`]: `terway-hybrid-controller`, watching, reconciling and
//!   holding the admission gate.
//! - [`cli`]: `terway-hybrid`, with [`cli::dump`] (reading `--from-dump`
//!   files) and [`cli::limits`] (bounded reads of local files).
//! - [`fetch`] (reading the live cluster into a ClusterView) and
//!   [`api_error`]: the API edge both programs use.
#![forbid(unsafe_code)]

pub mod api_error;
pub mod cli;
pub mod daemon;
pub mod fetch;
pub mod pure;
