//! `detect --role cloud` against a stand-in ECS metadata service on
//! loopback: the instance ID passes `EcsMetadata`, and the VPC and vSwitch
//! CIDRs beside it come out as `cloudNetwork` (docs/contracts.md §2, §3),
//! checked, never copied: a body that is not a CIDR is left out.
//!
//! `cargo test -p terway-hybrid-agent --test ecs_metadata` (no root needed).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_terway-hybrid-agent");

/// Answers each GET whose path ends with one of `answers`, 404 otherwise,
/// for as long as the test runs.
fn metadata_service(answers: &'static [(&'static str, &'static str)]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
            let _ = match answers.iter().find(|(p, _)| path.ends_with(p)) {
                Some((_, body)) => {
                    write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                }
                None => conn.write_all(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            };
        }
    });
    format!("http://{addr}/latest/meta-data/instance-id")
}

fn detect(args: &[&str]) -> Value {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(AGENT)
        .args(["detect", "--host-root", root.path().to_str().unwrap(), "--output", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "detect: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ecs_check(detection: &Value) -> Value {
    detection["checks"].as_array().unwrap().iter().find(|c| c["name"] == "EcsMetadata").unwrap().clone()
}

#[test]
fn a_cloud_node_reports_its_vpc_and_vswitch() {
    let url = metadata_service(&[
        ("/instance-id", "i-bp1abcdefg\n"),
        ("/vpc-cidr-block", "192.168.0.0/16\n"),
        ("/vswitch-cidr-block", "192.168.20.0/24"),
    ]);
    let d = detect(&["--role", "cloud", "--ecs-metadata-url", &url]);
    assert_eq!(ecs_check(&d)["status"], "pass", "{d:#}");
    assert_eq!(d["cloudNetwork"], json!({"vpcCidr": "192.168.0.0/16", "vswitchCidrs": ["192.168.20.0/24"]}));
}

#[test]
fn garbage_is_no_cidr_and_on_prem_asks_nothing() {
    let url = metadata_service(&[
        ("/instance-id", "i-bp1abcdefg"),
        ("/vpc-cidr-block", "\u{1b}]0;owned\u{7}10.0.0.0/8"),
        ("/vswitch-cidr-block", "10.1.0.0/24"),
        ("/vswitch-ipv6-cidr-block", "2408:4005:30a:ee00::/64"),
    ]);
    let d = detect(&["--role", "cloud", "--ecs-metadata-url", &url]);
    assert_eq!(d["cloudNetwork"], json!({"vswitchCidrs": ["10.1.0.0/24", "2408:4005:30a:ee00::/64"]}));
    let d = detect(&["--role", "on-prem", "--ecs-metadata-url", &url]);
    assert!(d.get("cloudNetwork").is_none(), "{d:#}");
    assert_eq!(ecs_check(&d)["status"], "skip");
}

#[test]
fn no_metadata_service_no_cloud_network() {
    // A port nothing listens on: refused at once.
    let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{free}/latest/meta-data/instance-id");
    let d = detect(&["--role", "cloud", "--ecs-metadata-url", &url]);
    assert_eq!(ecs_check(&d)["status"], "fail", "{d:#}");
    assert!(d.get("cloudNetwork").is_none(), "{d:#}");
}
