#!/usr/bin/env python3
"""Writes a cluster dump for `terway-hybrid preflight --from-dump`.

The dump looks like `kubectl get -o json` output (one `kind: List` per file)
plus one multi-document YAML file for the cluster's configuration objects:
Nodes, NodeNetworkReports (as the agents write them), the CNI, Terway and
agent DaemonSets and their Pods, ConfigMap kube-system/eni-config, Secret
kube-system/alibaba-addon-secret (values replaced by `<redacted:N>`, as
`terway-hybrid dump` writes them), Service default/kubernetes and the
TerwayRollout.

    python3 bench/gen-dump.py --scenario bgp --on-prem 3 --cloud 2 --out examples/bgp-pass
    python3 bench/gen-dump.py --scenario bgp --on-prem 7000 --cloud 3000 --out /tmp/dump-10k

Scenarios: overlay (flannel VXLAN), bgp (Calico BGP), host-network.
--fail makes the variant that fails preflight, in a way typical of the
scenario (see FAILURES below).

--cross-site pass|fail (bgp only) adds what the cross-site checks read: BGP
sessions (a full mesh, and onprem-1 peering with the VBR at 10.100.0.1),
each node's pod MTU, the cloud nodes' VPC, probe targets and their results,
and `spec.crossSite.vbrPeers`:

    python3 bench/gen-dump.py --scenario bgp --cross-site pass --out examples/cross-site-pass
    python3 bench/gen-dump.py --scenario bgp --cross-site fail --out examples/cross-site-fail

fail: the VBR's BGP session is down (Active), traffic falls back to a VPN
whose path MTU is 1400 while the pods use 1450 and 1500, and cloud-2 cannot
reach onprem-3 at all.

--address-plan pass|fail adds what CIDROverlap compares: the cloud reports'
status.cloudNetwork (VPC 172.16.0.0/12, vSwitch 172.16.0.0/16), the on-prem
nodes' podCIDRs, Calico's IPPool, the ServiceCIDR and the TerwayRollout's
spec.crossSite.onPremNetworks; `fail` adds the overlaps ADDRESS_PLAN_FAILURE
names:

    python3 bench/gen-dump.py --scenario bgp --address-plan fail --out examples/cidr-fail
"""

import argparse
import json
import os
import random

FAILURES = {
    "overlay": "the flannel pod on one cloud node cannot pull its image",
    "bgp": "calico-node has no affinity keeping it off cloud nodes, and the RAM Secret is missing",
    "host-network": "eni-config names a security group that is not an sg- ID, and one cloud node runs kernel 4.18",
}
ADDRESS_PLAN_FAILURE = ("a Calico IPPool lies inside the VPC, and a leftover flannel network "
                        "overlaps Calico's pool")
VPC, VSWITCH = "172.16.0.0/12", "172.16.0.0/16"
PLUGIN = {"overlay": "flannel-vxlan", "bgp": "calico-bgp", "host-network": "none"}
TS = "2026-11-20T08:00:00Z"


def meta(name, namespace=None, **extra):
    m = {"name": name, "uid": f"uid-{name}", "creationTimestamp": TS}
    if namespace:
        m["namespace"] = namespace
    m.update(extra)
    return m


def node(name, cloud, i, kernel):
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if cloud:
        labels["alibabacloud.com/external"] = "true"
        labels["topology.kubernetes.io/zone"] = "cn-hangzhou-k"
    ip = node_ip(cloud, i)
    return {
        "apiVersion": "v1", "kind": "Node", "metadata": meta(name, labels=labels),
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kernelVersion": kernel, "osImage": "Alibaba Cloud Linux 3", "architecture": "amd64",
                         "bootID": "", "containerRuntimeVersion": "containerd://1.6.28",
                         "kubeProxyVersion": "", "kubeletVersion": "v1.31.1", "machineID": "", "operatingSystem": "linux",
                         "systemUUID": ""},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def report(name, cloud, scenario, kernel, ready=True):
    plugin = PLUGIN[scenario]
    if cloud and scenario != "overlay":
        plugin, node_scenario = "terway", "unknown"
    else:
        node_scenario = scenario
    evidence = {
        "flannel-vxlan": [{"signal": "tunnel-device", "detail": "flannel.1 is up (vxlan VNI 1 port 8472), 4 routes through it"}],
        "calico-bgp": [{"signal": "bird", "detail": "Calico's BIRD answers: 4 of 4 BGP sessions Established"},
                       {"signal": "routes", "detail": "4 routes to other nodes installed by BIRD (proto bird)"}],
        "none": [{"signal": "no-datapath", "detail": "no CNI tunnel, CNI device or CNI routes: pods use the host network"}],
        "terway": [{"signal": "cni-config", "detail": "the runtime loads 10-terway.conflist (plugins: terway)"}],
    }[plugin]
    checks = [
        {"name": "ScenarioDetected", "severity": "error", "status": "pass", "reason": "Detected", "message": "ok"},
        {"name": "IPForwarding", "severity": "error", "status": "pass", "reason": "Enabled", "message": "net.ipv4.ip_forward = 1"},
    ]
    if not ready:
        checks.append({"name": "KernelVersion", "severity": "error", "status": "fail", "reason": "TooOldForIPvlan",
                       "message": f"kernel {kernel} is older than 4.19"})
    return {
        "apiVersion": "terway-hybrid.io/v1alpha1", "kind": "NodeNetworkReport",
        "metadata": meta(name, labels={"terway-hybrid.io/node-name": name},
                         ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": name, "uid": f"uid-{name}"}]),
        "spec": {"nodeName": name},
        "status": {"scenario": node_scenario, "plugin": plugin, "confidence": "high",
                   "role": "cloud" if cloud else "on-prem", "kernelVersion": kernel, "evidence": evidence, "stale": [],
                   "checks": checks, "ready": ready, "lastDetected": TS, "agentVersion": "0.1.0"},
    }


VBR = "10.100.0.1"
VPC = "172.16.0.0/16"


def node_ip(cloud, i):
    return f"172.16.{i // 250}.{i % 250 + 2}" if cloud else f"10.10.{i // 250}.{i % 250 + 2}"


def add_cross_site(reports, on_prem, cloud, fail):
    """What the agents report and the controller assigns for the cross-site checks."""
    by_name = {r["metadata"]["name"]: r for r in reports}
    ips = {n: node_ip(False, i) for i, n in enumerate(on_prem)}
    ips.update({n: node_ip(True, i) for i, n in enumerate(cloud)})
    index = {n: i for i, n in enumerate(on_prem)}
    for i, n in enumerate(on_prem):
        st = by_name[n]["status"]
        st["podMtu"] = 1450
        # A full mesh, cut at 31 peers (reports list at most 32 sessions).
        mesh = [m for m in on_prem if m != n][:31]
        st["bgpPeers"] = [{"peer": ips[m], "state": "Established", "importedRoutes": 1,
                           "importedPrefixes": [f"10.244.{index[m] % 256}.0/24"]} for m in mesh]
        if i == 0:
            vbr = {"peer": VBR, "state": "Active", "importedRoutes": 0} if fail else \
                {"peer": VBR, "state": "Established", "importedRoutes": 1, "importedPrefixes": [VPC]}
            st["bgpPeers"].append(vbr)
    for n in cloud:
        st = by_name[n]["status"]
        st["podMtu"] = 1500
        st["cloudNetwork"] = {"vpcCidr": VPC, "vswitchCidrs": ["172.16.0.0/24"]}
    # Each node probes up to 3 nodes of the other site (peersPerNode 3), host path.
    for mine, theirs in ((on_prem, cloud), (cloud, on_prem)):
        for i, n in enumerate(mine):
            peers = [theirs[(i + k) % len(theirs)] for k in range(min(3, len(theirs)))]
            targets, probes = [], []
            for m in peers:
                addr = f"{ips[m]}:9799"
                targets.append({"node": m, "address": addr, "path": "Host"})
                down = fail and {n, m} == {"cloud-2", "onprem-3"}
                probe = {"node": m, "address": addr, "path": "Host", "reachable": not down, "probed": TS}
                if down:
                    probe["note"] = "no answer within 5000 ms"
                else:
                    probe.update({"rttMs": 4.2, "pathMtu": 1400 if fail else 1500,
                                  "route": "via 10.10.0.1 dev eth0 proto static" if n in on_prem
                                  else "via 172.16.0.253 dev eth0 proto dhcp"})
                probes.append(probe)
            by_name[n]["spec"]["probeTargets"] = targets
            by_name[n]["status"]["probes"] = probes


def container(name, image):
    """A container shaped like a CNI agent's: env, probes, mounts, limits."""
    return {"name": name, "image": image,
            "env": [{"name": f"SETTING_{i}", "value": f"value-{i}"} for i in range(15)]
            + [{"name": "NODENAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "livenessProbe": {"httpGet": {"path": "/liveness", "port": 9099, "host": "localhost"}, "periodSeconds": 10},
            "readinessProbe": {"exec": {"command": ["/bin/check", "-ready"]}, "periodSeconds": 10},
            "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            "securityContext": {"privileged": True},
            "volumeMounts": [{"name": f"vol-{i}", "mountPath": f"/host/path-{i}"} for i in range(8)]}


def daemonset(name, namespace, node_selector=None, affinity=None, host_network=True):
    image = f"registry.example.com/{name}:v1"
    spec = {"hostNetwork": host_network, "tolerations": [{"operator": "Exists"}],
            "initContainers": [container("install-cni", image), container("flexvol-driver", image)],
            "containers": [container(name, image)],
            "volumes": [{"name": f"vol-{i}", "hostPath": {"path": f"/var/lib/path-{i}", "type": "DirectoryOrCreate"}}
                        for i in range(8)]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta(name, namespace, generation=1),
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}}


def pod(ds, node_name, ready=True, waiting=None):
    name = f"{ds['metadata']['name']}-{node_name}"
    status = {"phase": "Running" if ready else "Pending",
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    container = {"name": ds["metadata"]["name"], "image": ds["spec"]["template"]["spec"]["containers"][0]["image"],
                 "ready": ready, "restartCount": 0, "imageID": "", "state": {"running": {}}}
    if waiting:
        container["state"] = {"waiting": {"reason": waiting, "message": "failed to pull image"}}
    status["containerStatuses"] = [container]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta(name, ds["metadata"]["namespace"],
                             ownerReferences=[{"apiVersion": "apps/v1", "kind": "DaemonSet", "controller": True,
                                               "name": ds["metadata"]["name"], "uid": ds["metadata"]["uid"]}]),
            "spec": {**ds["spec"]["template"]["spec"], "nodeName": node_name},
            "status": status}


NOT_CLOUD = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                          {"key": "alibabacloud.com/external", "operator": "NotIn", "values": ["true"]}]}]}}}
LINUX_ONLY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}}


def address_plan_yaml(fail):
    """The objects that hold pod and Service ranges, beside config.yaml's."""
    docs = ["""apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 10.244.0.0/16
  ipipMode: Never
  natOutgoing: true
""", """apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata:
  name: kubernetes
spec:
  cidrs:
  - 192.168.0.0/16
"""]
    if fail:
        docs.append("""apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: extra-ippool
spec:
  cidr: 172.20.0.0/16
  ipipMode: Never
""")
        docs.append("""apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  net-conf.json: |
    {
      "Network": "10.0.0.0/8",
      "Backend": {"Type": "vxlan"}
    }
""")
    return "---\n".join(docs)


def config_yaml(scenario, fail, on_prem_networks=None, cross_site=None):
    sgs = '["sg-bp1aaaaaaaaaaaaaaaaa"]' if not (fail and scenario == "host-network") else '["sg-bp1aaaaaaaaaaaaaaaaa", "default"]'
    docs = [f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: eni-config
  namespace: kube-system
data:
  eni_conf: |
    {{
      "version": "1",
      "max_pool_size": 5,
      "min_pool_size": 0,
      "vswitches": {{"cn-hangzhou-k": ["vsw-bp1bbbbbbbbbbbbbbbbb"]}},
      "security_groups": {sgs},
      "service_cidr": "192.168.0.0/16",
      "vswitch_selection_policy": "ordered",
      "ip_stack": "ipv4"
    }}
  10-terway.conf: |
    {{
      "cniVersion": "0.4.0",
      "name": "terway",
      "type": "terway",
      "eniip_virtual_type": "IPVlan"
    }}
"""]
    if not (fail and scenario == "bgp"):
        docs.append("""apiVersion: v1
kind: Secret
metadata:
  name: alibaba-addon-secret
  namespace: kube-system
type: Opaque
data:
  access-key-id: <redacted:24>
  access-key-secret: <redacted:30>
""")
    docs.append("""apiVersion: v1
kind: Service
metadata:
  name: kubernetes
  namespace: default
spec:
  clusterIP: 192.168.0.1
  ports:
  - name: https
    port: 443
    protocol: TCP
    targetPort: 6443
""")
    docs.append("""apiVersion: terway-hybrid.io/v1alpha1
kind: TerwayRollout
metadata:
  name: default
  generation: 1
spec:
  mode: Auto
  maxUnavailable: 2
  readinessTimeout: 10m
""" + ("" if on_prem_networks is None and not cross_site else "  crossSite:\n")
        + ("" if on_prem_networks is None else f"    onPremNetworks: {json.dumps(on_prem_networks)}\n")
        + (f'    vbrPeers: ["{VBR}"]\n' if cross_site else ""))
    return "---\n".join(docs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", choices=sorted(PLUGIN), required=True)
    p.add_argument("--on-prem", type=int, default=3)
    p.add_argument("--cloud", type=int, default=2)
    p.add_argument("--fail", action="store_true", help="the failing variant: " + "; ".join(f"{k}: {v}" for k, v in FAILURES.items()))
    p.add_argument("--cross-site", choices=["pass", "fail"], help="add the cross-site data (bgp only)")
    p.add_argument("--address-plan", choices=["pass", "fail"],
                   help="add the ranges CIDROverlap compares; fail: " + ADDRESS_PLAN_FAILURE)
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--single-file", action="store_true", help="one JSON List with every object (for the scale benchmark)")
    args = p.parse_args()
    random.seed(7)
    s, fail = args.scenario, args.fail
    if args.cross_site and s != "bgp":
        p.error("--cross-site goes with --scenario bgp")

    nodes, reports = [], []
    on_prem = [f"onprem-{i + 1}" for i in range(args.on_prem)]
    cloud = [f"cloud-{i + 1}" for i in range(args.cloud)]
    plan = args.address_plan
    for i, name in enumerate(on_prem):
        nodes.append(node(name, False, i, "5.4.0-150-generic"))
        if plan:
            # Inside Calico's pool for the first 256 nodes; past them (the
            # scale dumps), 10.101.0.0/16 on: still apart from everything else.
            pod_cidr = f"10.244.{i}.0/24" if i < 256 else f"10.{100 + i // 256}.{i % 256}.0/24"
            nodes[-1]["spec"]["podCIDRs"] = [pod_cidr]
        reports.append(report(name, False, s, "5.4.0-150-generic"))
    for i, name in enumerate(cloud):
        old = fail and s == "host-network" and i == 0
        kernel = "4.18.0-348.el8.x86_64" if old else "5.10.134-16.al8.x86_64"
        nodes.append(node(name, True, i, kernel))
        reports.append(report(name, True, s, kernel, ready=not old))
        if plan:
            reports[-1]["status"]["cloudNetwork"] = {"vpcCidr": VPC, "vswitchCidrs": [VSWITCH]}

    if args.cross_site:
        add_cross_site(reports, on_prem, cloud, args.cross_site == "fail")

    agent = daemonset("terway-hybrid-agent", "terway-hybrid")
    dss, pods = [agent], [pod(agent, n) for n in on_prem + cloud]
    if s == "overlay":
        flannel = daemonset("kube-flannel-ds", "kube-flannel", affinity=LINUX_ONLY)
        dss.append(flannel)
        for n in on_prem:
            pods.append(pod(flannel, n))
        for i, n in enumerate(cloud):
            broken = fail and i == 0
            pods.append(pod(flannel, n, ready=not broken, waiting="ImagePullBackOff" if broken else None))
    else:
        terway = daemonset("terway-eniip", "kube-system", node_selector={"alibabacloud.com/external": "true"})
        dss.append(terway)
        pods += [pod(terway, n, ready=False) for n in cloud]
        if s == "bgp":
            calico = daemonset("calico-node", "kube-system", affinity=LINUX_ONLY if fail else NOT_CLOUD)
            dss.append(calico)
            pods += [pod(calico, n) for n in on_prem]
            if fail:
                pods += [pod(calico, n, ready=False) for n in cloud]

    os.makedirs(args.out, exist_ok=True)
    lists = {"nodes.json": nodes, "nodenetworkreports.json": reports, "daemonsets.json": dss, "pods.json": pods}
    if args.single_file:
        items = [o for objs in lists.values() for o in objs]
        with open(os.path.join(args.out, "cluster.json"), "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    else:
        for fname, items in lists.items():
            with open(os.path.join(args.out, fname), "w") as f:
                json.dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}, f, indent=2)
                f.write("\n")
    with open(os.path.join(args.out, "config.yaml"), "w") as f:
        f.write(config_yaml(s, fail, ["10.10.0.0/16"] if plan else None, args.cross_site))
    if plan:
        with open(os.path.join(args.out, "address-plan.yaml"), "w") as f:
            f.write(address_plan_yaml(plan == "fail"))


if __name__ == "__main__":
    main()
