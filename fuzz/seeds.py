#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Seeds come from the repository, regenerated on each run (nothing big is
committed): examples/ (the dumps), agent/testdata/snapshots/, the CNI configs
and subnet.env files of agent/tests/corpus/cases/, this machine's own
/proc/net/tcp{,6}, the unit tests' BIRD replies, and fuzz/seeds/<target>/
(small hand-written seeds and minimised findings). Usage: seeds.py ROOT OUT.
"""
import hashlib
import json
import os
import sys

import yaml

ROOT, OUT = sys.argv[1], sys.argv[2]

# dump_object: the kind selector byte of fuzz_targets/dump_object.rs.
KINDS = [
    ("v1", "Node"),
    ("terway-hybrid.io/v1alpha1", "NodeNetworkReport"),
    ("apps/v1", "DaemonSet"),
    ("v1", "Pod"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("operator.tigera.io/v1", "Installation"),
    ("terway-hybrid.io/v1alpha1", "TerwayRollout"),
]
MAX_ITEMS = 3  # whole-file seeds keep kubectl's layout but few items: fast to execute
counts = {}


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
    counts[target] = counts.get(target, 0) + 1


def files(sub, ext):
    base = os.path.join(ROOT, sub)
    for dirpath, _, names in sorted(os.walk(base)):
        for n in sorted(names):
            if n.endswith(ext):
                yield os.path.join(dirpath, n)


def to_yaml(docs):
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)


# ---- dumps: examples/*/ ----
objects = []
for path in files("examples", ""):
    text = open(path, "rb").read()
    if path.endswith(".json"):
        doc = json.loads(text)
        items = doc.get("items", []) if isinstance(doc, dict) else doc
        objects += items
        if isinstance(doc, dict) and "items" in doc:
            small = dict(doc, items=items[:MAX_ITEMS])
            put("dump_json", json.dumps(small, indent=2) + "\n")
            put("dump_json", json.dumps(items[:MAX_ITEMS]))  # a bare array
            put("dump_yaml", to_yaml([small]))
    elif path.endswith(".yaml"):
        docs = list(yaml.safe_load_all(text))
        objects += [d for d in docs if isinstance(d, dict)]
        put("dump_yaml", text)
        put("dump_json", "\n".join(json.dumps(d) for d in docs if d is not None))  # concatenated values

seen = set()
for obj in objects:
    key = (obj.get("kind"), json.dumps(obj.get("metadata", {}).get("labels"), sort_keys=True))
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    kind = (obj.get("apiVersion"), obj.get("kind"))
    if kind in KINDS:
        sel = KINDS.index(kind)
        body = json.dumps(rest)
        put("dump_object", bytes([sel]) + body[1:].encode())
        put("dump_object", bytes([0x80 | sel]) + to_yaml([rest]).encode())
        if kind == ("v1", "ConfigMap"):
            data = obj.get("data", {})
            put("eni_conf", data.get("eni_conf", "") + ("\0" + data["10-terway.conf"] if "10-terway.conf" in data else ""))
    if key in seen:
        continue
    seen.add(key)
    put("dump_json", json.dumps(obj, indent=2))
    put("dump_yaml", to_yaml([obj]))

# The Secret the loader reduces to key presence (base64 and <redacted:N> values).
secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "alibaba-addon-secret", "namespace": "kube-system"},
          "data": {"access-key-id": "QUtJRA==", "access-key-secret": "<redacted:12>"}}
put("dump_json", json.dumps(secret))
put("dump_yaml", to_yaml([secret]))
rest = {k: v for k, v in secret.items() if k not in ("apiVersion", "kind")}
put("dump_object", bytes([5]) + json.dumps(rest)[1:].encode())
put("dump_object", bytes([0x85]) + to_yaml([rest]).encode())

# ---- snapshots ----
for path in files("agent/testdata/snapshots", ".json"):
    put("snapshot_json", open(path, "rb").read())

# ---- CNI configs and subnet.env: agent/tests/corpus/cases/*.txt sections ----
for path in files("agent/tests/corpus/cases", ".txt"):
    section, lines, out = None, [], []
    for line in open(path, encoding="utf-8").read().splitlines() + ["=== end"]:
        if line.startswith("=== "):
            if section:
                out.append((section, "\n".join(lines) + "\n"))
            section, lines = line[4:].replace(" [added]", ""), []
        elif section:
            lines.append(line)
    for name, body in out:
        if name.startswith("cni "):
            put("cni_config", (b"\x01" if name.endswith(".conflist") else b"\x00") + body.encode())
        elif name == "subnet.env":
            put("subnet_env", body)

# ---- /proc/net/tcp: this machine's own tables ----
for name in ("tcp", "tcp6"):
    try:
        text = open("/proc/net/" + name, "rb").read()
        put("proc_net_tcp", b"\n".join(text.splitlines()[:40]) + b"\n")
    except OSError:
        pass

# ---- hand-written seeds (and findings) committed under fuzz/seeds/ ----
for target in sorted(os.listdir(os.path.join(ROOT, "fuzz/seeds"))):
    for path in files(os.path.join("fuzz/seeds", target), ""):
        put(target, open(path, "rb").read())

for target, n in sorted(counts.items()):
    print(f"  {target:15} {n:4} seeds")
