"""Checks of deploy/kubernetes that a schema cannot make: the pieces refer to each other and to
fnbox as it is. Run by ./validate (which first checks every manifest against the Kubernetes
schemas); with --fnbox PATH it also asks that binary which flags and variables `fnbox serve`
reads, and serves the ConfigMap's functions with it, laid out as the kubelet mounts them.

Prints one line per check and exits 1 on the first failure, naming the file and the field.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def ok(msg):
    print(f"ok   {msg}")


def load(name):
    docs = [d for d in yaml.safe_load_all((HERE / name).read_text()) if d]
    if len(docs) != 1:
        fail(f"{name}: expected one resource, found {len(docs)}")
    return docs[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fnbox", help="an fnbox binary to check the flags against and serve with")
    args = ap.parse_args()

    kust = load("kustomization.yaml")
    listed = kust["resources"]
    on_disk = sorted(p.name for p in HERE.glob("*.yaml") if p.name != "kustomization.yaml")
    for name in listed:
        if not (HERE / name).is_file():
            fail(f"kustomization.yaml: resources: {name} does not exist")
    extra = set(on_disk) - set(listed) - {"secret.example.yaml"}
    if extra:
        fail(f"kustomization.yaml: resources does not list {sorted(extra)}")
    ok(f"kustomization.yaml lists {len(listed)} resources, all present")

    dep, svc, hpa, pdb, cm, secret = (
        load(n)
        for n in (
            "deployment.yaml",
            "service.yaml",
            "hpa.yaml",
            "pdb.yaml",
            "configmap.yaml",
            "secret.example.yaml",
        )
    )
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    if dep["spec"]["selector"]["matchLabels"].items() - labels.items():
        fail("deployment.yaml: spec.selector.matchLabels does not match the pod's labels")
    for name, sel in (
        ("service.yaml: spec.selector", svc["spec"]["selector"]),
        ("pdb.yaml: spec.selector.matchLabels", pdb["spec"]["selector"]["matchLabels"]),
    ):
        if sel.items() - labels.items():
            fail(f"{name} {sel} does not select the Deployment's pods {labels}")
    ok("Service and PodDisruptionBudget select the Deployment's pods")

    (c,) = pod["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    target = svc["spec"]["ports"][0]["targetPort"]
    if target not in port_names:
        fail(f"service.yaml: targetPort {target!r} is not a port of the container {port_names}")
    listen = c["args"][c["args"].index("--listen") + 1]
    if listen != f"$(POD_IP):{port_names[target]}":
        fail(f"deployment.yaml: --listen {listen} is not the pod IP on the Service's port")
    ok(f"Service port {target} = container port {port_names[target]} = --listen {listen}")

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        if get["path"] != "/health" or get["port"] not in port_names:
            fail(f"deployment.yaml: {probe} is not GET /health on a container port")
    ok("startup, readiness and liveness probes: GET /health")

    ref = hpa["spec"]["scaleTargetRef"]
    if (ref["kind"], ref["name"]) != ("Deployment", dep["metadata"]["name"]):
        fail(f"hpa.yaml: scaleTargetRef {ref} is not the Deployment")
    (metric,) = hpa["spec"]["metrics"]
    if metric["resource"]["name"] != "cpu" or "cpu" not in c["resources"]["requests"]:
        fail("hpa.yaml scales on CPU: the container needs resources.requests.cpu")
    ok("HorizontalPodAutoscaler targets the Deployment, on CPU against its CPU request")

    env = {e["name"]: e for e in c["env"]}
    for name, e in env.items():
        key = e.get("valueFrom", {}).get("secretKeyRef")
        if key and (key["name"] != secret["metadata"]["name"] or key["key"] not in secret["stringData"]):
            fail(f"deployment.yaml: env {name} reads Secret {key}, which secret.example.yaml lacks")
    if env["FNBOX_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] != "metadata.name":
        fail("deployment.yaml: env FNBOX_POD_NAME is not the pod's name (downward API)")
    ok("Secret keys exist; podName from the downward API")

    # The functions: every volume item is a ConfigMap key; the function is the example verbatim.
    (vol,) = [v for v in pod["spec"]["volumes"] if "configMap" in v]
    if vol["configMap"]["name"] != cm["metadata"]["name"]:
        fail(f"deployment.yaml: volume {vol['name']} mounts ConfigMap {vol['configMap']['name']}")
    items = {i["key"]: i["path"] for i in vol["configMap"]["items"]}
    if set(items) != set(cm["data"]):
        fail(f"deployment.yaml: volume items {sorted(items)} != configmap.yaml keys {sorted(cm['data'])}")
    mount = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == vol["name"])
    config = c["args"][c["args"].index("--config") + 1]
    if config != f"{mount}/{items['fnbox.yaml']}":
        fail(f"deployment.yaml: --config {config} is not the mounted fnbox.yaml")
    for key, path in items.items():
        if "/" in path:
            fn, file = path.split("/", 1)
            example = ROOT / "examples" / fn / file
            if not example.is_file() or example.read_text() != cm["data"][key]:
                fail(f"configmap.yaml: {key} differs from examples/{fn}/{file}")
    ok("ConfigMap keys = mounted items; the function is examples/python-hello verbatim")

    grace = pod["spec"]["terminationGracePeriodSeconds"]
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    timeouts = [
        yaml.safe_load(v)["timeout"] for k, v in cm["data"].items() if k.endswith("function.yaml")
    ]
    # fnbox's own shutdown: in-flight invocations finish (each within its timeout), then 2 s for
    # the instance's processes after SIGTERM.
    need = pre_stop + max(timeouts) + 2
    if grace < need:
        fail(f"deployment.yaml: terminationGracePeriodSeconds {grace} < preStop {pre_stop} + timeout {max(timeouts)} + 2")
    ok(f"terminationGracePeriodSeconds {grace} >= preStop {pre_stop} + function timeout {max(timeouts)} + 2 s grace")

    if args.fnbox:
        check_with_fnbox(args.fnbox, c, cm, items)


def check_with_fnbox(fnbox, c, cm, items):
    out = subprocess.run([fnbox, "serve", "--help"], capture_output=True, text=True, check=True)
    flags = set(re.findall(r"--[a-z][a-z-]+", out.stdout))
    envs = set(re.findall(r"\[env: ([A-Z_]+)", out.stdout))
    for a in c["args"][1:]:
        if a.startswith("--") and a not in flags:
            fail(f"deployment.yaml: args: `fnbox serve` has no flag {a}")
    for e in c["env"]:
        if e["name"].startswith("FNBOX_") and e["name"] not in envs:
            fail(f"deployment.yaml: env {e['name']} is not read by `fnbox serve` (see fnbox serve --help)")
    ok("every flag and FNBOX_ variable of the container is one `fnbox serve` reads")

    # The ConfigMap laid out as the kubelet mounts it: files behind ..data symlinks.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        mount = tmp / "functions"
        real = mount / "..2026_01_01_00_00_00.000000000"
        for key, path in items.items():
            (real / path).parent.mkdir(parents=True, exist_ok=True)
            (real / path).write_text(cm["data"][key])
        (mount / "..data").symlink_to(real.name)
        for top in {p.split("/")[0] for p in items.values()}:
            (mount / top).symlink_to(f"..data/{top}")
        token = "k8s-check"
        env = dict(os.environ, FNBOX_TOKEN=token, FNBOX_POD_NAME="fnbox-5c9d7-check")
        env.pop("FNBOX_QUEUE", None)
        cmd = [fnbox, "serve", "--config", str(mount / "fnbox.yaml"), "--listen", "127.0.0.1:0",
               "--data-dir", str(tmp / "data")]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            addr = None
            deadline = time.monotonic() + 30
            lines = []
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip())
                m = re.search(r"listening on http://(\S+)", line)
                if m:
                    addr = m.group(1)
                    break
            if not addr:
                proc.kill()
                fail(f"fnbox serve on the ConfigMap did not come up: {lines} {proc.stderr.read()}")
            with urllib.request.urlopen(f"http://{addr}/health", timeout=10) as r:
                if r.status != 200:
                    fail(f"/health answered {r.status}")
            req = urllib.request.Request(
                f"http://{addr}/v2/local/fgs/functions/python-hello/invocations",
                data=b'{"name":"kubernetes"}',
                headers={"X-Auth-Token": token, "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=20) as r:
                body = json.loads(r.read())
            msg = json.loads(body["body"])["message"]
            if msg != "Hello, kubernetes!":
                fail(f"python-hello answered {body}")
            req = urllib.request.Request(f"http://{addr}/instances", headers={"X-Auth-Token": token})
            with urllib.request.urlopen(req, timeout=10) as r:
                pods = [i["pod_name"] for i in json.loads(r.read())]
            if pods != ["fnbox-5c9d7-check"]:
                fail(f"instances {pods}: expected the one instance named after the pod")
            ok(f"fnbox serve on the kubelet-style ConfigMap mount: /health 200 without token, "
               f"python-hello answered {msg!r}, podName {pods[0]}")
        finally:
            proc.terminate()
            try:
                code = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                fail("fnbox serve did not stop within 20 s of SIGTERM")
        if code != 0:
            fail(f"fnbox serve exited {code} on SIGTERM: {proc.stderr.read()}")
        ok("fnbox serve stopped on SIGTERM with exit 0")


if __name__ == "__main__":
    main()
