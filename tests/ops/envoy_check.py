"""Cross-checks of k8s/envoy (rendered) against k8s/base (rendered).

usage: envoy_check.py ENVOY_RENDERED.yaml BASE_RENDERED.yaml

There is no Envoy binary here (no container engine, no binary downloads), so
its configuration is checked for what the fleet depends on, not run:
- the route hashes on the request path and the cluster balances by that hash
  (RING_HASH or MAGLEV), so one URL always reaches one pod;
- the cluster resolves the headless Service (STRICT_DNS) on its http port;
- the headless Service has no cluster IP and selects the pixmirror server pods
  of the base, and its ports target ports the base's container has;
- the Deployment mounts the ConfigMap that holds envoy.yaml and listens on the
  port the listener binds; the Service targets it.
Each failure is printed; the exit status is the number of failures.
"""
import sys

import yaml

# The same failure list, check() and selector match as the base's checks.
from k8s_check import check, failures, selects


def main(envoy_path, base_path):
    docs = [d for d in yaml.safe_load_all(open(envoy_path)) if d]
    base = [d for d in yaml.safe_load_all(open(base_path)) if d]
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    envoy = yaml.safe_load(cm["data"]["envoy.yaml"])
    dep = next(d for d in docs if d["kind"] == "Deployment")
    svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "pixmirror-envoy")
    pods = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "pixmirror-pods")
    pm = next(d for d in base if d["kind"] == "Deployment")

    listener = envoy["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    for r in routes:
        hp = r["route"].get("hash_policy", [])
        check(any(h.get("header", {}).get("header_name") == ":path" for h in hp),
              "every route hashes on :path")
    cluster = next(c for c in envoy["static_resources"]["clusters"] if c["name"] == routes[0]["route"]["cluster"])
    check(cluster.get("lb_policy") in ("RING_HASH", "MAGLEV"), "the cluster balances by the hash")
    check(cluster.get("type") == "STRICT_DNS", "the cluster resolves every pod address")
    ep = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    check(ep["address"] == pods["metadata"]["name"], "the cluster resolves the headless Service")
    http_port = next(p for p in pods["spec"]["ports"] if p["name"] == "http")
    check(ep["port_value"] == http_port["port"], "the cluster uses the headless Service's http port")

    check(pods["spec"].get("clusterIP") == "None", "pixmirror-pods is headless")
    labels = pm["spec"]["template"]["metadata"]["labels"]
    check(selects(pods["spec"]["selector"], labels), "pixmirror-pods selects the pixmirror server pods")
    pm_ports = {p["name"] for p in pm["spec"]["template"]["spec"]["containers"][0]["ports"]}
    for p in pods["spec"]["ports"]:
        check(p["targetPort"] in pm_ports, f"pixmirror-pods port {p['name']} targets a pixmirror container port")

    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    cm_vols = {v["name"] for v in spec["volumes"] if v.get("configMap", {}).get("name") == cm["metadata"]["name"]}
    check(any(m["name"] in cm_vols and m["mountPath"] == "/etc/envoy" for m in c["volumeMounts"]),
          "the Deployment mounts the envoy ConfigMap at /etc/envoy")
    check("/etc/envoy/envoy.yaml" in c["args"], "envoy reads the mounted file")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports.get("http") == listener["address"]["socket_address"]["port_value"],
          "the container port is the listener's")
    check(all(p["targetPort"] in ports for p in svc["spec"]["ports"]), "the Service targets the container")
    check(selects(svc["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"]),
          "the Service selects the envoy pods")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    print(f"envoy: {len(failures)} failure(s)")
    sys.exit(len(failures))
