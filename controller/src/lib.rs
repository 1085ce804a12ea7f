//! terway-hybrid-controller: aggregates NodeNetworkReports into the cluster
//! preflight and gates the Terway rollout. Built in the controller issue; the
//! crate exists now so the workspace has its final shape.
#![forbid(unsafe_code)]
