"""Cross-checks of rendered Kubernetes manifests that a schema cannot make.

usage: k8s_check.py RENDERED.yaml

kubernetes-validate --strict checks each object against its schema. This checks
that the objects fit together and keep the deployment contract:
- selectors (Service, PDB, NetworkPolicy, ServiceMonitor, spread) pick the pods;
- every named port exists;
- probes hit /readyz and /healthz on the admin port;
- the grace period outlasts preStop + server.shutdown_timeout (read from the
  ConfigMap's config.toml);
- the pod runs non-root with a read-only root filesystem;
- the ConfigMap holds config.toml and the pod mounts it where `serve` reads it;
- the HPA targets the Deployment on CPU;
- the ServiceAccount carries an IRSA role.
Each failure is printed; the exit status is the number of failures.
"""
import re
import sys
import tomllib

import yaml

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"FAIL {what}")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    m = re.fullmatch(r"(\d+)\s*(ms|s|m|h)", text.strip())
    return int(m.group(1)) * units[m.group(2)] if m else None


def main(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    want = ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ServiceAccount", "ServiceMonitor", "NetworkPolicy", "ConfigMap"]
    for kind in want:
        check(len(by_kind.get(kind, [])) == 1, f"exactly one {kind}")
    if failures:
        return
    dep = by_kind["Deployment"][0]
    svc = by_kind["Service"][0]
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    c = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}

    check(selects(dep["spec"]["selector"]["matchLabels"], labels), "Deployment selector picks its pods")
    check(selects(svc["spec"]["selector"], labels), "Service selector picks the pods")
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] in ports, f"Service port {p['name']} targets a container port")
    check({p["name"] for p in svc["spec"]["ports"]} >= {"http", "metrics"}, "Service has http and metrics ports")
    check(ports.get("metrics") != ports.get("http"), "metrics on its own port")

    pdb = by_kind["PodDisruptionBudget"][0]
    check(selects(pdb["spec"]["selector"]["matchLabels"], labels), "PDB picks the pods")
    np = by_kind["NetworkPolicy"][0]
    check(selects(np["spec"]["podSelector"]["matchLabels"], labels), "NetworkPolicy picks the pods")
    np_ports = {p["port"] for rule in np["spec"]["ingress"] for p in rule.get("ports", [])}
    check(np_ports >= {"http", "metrics"}, "NetworkPolicy admits http and metrics")
    admin_rules = [r for r in np["spec"]["ingress"] if any(p["port"] == "metrics" for p in r.get("ports", []))]
    check(all(r.get("from") for r in admin_rules), "the admin port is not open to everyone")
    for t in spec.get("topologySpreadConstraints", []):
        check(selects(t["labelSelector"]["matchLabels"], labels), f"spread on {t['topologyKey']} picks the pods")
    check({t["topologyKey"] for t in spec.get("topologySpreadConstraints", [])}
          >= {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, "spread over zones and hosts")

    sm = by_kind["ServiceMonitor"][0]
    check(selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]), "ServiceMonitor picks the Service")
    for e in sm["spec"]["endpoints"]:
        check(e["port"] in {p["name"] for p in svc["spec"]["ports"]}, "ServiceMonitor scrapes a Service port")
        check(e.get("path", "/metrics") == "/metrics", "ServiceMonitor path /metrics")

    rp, lp = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
    check(rp["path"] == "/readyz" and rp["port"] == "metrics", "readiness /readyz on the admin port")
    check(lp["path"] == "/healthz" and lp["port"] == "metrics", "liveness /healthz on the admin port")
    cm = by_kind["ConfigMap"][0]
    cfg = tomllib.loads(cm["data"]["config.toml"])
    shutdown = seconds(cfg.get("server", {}).get("shutdown_timeout", "25s"))
    check(shutdown is not None, "server.shutdown_timeout is a duration")
    shutdown = shutdown or 0
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    pre_s = int(pre[-1]) if pre[0] == "sleep" else 0
    grace = spec["terminationGracePeriodSeconds"]
    check(grace > pre_s + shutdown, f"grace {grace}s > preStop {pre_s}s + shutdown_timeout {shutdown}s")
    res = c["resources"]
    check("cpu" in res["requests"] and "memory" in res["requests"], "CPU and memory requests")
    check("memory" in res["limits"], "a memory limit (process.memory_budget = auto reads it)")

    psc, csc = spec["securityContext"], c["securityContext"]
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "non-root")
    check(csc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    check(csc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], "all capabilities dropped")
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    check(mounts.get("tmp") == "/tmp", "a writable /tmp for the mirror spool")

    check("config.toml" in cm["data"], "ConfigMap holds config.toml")
    vols = {v["name"]: v for v in spec["volumes"]}
    check(vols.get("config", {}).get("configMap", {}).get("name") == cm["metadata"]["name"],
          "the pod mounts the generated ConfigMap")
    check(mounts.get("config") == "/etc/pixmirror" and "/etc/pixmirror/config.toml" in c["args"],
          "serve reads the mounted config")

    hpa = by_kind["HorizontalPodAutoscaler"][0]
    ref = hpa["spec"]["scaleTargetRef"]
    check(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], "HPA targets the Deployment")
    check(any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]), "HPA on CPU")
    check(hpa["spec"]["minReplicas"] >= 2, "at least two replicas (the PDB allows one down)")

    sa = by_kind["ServiceAccount"][0]
    check(spec["serviceAccountName"] == sa["metadata"]["name"], "the pod uses the ServiceAccount")
    check(sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn", "").startswith("arn:aws:iam::"),
          "IRSA role annotation")
    ns = {d["metadata"].get("namespace") for d in docs}
    check(len(ns) == 1, f"one namespace for all objects ({ns})")


if __name__ == "__main__":
    main(sys.argv[1])
    print(f"k8s_check {sys.argv[1]}: {len(failures)} failure(s)")
    sys.exit(min(len(failures), 100))
