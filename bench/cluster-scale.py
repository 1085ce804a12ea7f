#!/usr/bin/env python3
"""terway-hybrid at scale on the real control plane (scripts/control-plane).

Starts a control plane of its own, installs terway-hybrid as README.md says
(Prometheus Operator CRDs, `deploy/crds`, `deploy/overlays/plain`), scales
the controller Deployment to 0 and runs the release controller binary as a
process with its ServiceAccount's token, then:

 1. creates N kwok Nodes (N - R on-prem, R cloud `alibabacloud.com/external`)
    and waits until the agent DaemonSet's pod on every one is Ready (kwok
    plays the kubelet), with eni-config and the RAM Secret in place;
 2. starts the controller and waits until it has written the TerwayRollout
    status and gone quiet (it labels no node before that node's report);
 3. writes every node's NodeNetworkReport as its agent does (a load
    generator: server-side apply of the identity, owned by the Node, then of
    the status, field manager terway-hybrid-agent, on several connections),
    and times from the last report written to every node labelled
    `terway-hybrid.io/scenario=bgp`, `terway-hybrid.io/preflight=passed`
    (a watch on Nodes); each stand-in agent answers the probe targets the
    controller writes into its report (`spec.probeTargets`) with reachable
    results, as a real agent does after probing, for CrossSiteConnectivity
    to pass; then counts the controller's requests in the audit log until it
    has been quiet for 10 s;
 4. leaves the cluster idle for S seconds and counts the controller's
    requests again;
 5. creates the Terway DaemonSet (gated) and switches the TerwayRollout to
    `Auto` (`maxUnavailable: 10%` from the plain overlay): waves and wall
    time until `Available`;
 6. runs one real `terway-hybrid-agent run` in a network namespace as the
    agent of one cloud node (pod-bound token, the API through a socat bridge
    to DIR/api.sock), adds and removes a down VXLAN device `flannel.1` (which
    the report lists as stale) and times each change until the report's new
    resourceVersion arrives on a watch;

and prints the figures. The controller's peak RSS is its own VmHWM
(/proc/PID/status), sampled every 0.5 s. The controller's requests are the
audit events of user system:serviceaccount:terway-hybrid:terway-hybrid-controller.

Run as root after `cargo build --release -p terway-hybrid-controller -p
terway-hybrid-agent` and `scripts/control-plane build`:

    python3 bench/cluster-scale.py [--nodes 5000] [--rollout-nodes 1000]
        [--idle-seconds 300] [--agent-samples 24] [--debounce-ms 200]
        [--concurrency 16] [--json]
"""

from __future__ import annotations

import argparse
import collections
import datetime
import http.client
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTROL_PLANE = os.path.join(REPO, "scripts", "control-plane")
CONTROLLER_USER = "system:serviceaccount:terway-hybrid:terway-hybrid-controller"
AGENT_USER = "system:serviceaccount:terway-hybrid:terway-hybrid-agent"
NS = "terway-hybrid"
GROUP = "terway-hybrid.io/v1alpha1"
SCENARIO_LABEL = "terway-hybrid.io/scenario"
PREFLIGHT_LABEL = "terway-hybrid.io/preflight"
GATE_LABEL = "terway-hybrid.io/terway-gate"
LOADGEN_UA = "terway-hybrid-bench-loadgen"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(*args, stdin=None, env=None, check=True) -> str:
    out = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        raise BenchError(f"{' '.join(args)} exited {out.returncode}: {out.stderr.strip()[:2000]}")
    return out.stdout


# ---------------------------------------------------------------- API client


class Api:
    """The API server as admin (client certificate), one HTTPS connection per thread."""

    def __init__(self, cp_dir: str):
        with open(os.path.join(cp_dir, "server")) as f:
            server = f.read().strip()
        hostport = server.split("://", 1)[1]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        pki = os.path.join(cp_dir, "pki")
        self.ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        self.local = threading.local()

    def connect(self, timeout=60) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def _conn(self) -> http.client.HTTPSConnection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = self.connect()
        return c

    def request(self, method, path, body=None, ctype="application/json", accept="application/json",
                ok=(200, 201), ua="terway-hybrid-bench"):
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
        headers = {"Accept": accept, "User-Agent": ua}
        if data is not None:
            headers["Content-Type"] = ctype
        for attempt in range(5):
            try:
                c = self._conn()
                c.request(method, path, body=data, headers=headers)
                resp = c.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                self.local.conn = None
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
                continue
            if resp.status == 429 or resp.status >= 500:
                time.sleep(0.2 * (attempt + 1))
                continue
            if ok and resp.status not in ok:
                raise BenchError(f"{method} {path}: {resp.status} {raw[:500]!r}")
            return resp.status, (json.loads(raw) if raw else None)
        raise BenchError(f"{method} {path}: server busy after 5 attempts")

    def get(self, path, ok=(200,)):
        return self.request("GET", path, ok=ok)[1]

    def apply(self, path, obj, manager, ua="terway-hybrid-bench"):
        sep = "&" if "?" in path else "?"
        return self.request("PATCH", f"{path}{sep}fieldManager={manager}&force=true", obj,
                            ctype="application/apply-patch+yaml", ua=ua)[1]


def read_chunks(resp):
    """The chunks of a chunked HTTP response body as they arrive.
    (HTTPResponse.readline() on a chunked watch waits for more than one
    event's worth of data, delaying events by minutes.)"""
    fp = resp.fp
    while True:
        line = fp.readline()
        if not line:
            return
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        data = fp.read(size)
        fp.readline()  # the CRLF after the chunk
        if len(data) < size:
            return
        yield data


class Watch(threading.Thread):
    """A watch on one collection, resumed from the last resourceVersion when
    the server ends it; calls on_event(t, type, object) for every event."""

    def __init__(self, api: Api, path: str, on_event, meta_only=False):
        super().__init__(daemon=True)
        self.api, self.path, self.on_event, self.meta_only = api, path, on_event, meta_only
        self.stop = threading.Event()
        self.synced = threading.Event()

    def run(self):
        accept = "application/json"
        if self.meta_only:
            accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        sep = "&" if "?" in self.path else "?"
        rv = None
        while not self.stop.is_set():
            try:
                if rv is None:
                    lst = self.api.request("GET", self.path, accept=accept)[1]
                    now = time.time()
                    for item in lst.get("items", []):
                        self.on_event(now, "ADDED", item)
                    rv = lst["metadata"]["resourceVersion"]
                    self.synced.set()
                conn = self.api.connect(timeout=None)
                waccept = accept.replace("PartialObjectMetadataList", "PartialObjectMetadata")
                conn.request("GET", f"{self.path}{sep}watch=1&resourceVersion={rv}&timeoutSeconds=1800"
                             "&allowWatchBookmarks=true", headers={"Accept": waccept,
                                                                    "User-Agent": "terway-hybrid-bench-watch"})
                resp = conn.getresponse()
                if resp.status != 200:
                    resp.read()
                    rv = None
                    time.sleep(0.5)
                    continue
                buf = b""
                gone = False
                for data in read_chunks(resp):
                    if self.stop.is_set():
                        break
                    now = time.time()
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        ev = json.loads(line)
                        obj = ev.get("object", {})
                        if ev.get("type") == "ERROR":
                            gone = True  # 410 Gone: list again
                            break
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if ev["type"] != "BOOKMARK":
                            self.on_event(now, ev["type"], obj)
                    if gone:
                        rv = None
                        break
                conn.close()
            except (OSError, http.client.HTTPException, ValueError, BenchError):
                if self.stop.is_set():
                    return
                time.sleep(0.5)


# ---------------------------------------------------------------- audit log


class AuditTail(threading.Thread):
    """Follows DIR/audit.log across rotations and keeps the requests of the
    controller (and of the one real agent) as small tuples."""

    def __init__(self, path: str, users=(CONTROLLER_USER, AGENT_USER)):
        super().__init__(daemon=True)
        self.path = path
        self.needles = [f'"username":"{u}"'.encode() for u in users]
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.lines = 0
        self.ino, self.offset = None, 0

    def _consume(self, line: bytes):
        self.lines += 1
        if not any(n in line for n in self.needles):
            return
        try:
            e = json.loads(line)
        except ValueError:
            return
        ref = e.get("objectRef") or {}
        t = e.get("requestReceivedTimestamp", "")
        try:
            ts = datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
        except ValueError:
            ts = 0.0
        with self.lock:
            self.events.append({
                "t": ts, "user": e["user"]["username"], "ua": e.get("userAgent", ""), "verb": e.get("verb", ""),
                "resource": ref.get("resource", ""), "subresource": ref.get("subresource", ""),
                "name": ref.get("name", ""), "code": (e.get("responseStatus") or {}).get("code", 0),
            })

    def run(self):
        while not os.path.exists(self.path):
            time.sleep(0.2)
        f = open(self.path, "rb")
        self.ino = os.fstat(f.fileno()).st_ino
        buf = b""
        while True:
            chunk = f.read(1 << 20)
            if chunk:
                self.offset += len(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self._consume(line)
                continue
            try:
                rotated = os.stat(self.path).st_ino != os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                rotated = False
            if rotated:
                for line in (buf + f.read()).split(b"\n"):
                    if line:
                        self._consume(line)
                f.close()
                f = open(self.path, "rb")
                self.ino, self.offset = os.fstat(f.fileno()).st_ino, 0
                buf = b""
                continue
            if self.stop.is_set():
                break
            time.sleep(0.2)
        f.close()

    def drain(self, until: float):
        """Waits until the log has been read up to wall time `until` (plus the
        server's flush delay)."""
        time.sleep(max(0.0, until + 1.5 - time.time()))
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        # The log never stops growing (kwok renews every node's Lease): wait
        # until the reader has passed where the file ended now.
        while self.ino == st.st_ino and self.offset < st.st_size and self.is_alive():
            time.sleep(0.2)

    def between(self, t0, t1, user=CONTROLLER_USER):
        with self.lock:
            return [e for e in self.events if e["user"] == user and t0 <= e["t"] < t1]

    def last_write(self, user=CONTROLLER_USER) -> float:
        """When `user` last wrote anything but its leader Lease."""
        with self.lock:
            ws = [e["t"] for e in self.events
                  if e["user"] == user and e["verb"] in WRITE_VERBS and e["resource"] != "leases"]
        return max(ws, default=0.0)


def categorize(events) -> dict:
    """Controller requests by what they are: node label writes, rollout status
    writes, events, lease renewals, other writes, reads."""
    c = collections.Counter()
    for e in events:
        write = e["verb"] in WRITE_VERBS
        r, sub = e["resource"], e["subresource"]
        if not write:
            if e["verb"] == "watch":
                c["watch"] += 1
            elif r == "leases":
                c["lease_reads"] += 1
            else:
                c["reads"] += 1
        elif r == "nodes":
            c["node_label_writes"] += 1
        elif r == "nodenetworkreports" and not sub:
            c["probe_target_writes"] += 1
        elif r == "terwayrollouts" and sub == "status":
            c["rollout_status_writes"] += 1
        elif r == "events":
            c["event_writes"] += 1
        elif r == "leases":
            c["lease_writes"] += 1
        else:
            c[f"other_writes:{r}{'/' + sub if sub else ''}:{e['verb']}"] += 1
        if write:
            c["writes"] += 1
        if e["code"] >= 400:
            c[f"errors:{e['code']}"] += 1
        c["requests"] += 1
    return dict(c)


# ---------------------------------------------------------------- objects


def node_obj(name: str, cloud: bool) -> dict:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    if cloud:
        labels["alibabacloud.com/external"] = "true"
    res = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"}, "labels": labels},
            "status": {"capacity": res, "allocatable": res,
                       "nodeInfo": {"kernelVersion": "5.10.134-16.al8.x86_64", "kubeletVersion": "v1.34.4"}}}


CHECKS_PASS = [
    {"name": "ScenarioDetected", "severity": "error", "status": "pass", "reason": "Detected", "message": "ok"},
    {"name": "IPForwarding", "severity": "error", "status": "pass", "reason": "Enabled",
     "message": "net.ipv4.ip_forward = 1"},
]


def onprem_status() -> dict:
    """As tests/src/cluster.rs onprem_bgp_status(): Calico BGP, checks pass."""
    return {"scenario": "bgp", "plugin": "calico-bgp", "confidence": "high", "role": "on-prem",
            "kernelVersion": "5.4.0-150-generic",
            "evidence": [{"signal": "bird", "detail": "Calico's BIRD answers: 2 of 2 BGP sessions Established"}],
            "stale": [], "checks": CHECKS_PASS, "ready": True,
            "lastDetected": "2026-11-30T08:00:00Z", "agentVersion": "0.1.0"}


def cloud_status() -> dict:
    """As tests/src/cluster.rs cloud_status(): no CNI yet, checks pass."""
    return {"scenario": "unknown", "plugin": "none", "confidence": "low", "role": "cloud",
            "kernelVersion": "5.10.134-16.al8.x86_64",
            "evidence": [{"signal": "cni-config", "detail": "no CNI configuration in /etc/cni/net.d"}],
            "stale": [], "checks": CHECKS_PASS, "ready": True,
            "lastDetected": "2026-11-30T08:00:00Z", "agentVersion": "0.1.0"}


ENI_CONFIG = {
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "eni-config", "namespace": "kube-system"},
    "data": {
        "eni_conf": json.dumps({"version": "1", "max_pool_size": 5, "min_pool_size": 0,
                                "vswitches": {"cn-hangzhou-k": ["vsw-bp1bbbbbbbbbbbbbbbbb"]},
                                "security_groups": ["sg-bp1aaaaaaaaaaaaaaaaa"],
                                "service_cidr": "10.96.0.0/16", "vswitch_selection_policy": "ordered",
                                "ip_stack": "ipv4"}),
        "10-terway.conf": json.dumps({"cniVersion": "0.4.0", "name": "terway", "type": "terway",
                                      "eniip_virtual_type": "IPVlan"}),
    },
}

ADDON_SECRET = {
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alibaba-addon-secret", "namespace": "kube-system"},
    "stringData": {"access-key-id": "LTAI5tQ9xkV3mZ2pR7wYb1Ce", "access-key-secret": "Zq8Hn3Lr6Tv1Xw4Ya7Bc0De2Fg5Hj9"},
}


def terway_daemonset() -> dict:
    """Terway as the add-on installs it, stored with the gate requirement
    admission adds (as controller/tests/cluster_rollout.rs creates it)."""
    labels = {"app": "terway-eniip"}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "terway-eniip", "namespace": "kube-system", "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "hostNetwork": True, "tolerations": [{"operator": "Exists"}],
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "alibabacloud.com/external", "operator": "In", "values": ["true"]},
                        {"key": GATE_LABEL, "operator": "In", "values": ["open"]}]}]}}},
                "containers": [{"name": "main", "image": "registry.example.com/terway-eniip:v1",
                                "resources": {"requests": {"cpu": "10m"}}}]}},
        },
    }


# ---------------------------------------------------------------- process helpers


class Proc:
    def __init__(self, args, logfile, env=None):
        self.logfile = logfile
        f = open(logfile, "ab")
        self.p = subprocess.Popen(args, stdout=f, stderr=f, stdin=subprocess.DEVNULL, env=env,
                                  start_new_session=True)
        f.close()

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode

    def tail(self, n=20):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.rss_kib = self.hwm_kib = 0

    def sample(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        self.rss_kib = int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
        except OSError:
            pass

    def run(self):
        while not self.stop.is_set():
            self.sample()
            time.sleep(0.5)


def wait_until(what, timeout, fn, interval=0.5, diag=None):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}"
                             + (f"\n{diag()}" if diag else ""))
        time.sleep(interval)


# ---------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args, cp_dir):
        self.args = args
        self.dir = cp_dir
        self.api = Api(cp_dir)
        self.kubectl_bin = os.path.join(run(CONTROL_PLANE, "bin-dir").strip(), "kubectl")
        self.env = dict(os.environ, KUBECONFIG=os.path.join(cp_dir, "admin.kubeconfig"),
                        PATH=f"{os.path.dirname(self.kubectl_bin)}:{os.environ['PATH']}")
        self.result: dict = {"nodes": args.nodes, "cloud_nodes": args.rollout_nodes,
                             "onprem_nodes": args.nodes - args.rollout_nodes}
        self.labels: dict[str, tuple] = {}
        self.label_changed: dict[str, float] = {}
        self.label_history: dict[str, list] = collections.defaultdict(list)
        self.gate_opened: dict[str, float] = {}
        # Per node, the probe targets its stand-in agent last answered.
        self.answered: dict[str, str] = {}
        self.probe_answers = 0
        self.real_agent_node = None
        self.lock = threading.Lock()
        self.controller = None
        self.rss = None
        self.cleanup: list = []
        self.audit = AuditTail(os.path.join(cp_dir, "audit.log"))

    def kubectl(self, *args, stdin=None):
        return run(self.kubectl_bin, *args, stdin=stdin, env=self.env)

    # -- install

    def wait_established(self, *crds):
        # kubectl wait fails, instead of waiting, on a CRD created so recently
        # that it has no status.conditions yet (docs/troubleshooting.md,
        # "Installing"): try again until the deadline.
        deadline = time.time() + 60
        while True:
            try:
                return self.kubectl("wait", "--for", "condition=Established", "--timeout", "60s", *crds)
            except BenchError:
                if time.time() > deadline:
                    raise
                time.sleep(1)

    def install(self):
        crds = run(CONTROL_PLANE, "crd-dir").strip()
        self.kubectl("apply", "--server-side", "-f", crds)
        self.wait_established("crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
        os.chdir(REPO)
        self.kubectl("apply", "-k", "deploy/crds")
        self.wait_established("crd/nodenetworkreports.terway-hybrid.io", "crd/terwayrollouts.terway-hybrid.io")
        self.kubectl("apply", "-k", "deploy/overlays/plain")
        self.kubectl("scale", "deployment", "terway-hybrid-controller", "--namespace", NS, "--replicas", "0")
        for obj in (ENI_CONFIG, ADDON_SECRET):
            self.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(obj))

    # -- nodes

    def node_names(self):
        n, r = self.args.nodes, self.args.rollout_nodes
        onprem = [f"onprem-{i:05d}" for i in range(n - r)]
        cloud = [f"cloud-{i:05d}" for i in range(r)]
        return onprem, cloud

    def create_nodes(self):
        onprem, cloud = self.node_names()
        self.uids = {}
        t0 = time.time()

        def create(item):
            name, is_cloud = item
            obj = self.api.request("POST", "/api/v1/nodes", node_obj(name, is_cloud))[1]
            return name, obj["metadata"]["uid"]

        items = [(n, False) for n in onprem] + [(n, True) for n in cloud]
        with ThreadPoolExecutor(self.args.concurrency) as pool:
            for name, uid in pool.map(create, items):
                self.uids[name] = uid
        self.result["node_create_seconds"] = round(time.time() - t0, 1)
        log(f"{len(items)} nodes created in {time.time() - t0:.1f} s; waiting for the agent pods")
        n = len(items)

        # Counted from the pods themselves: the DaemonSet's status.numberReady
        # can stay behind for minutes at 1,000 nodes (the DaemonSet controller
        # had not recounted while every pod was Ready).
        def agents_ready():
            pods = self.api.get(f"/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dterway-hybrid-agent")
            nodes = set()
            self._agent_unready = []
            for pod in pods.get("items", []):
                conds = pod.get("status", {}).get("conditions") or []
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                    nodes.add(pod.get("spec", {}).get("nodeName"))
                elif any(c.get("type") == "Ready" and c.get("status") == "False" for c in conds):
                    self._agent_unready.append(pod["metadata"]["name"])
            self._agent_ready = len(nodes)
            return len(nodes) == n

        last = [0, time.time()]
        stalled = [0, time.time()]

        def progress():
            ok = agents_ready()
            if time.time() - last[1] > 30:
                log(f"agent pods Ready: {self._agent_ready} of {n}")
                last[1] = time.time()
            if self._agent_ready != stalled[0]:
                stalled[:] = [self._agent_ready, time.time()]
            elif time.time() - stalled[1] > 120 and self._agent_unready:
                # A node whose Lease kwok renewed late had its pods set to
                # Ready=False by the node monitor; kwok never sets them back
                # (a kubelet would). Their DaemonSet makes them anew.
                log(f"recreating {len(self._agent_unready)} agent pods kwok left not Ready")
                for name in self._agent_unready:
                    self.api.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}", ok=(200, 404))
                self.result["agent_pods_recreated"] = self.result.get("agent_pods_recreated", 0) + len(
                    self._agent_unready)
                stalled[1] = time.time()
            return ok

        wait_until("every agent pod Ready", 600 + n * 0.5, progress, interval=5,
                   diag=lambda: f"{self._agent_ready} of {n} nodes have a Ready agent pod")
        self.result["agent_pods_ready_seconds"] = round(time.time() - t0, 1)
        log(f"all {n} agent pods Ready after {time.time() - t0:.1f} s")

    # -- watches

    def on_node(self, t, typ, obj):
        md = obj.get("metadata", {})
        name = md.get("name")
        if not name or typ == "DELETED":
            return
        labels = md.get("labels") or {}
        state = (labels.get(SCENARIO_LABEL), labels.get(PREFLIGHT_LABEL))
        gate = labels.get(GATE_LABEL) == "open"
        with self.lock:
            if self.labels.get(name) != state:
                self.labels[name] = state
                self.label_changed[name] = t
                self.label_history[name].append((t, state))
            if gate and name not in self.gate_opened:
                self.gate_opened[name] = t

    def converged(self, names, want=("bgp", "passed")):
        with self.lock:
            return all(self.labels.get(n) == want for n in names)

    # -- controller

    def start_controller(self):
        token = self.kubectl("create", "token", "terway-hybrid-controller", "--namespace", NS,
                             "--duration", "14400s").strip()
        kubeconfig = os.path.join(self.dir, "controller.kubeconfig")
        server = open(os.path.join(self.dir, "server")).read().strip()
        with open(kubeconfig, "w") as f:
            f.write(f"apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n"
                    f"    certificate-authority: {self.dir}/pki/ca.crt\nusers:\n- name: sa\n  user:\n"
                    f"    token: {token}\ncontexts:\n- name: test\n  context: {{cluster: test, user: sa}}\n"
                    "current-context: test\n")
        # The environment the installed Deployment gives its container (its
        # plain values; the pod's own name and namespace are set here).
        deployment = self.api.get(f"/apis/apps/v1/namespaces/{NS}/deployments/terway-hybrid-controller")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        deployed = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        self.result["controller_env"] = deployed
        env = dict(os.environ, **deployed, KUBECONFIG=kubeconfig, POD_NAMESPACE=NS, POD_NAME="bench-controller",
                   RUST_LOG="info")
        # The admission webhook on loopback, where this API server reaches it
        # (deploy/ reaches it through its Service).
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        webhook = ["--webhook-addr", f"127.0.0.1:{port}", "--webhook-url", f"https://127.0.0.1:{port}/mutate/terway-gate"]
        self.controller = Proc([self.args.controller, "--metrics-addr", "127.0.0.1:0", *webhook],
                               os.path.join(self.dir, "controller.log"), env=env)
        self.cleanup.append(self.controller.stop)
        self.rss = RssSampler(self.controller.p.pid)
        self.rss.start()

    def controller_alive(self):
        if self.controller.p.poll() is not None:
            raise BenchError(f"the controller exited {self.controller.p.returncode}:\n{self.controller.tail()}")

    def wait_quiet(self, since, quiet=10.0, timeout=600):
        """Until the controller has sent no write for `quiet` seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.controller_alive()
            self.audit.drain(time.time())
            last = max(self.audit.last_write(), since)
            if time.time() - last >= quiet:
                return last
            time.sleep(1)
        raise BenchError(f"the controller kept writing for {timeout} s")

    def rollout(self):
        return self.api.get(f"/apis/{GROUP}/terwayrollouts/default")

    # -- reports

    def status_of(self, name: str) -> dict:
        return cloud_status() if name.startswith("cloud-") else onprem_status()

    def on_report(self, t, typ, obj):
        """The stand-in agents' probe loop: a report whose spec.probeTargets
        changed gets, in its status, a reachable result for every target."""
        if typ == "DELETED":
            return
        name = obj.get("metadata", {}).get("name")
        targets = (obj.get("spec") or {}).get("probeTargets") or []
        if not name or not obj.get("status"):
            return
        key = json.dumps(targets, sort_keys=True)
        with self.lock:
            if name == self.real_agent_node or self.answered.get(name, "[]") == key:
                return
            self.answered[name] = key
        self.prober.submit(self.answer_probes, name, targets)

    def answer_probes(self, name: str, targets: list):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = dict(self.status_of(name))
        status["probes"] = [{"node": t["node"], "address": t["address"], "path": t.get("path", "host"),
                             "reachable": True, "rttMs": 2.5, "pathMtu": 1500, "probed": now} for t in targets]
        body = {"apiVersion": GROUP, "kind": "NodeNetworkReport", "metadata": {"name": name}, "status": status}
        try:
            self.api.apply(f"/apis/{GROUP}/nodenetworkreports/{name}/status", body, "terway-hybrid-agent",
                           ua=LOADGEN_UA)
            with self.lock:
                self.probe_answers += 1
        except BenchError as e:
            log(f"probe answer for {name}: {e}")

    def write_reports(self):
        onprem, cloud = self.node_names()
        names = onprem + cloud

        def report(name):
            base = f"/apis/{GROUP}/nodenetworkreports/{name}"
            identity = {"apiVersion": GROUP, "kind": "NodeNetworkReport",
                        "metadata": {"name": name, "labels": {"terway-hybrid.io/node-name": name},
                                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                                          "uid": self.uids[name]}]},
                        "spec": {"nodeName": name}}
            self.api.apply(base, identity, "terway-hybrid-agent", ua=LOADGEN_UA)
            status = {"apiVersion": GROUP, "kind": "NodeNetworkReport", "metadata": {"name": name},
                      "status": self.status_of(name)}
            self.api.apply(base + "/status", status, "terway-hybrid-agent", ua=LOADGEN_UA)
            return time.time()

        t0 = time.time()
        with ThreadPoolExecutor(self.args.concurrency) as pool:
            done = list(pool.map(report, names))
        return t0, max(done)

    # -- phases

    def phase_converge(self):
        onprem, cloud = self.node_names()
        names = onprem + cloud
        self.start_controller()
        # Start-up: the controller syncs its watches and writes the
        # TerwayRollout status; it labels no node that has no report yet.
        t_start = time.time()

        def started():
            self.controller_alive()
            try:
                return bool(self.rollout().get("status", {}).get("conditions"))
            except BenchError:
                return False

        wait_until("the controller to write the TerwayRollout status", 300 + len(names) * 0.1, started)
        startup_end = self.wait_quiet(t_start)
        self.audit.drain(time.time())
        start_ev = self.audit.between(t_start - 1, time.time())
        self.result["startup"] = {"seconds_to_quiet": round(startup_end - t_start, 2),
                                  "requests": categorize(start_ev)}
        self.rss.sample()
        self.result["controller_rss_after_startup_mib"] = round(self.rss.rss_kib / 1024, 1)
        log(f"controller started ({self.result['startup']['requests'].get('node_label_writes', 0)} "
            "label writes before any report); writing reports")

        self.prober = ThreadPoolExecutor(self.args.concurrency)
        self.cleanup.append(lambda: self.prober.shutdown(wait=False, cancel_futures=True))
        reports = Watch(self.api, f"/apis/{GROUP}/nodenetworkreports", self.on_report)
        reports.start()
        self.cleanup.append(reports.stop.set)
        reports.synced.wait(60)
        t0, t_last = self.write_reports()
        log(f"{len(names)} reports written in {t_last - t0:.1f} s; waiting for the labels")
        wait_until("every node labelled scenario=bgp preflight=passed", 600,
                   lambda: self.controller_alive() or self.converged(names), interval=0.1)
        with self.lock:
            t_labelled = max(self.label_changed[n] for n in names)
        # Then the rollout status: every node reported and passed.
        wait_until("the TerwayRollout status to count every node", 300,
                   lambda: (self.rollout().get("status", {}).get("nodes", {}).get("preflightPassed") == len(names)))
        t_status = time.time()
        quiet_from = self.wait_quiet(t0)
        self.audit.drain(time.time())
        ev = self.audit.between(t0, quiet_from + 1)
        cats = categorize(ev)
        nodes_written = collections.Counter(e["name"] for e in ev if e["resource"] == "nodes"
                                            and e["verb"] in WRITE_VERBS)
        with self.lock:
            with_targets = sum(1 for key in self.answered.values() if key != "[]")
        self.result["converge"] = {
            "reports_seconds": round(t_last - t0, 2),
            "report_rate_per_s": round(len(names) / max(t_last - t0, 1e-9), 1),
            "last_report_to_labelled_s": round(t_labelled - t_last, 2),
            "first_report_to_labelled_s": round(t_labelled - t0, 2),
            "last_report_to_status_s": round(t_status - t_last, 2),
            "last_write_after_last_report_s": round(quiet_from - t_last, 2),
            "requests": cats,
            # Every write but the leader Lease's renewals (which go on
            # whatever happens). The goal counts them but the probe targets
            # (docs/benchmarks.md, "What the figures say"): a report's
            # targets are a second object per node, judged by the writes
            # per node that has them (floor: one).
            "writes_per_node": round((cats.get("writes", 0) - cats.get("lease_writes", 0)) / len(names), 3),
            "writes_per_node_but_targets": round((cats.get("writes", 0) - cats.get("lease_writes", 0)
                                                  - cats.get("probe_target_writes", 0)) / len(names), 3),
            "label_writes_per_node": round(cats.get("node_label_writes", 0) / len(names), 3),
            "probe_target_writes_per_node": round(cats.get("probe_target_writes", 0) / len(names), 3),
            "nodes_with_targets": with_targets,
            "probe_target_writes_per_node_with_targets":
                round(cats.get("probe_target_writes", 0) / max(with_targets, 1), 3),
            "stand_in_probe_answers": self.probe_answers,
            "nodes_written_more_than_once": sum(1 for c in nodes_written.values() if c > 1),
        }
        # Which label states each node went through after the first report
        # (more than one state: it was labelled more than once).
        with self.lock:
            paths = collections.Counter(
                " -> ".join(f"{a}/{b}" for t, (a, b) in self.label_history[n] if t >= t0) for n in names)
        self.result["converge"]["label_paths"] = dict(paths.most_common(5))
        total_label = self.result["startup"]["requests"].get("node_label_writes", 0) + cats.get(
            "node_label_writes", 0)
        self.result["converge"]["label_writes_per_node_incl_startup"] = round(total_label / len(names), 3)
        self.rss.sample()
        self.result["controller_rss_after_converge_mib"] = round(self.rss.rss_kib / 1024, 1)
        log(f"labelled {t_labelled - t_last:.2f} s after the last report; {cats}")

    def phase_idle(self):
        s = self.args.idle_seconds
        if s <= 0:
            return
        log(f"idle for {s} s")
        t0 = time.time()
        while time.time() - t0 < s:
            self.controller_alive()
            time.sleep(1)
        t1 = time.time()
        self.audit.drain(t1)
        ev = self.audit.between(t0, t1)
        self.result["idle"] = {"seconds": s, "requests": categorize(ev)}
        self.rss.sample()
        self.result["controller_rss_after_idle_mib"] = round(self.rss.rss_kib / 1024, 1)
        log(f"idle: {self.result['idle']['requests']}")

    def phase_rollout(self):
        onprem, cloud = self.node_names()
        if not cloud:
            return
        self.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(terway_daemonset()))
        waves: dict[int, float] = {}
        t0 = time.time()
        self.api.request("PATCH", f"/apis/{GROUP}/terwayrollouts/default", {"spec": {"mode": "Auto"}},
                         ctype="application/merge-patch+json")
        last = [time.time()]

        def available():
            self.controller_alive()
            r = self.rollout()
            st = r.get("status", {})
            w = st.get("currentWave", 0)
            if w and w not in waves:
                waves[w] = time.time()
            conds = {c["type"]: c for c in st.get("conditions", [])}
            if conds.get("Degraded", {}).get("status") == "True":
                raise BenchError(f"rollout Degraded: {conds['Degraded']}")
            if time.time() - last[0] > 30:
                log(f"rollout: wave {w}, {st.get('nodes')}")
                last[0] = time.time()
            return conds.get("Available", {}).get("status") == "True" and st

        st = wait_until("the rollout to be Available", 1800, available, interval=0.25)
        t1 = time.time()
        spec = self.rollout()["spec"]
        quiet_from = self.wait_quiet(t1, timeout=120)
        self.audit.drain(time.time())
        ev = self.audit.between(t0, quiet_from + 1)
        with self.lock:
            opened = sorted(t for n, t in self.gate_opened.items())
        starts = sorted(waves.values())
        durations = [round(b - a, 2) for a, b in zip(starts, starts[1:] + [t1])]
        self.result["rollout"] = {
            "max_unavailable": spec.get("maxUnavailable"), "cloud_nodes": len(cloud),
            "waves": st.get("currentWave"), "waves_seen": len(waves), "wall_s": round(t1 - t0, 2),
            "gated": st.get("nodes", {}).get("gated"), "terway_ready": st.get("nodes", {}).get("terwayReady"),
            "first_gate_after_s": round(opened[0] - t0, 2) if opened else None,
            "wave_seconds": durations, "requests": categorize(ev),
        }
        log(f"rollout: {self.result['rollout']}")

    def phase_agent(self):
        onprem, cloud = self.node_names()
        if self.args.agent_samples <= 0:
            return
        node = cloud[-1] if cloud else onprem[-1]
        # From here the real agent answers this node's probe targets.
        with self.lock:
            self.real_agent_node = node
        pods = self.api.get(f"/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dterway-hybrid-agent"
                            f"&fieldSelector=spec.nodeName%3D{node}")["items"]
        if not pods:
            raise BenchError(f"no agent pod on {node}")
        pod = pods[0]["metadata"]
        token = self.kubectl("create", "token", "terway-hybrid-agent", "--namespace", NS, "--duration", "3600s",
                             "--bound-object-kind", "Pod", "--bound-object-name", pod["name"],
                             "--bound-object-uid", pod["uid"]).strip()
        server = open(os.path.join(self.dir, "server")).read().strip()
        kubeconfig = os.path.join(self.dir, "agent.kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write(f"apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n"
                    f"    certificate-authority: {self.dir}/pki/ca.crt\nusers:\n- name: sa\n  user:\n"
                    f"    token: {token}\ncontexts:\n- name: test\n  context: {{cluster: test, user: sa}}\n"
                    "current-context: test\n")
        ns = f"thscale-{os.getpid()}"
        run("ip", "netns", "add", ns)
        self.cleanup.append(lambda: run("ip", "netns", "del", ns, check=False))
        run("ip", "-n", ns, "link", "set", "lo", "up")
        root = os.path.join(self.dir, "agent-root")
        os.makedirs(os.path.join(root, "etc/cni/net.d"), exist_ok=True)
        os.makedirs(os.path.join(root, "proc/sys/net/ipv4"), exist_ok=True)
        with open(os.path.join(root, "proc/sys/net/ipv4/ip_forward"), "w") as f:
            f.write("1\n")
        # The ECS metadata service, so the cloud node's checks pass.
        meta = os.path.join(self.dir, "ecs-metadata")
        os.makedirs(os.path.join(meta, "latest/meta-data"), exist_ok=True)
        with open(os.path.join(meta, "latest/meta-data/instance-id"), "w") as f:
            f.write("i-bench0000000000000")
        exec_ns = ["ip", "netns", "exec", ns]
        for args, name in (
            ([*exec_ns, sys.executable, "-m", "http.server", "8100", "--bind", "127.0.0.1", "--directory", meta],
             "ecs-metadata"),
            ([*exec_ns, "socat", f"TCP-LISTEN:{self.api.port},bind=127.0.0.1,fork,reuseaddr",
              f"UNIX-CONNECT:{self.dir}/api.sock"], "agent-bridge"),
        ):
            p = Proc(args, os.path.join(self.dir, f"{name}.log"))
            self.cleanup.append(p.stop)
        time.sleep(0.5)
        env = dict(os.environ, KUBECONFIG=kubeconfig, NODE_NAME=node, RUST_LOG="info")
        agent = Proc([*exec_ns, self.args.agent, "run", "--host-root", root, "--metrics-addr", "127.0.0.1:9797",
                      "--ecs-metadata-url", "http://127.0.0.1:8100/latest/meta-data/instance-id",
                      "--debounce-ms", str(self.args.debounce_ms)],
                     os.path.join(self.dir, "agent.log"), env=env)
        self.cleanup.append(agent.stop)

        seen = collections.deque()
        cond = threading.Condition()

        def on_report(t, typ, obj):
            with cond:
                seen.append((t, obj["metadata"]["resourceVersion"], obj.get("status", {})))
                cond.notify_all()

        w = Watch(self.api, f"/apis/{GROUP}/nodenetworkreports?fieldSelector=metadata.name%3D{node}", on_report)
        w.start()
        self.cleanup.append(w.stop.set)
        w.synced.wait(30)

        def next_report(after_rv, pred, timeout):
            deadline = time.time() + timeout
            with cond:
                while True:
                    for t, rv, st in seen:
                        if rv != after_rv and pred(st):
                            return t, rv, st
                    left = deadline - time.time()
                    if left <= 0 or agent.p.poll() is not None:
                        raise BenchError(f"no report update on {node} within {timeout} s:\n{agent.tail()}")
                    cond.wait(left)

        # The agent's first write replaces the generated report.
        _, rv, st = next_report(None, lambda s: s.get("lastDetected") != "2026-11-30T08:00:00Z", 60)
        log(f"agent on {node} wrote its report: {st.get('scenario')}/{st.get('plugin')} ready={st.get('ready')}")
        time.sleep(2)
        with cond:
            rv = seen[-1][1]
            seen.clear()
        samples = []
        for i in range(self.args.agent_samples):
            add = i % 2 == 0
            t0 = time.time()
            if add:
                run(*exec_ns, "ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472")
            else:
                run(*exec_ns, "ip", "link", "del", "flannel.1")
            want_stale = add
            t, rv, st = next_report(rv, lambda s: bool(s.get("stale")) == want_stale, 30)
            samples.append(t - t0)
            with cond:
                seen.clear()
            time.sleep(0.5)
        samples.sort()
        self.audit.drain(time.time())
        agent_ev = self.audit.between(0, time.time(), user=AGENT_USER)
        self.result["agent"] = {
            "node": node, "debounce_ms": self.args.debounce_ms, "samples": len(samples),
            "p50_s": round(pct(samples, 50), 3), "p99_s": round(pct(samples, 99), 3),
            "min_s": round(samples[0], 3), "max_s": round(samples[-1], 3),
            "mean_s": round(statistics.mean(samples), 3),
            "agent_requests": categorize([e for e in agent_ev if not e["ua"].startswith("kubectl")]),
        }
        log(f"agent: {self.result['agent']}")


def pct(sorted_values, p):
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def table(res: dict) -> str:
    rows = []
    c = res.get("converge", {})
    n = res["nodes"]
    if c:
        rows.append((f"{n} nodes: last report -> every node labelled", f"{c['last_report_to_labelled_s']:.2f} s",
                     f"<= 30 s: {verdict(c['last_report_to_labelled_s'] <= 30)}"))
        rows.append(("  reports written (2 SSA each)", f"{c['reports_seconds']:.1f} s ({c['report_rate_per_s']}/s)",
                     ""))
        rows.append(("  last report -> TerwayRollout counts every node", f"{c['last_report_to_status_s']:.2f} s",
                     ""))
        req = c["requests"]
        rows.append(("controller writes per node to converge (no Lease)", f"{c['writes_per_node']:.3f} "
                     f"({req.get('node_label_writes', 0)} labels, {req.get('probe_target_writes', 0)} probe targets, "
                     f"{req.get('rollout_status_writes', 0)} status, {req.get('event_writes', 0)} events; "
                     f"+{req.get('lease_writes', 0)} Lease)", ""))
        rows.append(("  but probe targets", f"{c['writes_per_node_but_targets']:.3f}",
                     f"<= 1.05: {verdict(c['writes_per_node_but_targets'] <= 1.05)}"))
        rows.append(("  node label writes per node (incl. start-up)",
                     f"{c['label_writes_per_node']:.3f} ({c['label_writes_per_node_incl_startup']:.3f})", ""))
        rows.append(("  probe-target writes per node with targets (report spec)",
                     f"{c['probe_target_writes_per_node_with_targets']:.3f} ({c['nodes_with_targets']} nodes; "
                     f"{c['probe_target_writes_per_node']:.3f} per node)", "floor 1"))
        paths = list(c.get("label_paths", {}).items())[:2]
        rows.append(("  label states of a node after the first report",
                     "; ".join(f"{k or '(none)'}: {v} nodes" for k, v in paths), ""))
        rows.append(("  controller reads/watches while converging",
                     f"{req.get('reads', 0)} / {req.get('watch', 0)}", ""))
    s = res.get("startup", {})
    if s:
        r = s["requests"]
        rows.append(("controller start-up, before any report", f"{s['seconds_to_quiet']:.2f} s, "
                     f"{r.get('node_label_writes', 0)} label writes, {r.get('requests', 0)} requests", ""))
    i = res.get("idle", {})
    if i:
        r = i["requests"]
        steady = r.get("writes", 0) - r.get("lease_writes", 0)
        rows.append((f"controller requests over {i['seconds']} s idle", f"{r.get('requests', 0)} "
                     f"({r.get('writes', 0)} writes: {r.get('lease_writes', 0)} lease, "
                     f"{r.get('event_writes', 0)} events, {r.get('node_label_writes', 0)} labels, "
                     f"{r.get('rollout_status_writes', 0)} status; {r.get('lease_reads', 0)} Lease reads, "
                     f"{r.get('reads', 0)} other reads, "
                     f"{r.get('watch', 0)} watches)",
                     f"0 writes but the Lease: {verdict(steady == 0)}"))
    if "controller_peak_rss_mib" in res:
        rows.append(("controller peak RSS (VmHWM)", f"{res['controller_peak_rss_mib']:.1f} MiB",
                     f"<= 150 MiB: {verdict(res['controller_peak_rss_mib'] <= 150)}"))
    ro = res.get("rollout", {})
    if ro:
        rows.append((f"Auto rollout, {ro['cloud_nodes']} cloud nodes, maxUnavailable {ro['max_unavailable']}",
                     f"{ro['waves']} waves, {ro['wall_s']:.1f} s", ""))
        if ro["wave_seconds"]:
            ws = ro["wave_seconds"]
            rows.append(("  wave duration min / median / max",
                         f"{min(ws):.1f} / {statistics.median(ws):.1f} / {max(ws):.1f} s", ""))
        rows.append(("  controller writes during the rollout", f"{ro['requests'].get('writes', 0)} "
                     f"({ro['requests'].get('node_label_writes', 0)} labels)", ""))
    a = res.get("agent", {})
    if a:
        goal = a["debounce_ms"] / 1000 + 0.5
        rows.append((f"agent: link change -> report on the server ({a['samples']} samples, "
                     f"--debounce-ms {a['debounce_ms']})", f"p50 {a['p50_s']:.3f} s, p99 {a['p99_s']:.3f} s",
                     f"<= {goal:.1f} s: {verdict(a['p99_s'] <= goal)}"))
    w = max(len(r[0]) for r in rows) if rows else 0
    v = max(len(r[1]) for r in rows) if rows else 0
    return "\n".join(f"{a.ljust(w)}  {b.ljust(v)}  {c}".rstrip() for a, b, c in rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=5000, help="kwok nodes in all (default 5000)")
    p.add_argument("--rollout-nodes", type=int, default=1000,
                   help="of which cloud nodes, rolled out in Auto mode (default 1000)")
    p.add_argument("--idle-seconds", type=float, default=300, help="idle window (default 300)")
    p.add_argument("--agent-samples", type=int, default=24, help="link changes timed (default 24)")
    p.add_argument("--debounce-ms", type=int, default=200, help="the real agent's --debounce-ms (default 200)")
    p.add_argument("--concurrency", type=int, default=16, help="load generator connections (default 16)")
    p.add_argument("--skip-rollout", action="store_true")
    p.add_argument("--node-grace", default="10m",
                   help="kube-controller-manager --node-monitor-grace-period (default 10m; 50s upstream)")
    p.add_argument("--node-lease-seconds", type=int, default=300,
                   help="kwok's --node-lease-duration-seconds (default 300; 40 in the tests): kwok renews each "
                        "node's Lease four times per duration, 500 writes a second for 5,000 nodes at 40 s")
    p.add_argument("--client-qps", type=int, default=200,
                   help="kube-controller-manager's and kube-scheduler's --kube-api-qps (default 200; 20 and 50 "
                        "upstream): the DaemonSet controller places thousands of agent pods in minutes, not half "
                        "an hour; the controller under test is not limited")
    p.add_argument("--controller", default=os.path.join(REPO, "target/release/terway-hybrid-controller"))
    p.add_argument("--agent", default=os.path.join(REPO, "target/release/terway-hybrid-agent"))
    p.add_argument("--dir", help="control plane directory (default: a new one under $TMPDIR, removed after)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("cluster-scale: run as root (it creates a network namespace)")
    for b in (args.controller, args.agent):
        if not os.access(b, os.X_OK):
            sys.exit(f"cluster-scale: {b} missing: cargo build --release -p terway-hybrid-controller "
                     "-p terway-hybrid-agent")
    if not 0 <= args.rollout_nodes <= args.nodes or args.rollout_nodes == args.nodes:
        sys.exit("cluster-scale: --rollout-nodes must be below --nodes (the scenario needs on-prem nodes)")
    for prog in ("socat", "ip"):
        if shutil.which(prog) is None:
            sys.exit(f"cluster-scale: {prog} is not installed")

    cp_dir = args.dir or tempfile.mkdtemp(prefix="th-cluster-scale-")
    keep = args.dir is not None
    bench = None
    started = False
    try:
        log(f"control plane in {cp_dir}")
        # Two shared cores cannot renew thousands of kwok Leases on time:
        # without a longer grace the node monitor takes every node NotReady
        # and its pods lose Ready for good (scripts/control-plane).
        run(CONTROL_PLANE, "up", cp_dir, "--owner", str(os.getpid()),
            env=dict(os.environ, TERWAY_HYBRID_NODE_GRACE=args.node_grace,
                     TERWAY_HYBRID_NODE_LEASE_SECONDS=str(args.node_lease_seconds),
                     TERWAY_HYBRID_CLIENT_QPS=str(args.client_qps)))
        started = True
        bench = Bench(args, cp_dir)
        bench.audit.start()
        bench.install()
        bench.create_nodes()
        w = Watch(bench.api, "/api/v1/nodes", bench.on_node, meta_only=True)
        w.start()
        bench.cleanup.append(w.stop.set)
        w.synced.wait(60)
        bench.phase_converge()
        bench.phase_idle()
        if not args.skip_rollout:
            bench.phase_rollout()
        bench.phase_agent()
        bench.rss.sample()
        bench.result["controller_peak_rss_mib"] = round(bench.rss.hwm_kib / 1024, 1)
        bench.result["controller_rss_end_mib"] = round(bench.rss.rss_kib / 1024, 1)
        bench.result["controller_exit_code"] = bench.controller.stop(timeout=20)
    except BenchError as e:
        log(f"error: {e}")
        if bench and bench.controller:
            log(f"controller log tail:\n{bench.controller.tail(30)}")
        if bench:
            print(json.dumps(bench.result, indent=2), file=sys.stderr)
        sys.exit(1)
    finally:
        if bench:
            if bench.rss:
                bench.rss.stop.set()
            for fn in reversed(bench.cleanup):
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - clean up everything we can
                    log(f"cleanup: {e}")
            bench.audit.stop.set()
        if started or os.path.exists(os.path.join(cp_dir, "pids")):
            run(CONTROL_PLANE, "down", cp_dir, check=False)
        if not keep:
            shutil.rmtree(cp_dir, ignore_errors=True)

    res = bench.result
    res["load_average_at_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(table(res))


if __name__ == "__main__":
    main()
