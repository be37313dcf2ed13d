"""The metrics and the dashboard against a real Prometheus.

usage: prometheus.py PIXMIRROR_BINARY

1. Serves the test fixtures (fs store) with a mirror rule to a local origin,
   under a mixed load: processed, memory and bucket hits, originals, 404, 400,
   format,auto, mirror fetches that succeed and that 404, video snapshots.
2. `promtool check metrics` on a live scrape: must print nothing.
3. Prometheus (Debian's) scrapes the admin port every second while the load
   runs; then every query of every panel of deploy/grafana/pixmirror.json,
   and every template variable, is asked through the HTTP API and must parse
   and return at least one finite sample.
"""
import http.server
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import pmtools  # noqa: E402

FIXTURES = ["sunset.jpg", "gulp.png", "rotated-exif6.jpg", "dragonfly.jpg"]


def get(url, headers=None, timeout=30):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_origin(root):
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=root, **k)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def start_pixmirror(binary, work, origin_port):
    bucket = os.path.join(work, "bucket", "s")
    os.makedirs(bucket)
    for f in FIXTURES:
        shutil.copy(os.path.join("tests", "fixtures", f), bucket)
    # A video for the snapshot panels (ffmpeg: run-tests.sh installs it).
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2",
                    "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                    os.path.join(bucket, "clip.mp4")], check=True)
    conf = os.path.join(work, "pixmirror.toml")
    open(conf, "w").write(f"""
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[storage]
kind = "fs"
root = "{work}/bucket"
[[mirror.rules]]
prefix = "m/"
origin = "http://127.0.0.1:{origin_port}/{{key}}"
replace_prefix = ""
""")
    return pmtools.start_pixmirror(binary, conf, log="warn,pixmirror=info")


def load(base, stop):
    n = 0
    while not stop.is_set():
        n += 1
        f = random.choice(FIXTURES)
        w = random.randint(40, 400)
        get(f"{base}/s/{f}?x-oss-process=image/resize,w_{w}/format,webp")
        get(f"{base}/s/{f}?x-oss-process=image/resize,w_100")  # memory after the first
        get(f"{base}/s/{f}?x-oss-process=image/resize,w_{w % 50 + 20}/format,auto",
            {"Accept": random.choice(["image/avif,image/webp", "image/webp", "*/*"])})
        get(f"{base}/s/{f}")
        get(f"{base}/s/missing-{n % 7}.jpg")
        get(f"{base}/s/{f}?x-oss-process=image/resize,w_0")
        get(f"{base}/m/{f}?x-oss-process=image/resize,w_{w}")
        get(f"{base}/m/gone-{n}.jpg")
        get(f"{base}/s/clip.mp4?x-oss-process=video/snapshot,t_{n % 2000},f_jpg,w_{w % 160 + 1}")


def check_metrics(admin):
    status, text = get(admin + "/metrics")
    assert status == 200
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    out = (r.stdout + r.stderr).decode().strip()
    print(f"promtool check metrics: exit {r.returncode}, {len(text.splitlines())} lines scraped"
          + (f"\n{out}" if out else ", clean"))
    return r.returncode == 0 and not out


def start_prometheus(work, admin):
    port = pmtools.free_port()
    conf = os.path.join(work, "prometheus.yml")
    target = admin.removeprefix("http://")
    open(conf, "w").write(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{os.path.abspath('deploy/prometheus/alerts.yml')}"]
scrape_configs:
  - job_name: pixmirror
    static_configs:
      - targets: ["{target}"]
""")
    p = subprocess.Popen(["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={work}/tsdb",
                          f"--web.listen-address=127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if get(url + "/-/ready", timeout=2)[0] == 200:
                return p, url
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("prometheus did not become ready:\n" + open(os.path.join(work, "prometheus.log")).read())


def query(prom, expr):
    status, body = get(prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    return status, json.loads(body)


def wait_for_scrapes(prom, n):
    for _ in range(600):
        _, r = query(prom, 'count_over_time(up{job="pixmirror"}[1m])')
        res = r.get("data", {}).get("result", [])
        if res and float(res[0]["value"][1]) >= n:
            return
        time.sleep(0.1)
    raise SystemExit(f"prometheus did not scrape {n} times")


def dashboard_queries():
    dash = json.load(open("deploy/grafana/pixmirror.json"))
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield p["title"], t["expr"]
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            yield f"variable {v['name']}", v["query"]["query"]


def resolve(expr):
    return (expr.replace("$__rate_interval", "10s").replace('"$job"', '".+"')
            .replace('"$instance"', '".+"'))


def check_dashboard(prom):
    failures = 0
    for title, expr in dashboard_queries():
        m = re.fullmatch(r"label_values\((.*), (\w+)\)", expr)
        if m:
            status, body = get(prom + "/api/v1/series?" + urllib.parse.urlencode({"match[]": resolve(m.group(1))}))
            series = json.loads(body).get("data", [])
            values = {s.get(m.group(2)) for s in series} - {None}
            ok = status == 200 and bool(values)
            print(f"{'ok  ' if ok else 'FAIL'} {title}: {sorted(values)}")
            failures += not ok
            continue
        status, r = query(prom, resolve(expr))
        res = r.get("data", {}).get("result", [])
        finite = [s for s in res if not math.isnan(float(s["value"][1]))]
        ok = status == 200 and r.get("status") == "success" and bool(finite)
        print(f"{'ok  ' if ok else 'FAIL'} {title}: {len(res)} series, {len(finite)} finite"
              + ("" if ok else f"\n     {resolve(expr)}\n     {r.get('error', '')}"))
        failures += not ok
    return failures


def main(binary):
    work = tempfile.mkdtemp()
    procs = []
    try:
        origin_root = os.path.join(work, "origin")
        os.makedirs(origin_root)
        for f in FIXTURES:
            shutil.copy(os.path.join("tests", "fixtures", f), origin_root)
        origin = start_origin(origin_root)
        px, base, admin = start_pixmirror(binary, work, origin.server_address[1])
        procs.append(px)
        stop = threading.Event()
        loader = threading.Thread(target=load, args=(base, stop), daemon=True)
        loader.start()
        prom, prom_url = start_prometheus(work, admin)
        procs.append(prom)
        wait_for_scrapes(prom_url, 12)
        metrics_ok = check_metrics(admin)
        failures = check_dashboard(prom_url)
        stop.set()
        loader.join(timeout=60)
        print(f"dashboard: {failures} quer(ies) without data; metrics {'clean' if metrics_ok else 'NOT clean'}")
        sys.exit(1 if failures or not metrics_ok else 0)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
