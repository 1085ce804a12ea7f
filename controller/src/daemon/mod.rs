//! `terway-hybrid-controller`, the in-cluster process: [`run`] starts it;
//! [`watch`] keeps the ClusterView current; [`reconcile`] plans and applies
//! through [`apply`] (server-side apply, one writer per label); [`webhook`]
//! and [`certs`] hold the Terway gate at admission; [`http`] and [`metrics`]
//! serve probes and Prometheus.

pub mod apply;
pub mod args;
pub mod certs;
pub mod http;
pub mod metrics;
pub mod reconcile;
pub mod run;
pub mod watch;
pub mod webhook;
