//! Exercises the testkit against the real kernel and a real BIRD 2.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::Duration;

use terway_hybrid_testkit::{
    bird, require_program, require_root, veth_pair, wait_for, wait_for_described, HostRoot, NetNs,
};

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("run ip netns list");
    assert!(out.status.success(), "ip netns list failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn listed(name: &str) -> bool {
    // `ip netns list` prints "name" or "name (id: N)".
    netns_list().lines().any(|line| line.split_whitespace().next() == Some(name))
}

fn ping(from: &NetNs, ip: &str) -> bool {
    from.exec("ping", &["-c1", "-W1", ip]).status.success()
}

#[test]
fn veth_pair_connects_namespaces_and_drop_deletes_them() {
    require_root();
    require_program("ping", "iputils-ping");
    let (a_name, b_name);
    {
        let a = NetNs::new("a");
        let b = NetNs::new("b");
        a_name = a.name().to_owned();
        b_name = b.name().to_owned();
        assert!(listed(&a_name) && listed(&b_name), "{}", netns_list());

        veth_pair(&a, "veth-a", "192.168.77.1/30", &b, "veth-b", "192.168.77.2/30");
        wait_for("ping a -> b", Duration::from_secs(5), || ping(&a, "192.168.77.2").then_some(()));
        assert!(ping(&b, "192.168.77.1"), "ping b -> a failed");

        // A process left running must not keep the namespace alive.
        let sleeper = a.spawn("sleep", &["1000"]);
        assert!(sleeper.id() > 0);
    }
    assert!(!listed(&a_name), "{a_name} survived drop: {}", netns_list());
    assert!(!listed(&b_name), "{b_name} survived drop: {}", netns_list());
}

#[test]
fn namespace_is_deleted_when_the_test_body_panics() {
    require_root();
    let mut name = String::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let ns = NetNs::new("panic");
        name = ns.name().to_owned();
        let _child = ns.spawn("sleep", &["1000"]);
        panic!("deliberate panic inside a test body");
    }));
    assert!(result.is_err(), "the closure should have panicked");
    assert!(!name.is_empty());
    assert!(!listed(&name), "{name} survived a panic: {}", netns_list());
}

#[test]
fn namespace_drop_kills_processes_whose_guard_outlives_it() {
    require_root();
    let ns = NetNs::new("orphan");
    let mut guard = ns.spawn("sleep", &["1000"]);
    drop(ns);
    let status = wait_for("the sleeper to die", Duration::from_secs(30), || {
        guard.child_mut().try_wait().expect("try_wait")
    });
    assert!(!status.success(), "sleep should have been killed: {status}");
}

#[test]
fn ip_batch_loads_many_routes_and_reports_failures() {
    require_root();
    let ns = NetNs::new("batch");
    ns.ip("link add br0 type bridge");
    ns.ip("addr add 172.31.0.1/24 dev br0");
    ns.ip("link set br0 up");
    let lines: String =
        (0..2000).map(|i| format!("route add 10.{}.{}.0/24 via 172.31.0.2\n", i / 256, i % 256)).collect();
    ns.ip_batch(&lines);
    let routes = ns.ip_output(&["-4", "route", "show", "via", "172.31.0.2"]);
    assert_eq!(routes.lines().count(), 2000);

    let failure = catch_unwind(AssertUnwindSafe(|| ns.ip_batch("route add bogus-prefix dev br0\n")))
        .expect_err("a bad batch line must panic");
    let message = failure.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("-batch"), "unexpected message: {message}");
}

#[test]
fn host_root_writes_files_under_the_root() {
    let root = HostRoot::new();
    root.write("etc/cni/net.d/10-flannel.conflist", "{}");
    let dir = root.mkdir("var/run/calico");
    assert!(dir.is_dir() && dir.starts_with(root.path()));
    let written =
        std::fs::read_to_string(root.path().join("etc/cni/net.d/10-flannel.conflist")).expect("read back");
    assert_eq!(written, "{}");
    assert!(catch_unwind(|| HostRoot::new().write("/etc/escape", "x")).is_err());
    assert!(catch_unwind(|| HostRoot::new().write("../escape", "x")).is_err());
}

#[test]
fn wait_for_reports_what_it_waited_for() {
    let mut calls = 0;
    let value = wait_for("third call", Duration::from_secs(5), || {
        calls += 1;
        (calls == 3).then_some(calls)
    });
    assert_eq!(value, 3);

    let failure = catch_unwind(|| {
        wait_for_described("never", Duration::from_millis(250), || None::<()>, || "state: stuck")
    })
    .expect_err("must time out");
    let message = failure.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("never") && message.contains("state: stuck"), "{message}");
}

#[test]
fn bird_peers_install_each_others_blocks_as_proto_bird() {
    require_root();
    let node1 = NetNs::new("bird1");
    let node2 = NetNs::new("bird2");
    veth_pair(&node1, "eth0", "192.168.88.1/24", &node2, "eth0", "192.168.88.2/24");
    let root1 = HostRoot::new();
    let root2 = HostRoot::new();

    let conf1 = bird::calico_like_config("192.168.88.1", 64512, "192.168.88.2", &["10.244.1.0/26"]);
    let conf2 =
        bird::calico_like_config("192.168.88.2", 64512, "192.168.88.1", &["10.244.2.0/26", "10.244.2.64/26"]);
    let bird1 = bird::start(&node1, &conf1, &root1.path().join("var/run/calico/bird.ctl"));
    let bird2 = bird::start(&node2, &conf2, &root2.path().join("var/run/calico/bird.ctl"));
    assert!(root1.path().join("var/run/calico/bird.ctl").exists());

    bird1.wait_established(Duration::from_secs(30));
    bird2.wait_established(Duration::from_secs(30));
    assert!(bird1.show_protocols().contains("Established"));

    let expect_routes = |ns: &NetNs, bird: &bird::Bird, prefixes: &[&str], via: &str| {
        wait_for_described(
            &format!("peer blocks {prefixes:?} as proto bird in {}", ns.name()),
            Duration::from_secs(15),
            || {
                let routes = ns.ip_output(&["-4", "route", "show", "proto", "bird"]);
                prefixes
                    .iter()
                    .all(|p| routes.lines().any(|l| l.starts_with(&format!("{p} via {via} "))))
                    .then_some(routes)
            },
            || format!("{}\n{}", ns.ip_output(&["-4", "route", "show"]), bird.birdc(&["show", "route"])),
        )
    };
    expect_routes(&node1, &bird1, &["10.244.2.0/26", "10.244.2.64/26"], "192.168.88.2");
    expect_routes(&node2, &bird2, &["10.244.1.0/26"], "192.168.88.1");

    // Like a real Calico node, each announces its own blocks as blackholes.
    let own = node1.ip_output(&["-4", "route", "show", "proto", "bird", "type", "blackhole"]);
    assert!(own.contains("10.244.1.0/26"), "{own}");

    let (pid1, pid2) = (bird1.pid(), bird2.pid());
    let socket1 = bird1.socket().to_path_buf();
    drop((bird1, bird2));
    assert!(!socket1.exists(), "socket should be removed on drop");
    for pid in [pid1, pid2] {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "bird {pid} still running");
    }
}

#[test]
fn bird_start_reports_config_errors() {
    require_root();
    let ns = NetNs::new("birdbad");
    let root = HostRoot::new();
    let failure = catch_unwind(AssertUnwindSafe(|| {
        bird::start(&ns, "protocol nonsense {}\n", &root.path().join("bird.ctl"))
    }))
    .expect_err("a bad config must panic");
    let message = failure.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("BIRD rejects the config"), "{message}");
}
