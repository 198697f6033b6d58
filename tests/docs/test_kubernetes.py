# SPDX-License-Identifier: MIT
"""The Kubernetes example (dist/kubernetes/ssmd.yaml, docs/kubernetes.md)
without Kubernetes: its structure, then the daemon run with its arguments
and the probes' commands run against it.

Usage: test_kubernetes.py MANIFEST SSMD_EXE SSM_CTL_EXE

  structure  one ssmd StatefulSet (at least 2 replicas) and its headless
             Service (serviceName, selector = the pod labels,
             publishNotReadyAddresses); --node $(POD_NAME) with POD_NAME from
             metadata.name; --cluster naming every pod of the etcd
             StatefulSet by its stable name at the etcd Service's client
             port; the container ports = the Service's ports = the ports of
             --pub/--ingest/--control; both probes call ssm-ctl;
             terminationGracePeriodSeconds > 0; setHostnameAsFQDN; etcd with
             auto-compaction and a quota, an odd number of members
  run        ssmd started with the container's command and arguments
             ($(POD_NAME) = ssmd-0, tcp://*:PORT -> a free loopback port, the
             etcd URL -> a loopback port where nothing listens, then a real
             etcd when the binary is there): it starts (the arguments are
             valid), the liveness command succeeds, the readiness command
             fails while etcd is unreachable and succeeds once registered

Needs /usr/bin/python3 with python3-yaml (scripts/setup.sh installs it)."""
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

try:
    import yaml
except ImportError:
    sys.exit("test_kubernetes: no yaml module: install python3-yaml (scripts/setup.sh does)")

MANIFEST, SSMD, SSM_CTL = sys.argv[1:4]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


docs = [d for d in yaml.safe_load_all(open(MANIFEST)) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
sets = [d for d in docs if d["kind"] == "StatefulSet"]


def container_of(sts, name):
    cs = sts["spec"]["template"]["spec"]["containers"]
    return next((c for c in cs if c["name"] == name), cs[0])


sts = next((d for d in sets if container_of(d, "ssmd").get("command", [""])[0] == "ssmd"), None)
if sts is None:
    sys.exit(f"test_kubernetes: {MANIFEST}: no StatefulSet whose container runs ssmd")
etcd_sts = next((d for d in sets if container_of(d, "etcd").get("command", [""])[0] == "etcd"), None)
pod = sts["spec"]["template"]["spec"]
c = container_of(sts, "ssmd")
args = [str(a) for a in c.get("args", [])]


def opt(name):
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


# ---- structure ------------------------------------------------------------
check(isinstance(sts["spec"].get("replicas"), int) and sts["spec"]["replicas"] >= 2,
      f"ssmd replicas {sts['spec'].get('replicas')} >= 2 (one member may fail)")
svc = by.get(("Service", sts["spec"].get("serviceName")))
check(svc is not None, f"serviceName {sts['spec'].get('serviceName')!r} is a Service of the manifest")
labels = sts["spec"]["template"]["metadata"]["labels"]
check(sts["spec"]["selector"]["matchLabels"].items() <= labels.items(), "the StatefulSet's selector matches its pods")
if svc:
    check(svc["spec"].get("clusterIP") == "None", "the ssmd Service is headless (clusterIP None)")
    check(svc["spec"].get("selector", {}).items() <= labels.items() and svc["spec"].get("selector"),
          "the Service selects the ssmd pods")
    check(svc["spec"].get("publishNotReadyAddresses") is True,
          "publishNotReadyAddresses: a member's name resolves while it is not ready")
env = {e["name"]: e for e in c.get("env", [])}
check(opt("--node") == "$(POD_NAME)" and
      env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
      f"--node {opt('--node')} with POD_NAME from metadata.name (the stable pod name)")
cluster = opt("--cluster") or ""
check(cluster.startswith("etcd://"), f"--cluster {cluster!r} is an etcd:// URL")
if etcd_sts:
    en = etcd_sts["metadata"]["name"]
    esvc = by.get(("Service", etcd_sts["spec"].get("serviceName")))
    n_etcd = etcd_sts["spec"].get("replicas", 1)
    check(n_etcd % 2 == 1, f"etcd replicas {n_etcd}: odd (a majority survives one loss with 3)")
    cport = next((p["port"] for p in (esvc or {}).get("spec", {}).get("ports", []) if p.get("name") == "client"), None)
    want = [f"{en}-{i}.{etcd_sts['spec'].get('serviceName')}:{cport}" for i in range(n_etcd)]
    check(cluster[len("etcd://"):].split(",") == want, f"--cluster names every etcd pod: {want}")
    eargs = " ".join(container_of(etcd_sts, "etcd").get("args", []))
    check("--auto-compaction-mode=" in eargs and "--auto-compaction-retention=" in eargs,
          "etcd compacts its history (checkpoints rewrite their keys every period)")
    check("--quota-backend-bytes=" in eargs, "etcd's quota is set")
    peers = re.search(r"--initial-cluster=(\S+)", eargs)
    check(peers is not None and len(peers.group(1).split(",")) == n_etcd, "etcd's initial cluster lists every replica")
cports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
sports = {p["name"]: p.get("targetPort", p["port"]) for p in (svc or {}).get("spec", {}).get("ports", [])}
sports_p = {p["name"]: p["port"] for p in (svc or {}).get("spec", {}).get("ports", [])}
check(cports and cports == sports == sports_p, f"container ports {cports} == the Service's {sports_p}")
bound = {}
for name, flag in (("pub", "--pub"), ("ingest", "--ingest"), ("control", "--control")):
    m = re.fullmatch(r"tcp://\*:(\d+)", opt(flag) or "")
    check(m is not None, f"{flag} {opt(flag)!r} binds every interface (tcp://*:PORT)")
    bound[name] = int(m.group(1)) if m else None
check(bound == cports, f"the ports ssmd binds {bound} == the container ports")
for kind in ("livenessProbe", "readinessProbe"):
    cmd = c.get(kind, {}).get("exec", {}).get("command", [])
    check(bool(cmd) and (cmd[0] == "ssm-ctl" or (cmd[:2] == ["sh", "-c"] and "ssm-ctl" in cmd[2].split())),
          f"{kind} calls ssm-ctl: {cmd}")
tg = pod.get("terminationGracePeriodSeconds")
check(isinstance(tg, int) and tg > 0, f"terminationGracePeriodSeconds {tg} > 0 (SIGTERM revokes the lease)")
check(pod.get("setHostnameAsFQDN") is True, "setHostnameAsFQDN: the advertised endpoints resolve in the cluster")
check(int(opt("--checkpoint-s") or 0) > 0, "--checkpoint-s set (a failover resumes from a checkpoint)")
check(opt("--checkpoint-dir") is None or any(v.get("persistentVolumeClaim") for v in pod.get("volumes", [])),
      "a shared volume exactly when --checkpoint-dir is used")

# ---- run: the daemon with these arguments, the probes' commands -------------
tmp = tempfile.mkdtemp(prefix="ssmd-k8s-")
ports = {n: free_port() for n in bound}  # by the ports ssmd binds
ctl_ep = f"tcp://127.0.0.1:{ports['control']}"


def run_args(etcd_url):
    out = []
    for a in args:
        a = a.replace("$(POD_NAME)", "ssmd-0")
        m = re.fullmatch(r"tcp://\*:(\d+)", a)
        if m:  # loopback on this machine: nothing listens beyond it
            a = f"tcp://127.0.0.1:{ports[next(n for n, p in bound.items() if p == int(m.group(1)))]}"
        out.append(etcd_url if a == cluster else a)
    return out


def probe(kind):
    cmd = c[kind]["exec"]["command"]
    path = os.path.dirname(os.path.abspath(SSM_CTL)) + os.pathsep + os.environ.get("PATH", "")
    r = subprocess.run(cmd, env=dict(os.environ, PATH=path, SSMD_CONTROL=ctl_ep), capture_output=True, timeout=30)
    return r.returncode


def start(etcd_url):
    log = open(os.path.join(tmp, "ssmd.log"), "ab")
    return subprocess.Popen([SSMD, *run_args(etcd_url)], stderr=log, env=dict(os.environ, HOME=tmp))


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        proc.wait(15)


def until(fn, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if fn():
            return True
        time.sleep(0.2)
    return False


d = start(f"etcd://127.0.0.1:{free_port()}")  # nothing listens there
etcd = None
try:
    alive = until(lambda: d.poll() is not None or probe("livenessProbe") == 0, 20)
    check(d.poll() is None, "ssmd runs with the manifest's arguments")
    check(alive and d.poll() is None, "the liveness command succeeds against it")
    check(probe("readinessProbe") != 0, "the readiness command fails while etcd is unreachable")
    stop(d)
    etcd_bin = shutil.which("etcd") or ("/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None)
    if etcd_bin is None:
        print("skip the registered case: no etcd binary (scripts/setup.sh installs etcd-server)")
    else:
        cp, pp = free_port(), free_port()
        cu, pu = f"http://127.0.0.1:{cp}", f"http://127.0.0.1:{pp}"
        etcd = subprocess.Popen([etcd_bin, "--name", "k", "--data-dir", os.path.join(tmp, "etcd"),
                                 "--listen-client-urls", cu, "--advertise-client-urls", cu,
                                 "--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
                                 "--initial-cluster", f"k={pu}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d = start(f"etcd://127.0.0.1:{cp}")
        check(until(lambda: d.poll() is not None or probe("readinessProbe") == 0, 30) and d.poll() is None,
              "the readiness command succeeds once the daemon registered in etcd")
finally:
    stop(d)
    if etcd is not None:
        stop(etcd)
    if failures:
        print(open(os.path.join(tmp, "ssmd.log")).read()[-2000:])
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    sys.exit(f"test_kubernetes: {len(failures)} check(s) failed: " + "; ".join(failures))
print("test_kubernetes: every check passed (Kubernetes itself not run)")
