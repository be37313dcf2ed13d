#!/usr/bin/env python3
"""Load tests with oha, one scenario per call, against pixmirror on a real Garage.

    python3 benches/oha/run.py SCENARIO [--duration 15s] [--connections 8]

Scenarios (each also has its own script beside this one):
  l1-hit       one derivative, served from this instance's memory
  bucket-hit   stored derivatives, L1 off: every request reads the bucket
  cold         random widths, L1 off, no write-back: every request runs libvips
  mirror-miss  every request a new key: fetched from a local origin, stored, served
  zipf         a Zipf mix (s = 1.1) over 2,000 URLs (50 originals x 40 widths), caches empty

Prints one summary line: requests/s, p50, p99, errors (non-2xx or failed),
the server's CPU seconds and peak RSS (from /proc). Needs `cargo build
--release`, Garage (`make garage`) and oha (installed into
~/.cache/pixmirror-tools when missing). The images are the test fixtures, so
the numbers do not depend on ../shared.
"""
import argparse
import http.server
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import pmtools  # noqa: E402

TOOLS = os.environ.get("PIXMIRROR_TOOLS", os.path.expanduser("~/.cache/pixmirror-tools"))
IMAGES = ["sunset.jpg", "dragonfly.jpg", "rotated-exif6.jpg", "gulp.png"]


def oha_binary():
    path = os.path.join(TOOLS, "bin", "oha")
    if not os.path.exists(path):
        subprocess.run(["cargo", "install", "oha", "--locked", "--root", TOOLS], check=True)
    return path


class Origin(http.server.BaseHTTPRequestHandler):
    """Any path: the same photo (a business API rendering on demand)."""
    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


def upload(base, prefix, names):
    """Originals reach the bucket through pixmirror's own mirror rule (as in a migration)."""
    for n in names:
        urllib.request.urlopen(f"{base}/{prefix}{n}", timeout=60).read()


def oha(urls_or_regex, a, regex=False, urls_file=None):
    cmd = [oha_binary(), "-z", a.duration, "-w", "-c", str(a.connections), "--no-tui", "--output-format", "json"]
    if urls_file:
        cmd += ["--urls-from-file", urls_file]
    elif regex:
        cmd += ["--rand-regex-url", urls_or_regex]
    else:
        cmd += [urls_or_regex]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def summarize(name, r, cpu, rss, cmd):
    s = r["summary"]
    codes = r.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    total = sum(codes.values()) + sum(r.get("errorDistribution", {}).values())
    p = r["latencyPercentiles"]
    print(f"{name:12s} {s['requestsPerSec']:8.1f} req/s  p50 {p['p50'] * 1000:7.2f} ms  "
          f"p99 {p['p99'] * 1000:7.2f} ms  errors {total - ok}  server {cpu:6.1f} CPU-s  "
          f"peak RSS {rss:5.0f} MB  ({cmd})")
    if total - ok:
        print(f"             errors: {codes} {r.get('errorDistribution', {})}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=["l1-hit", "bucket-hit", "cold", "mirror-miss", "zipf"])
    ap.add_argument("--duration", default="15s")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--binary", default=os.path.join(REPO, "target/release/pixmirror"))
    a = ap.parse_args()
    cmd = f"benches/oha/{a.scenario}.sh --duration {a.duration} --connections {a.connections}"
    work = tempfile.mkdtemp(prefix="pm-oha-")
    procs = []
    try:
        # Its own port: `make test` may run a Garage on the default one.
        g = pmtools.start_garage(os.path.join(work, "garage"),
                                 os.environ.get("PIXMIRROR_OHA_S3_PORT", "3930"))
        Origin.body = open(os.path.join(REPO, "tests/fixtures/sunset.jpg"), "rb").read()
        origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
        threading.Thread(target=origin.serve_forever, daemon=True).start()
        oport = origin.server_address[1]
        run = f"{a.scenario}-{int(time.time())}/"
        mirror = (f'[mirror]\nallow_private_networks = true\n[[mirror.rules]]\nprefix = "{run}"\n'
                  f'replace_prefix = ""\norigin = "http://127.0.0.1:{oport}/{{key}}"\n')
        l1_off = '[cache]\nmemory_bytes = "0"\n'
        if a.scenario == "l1-hit":
            body = pmtools.s3_toml(g) + mirror
        elif a.scenario == "bucket-hit":
            body = pmtools.s3_toml(g) + l1_off + '[derivatives]\nwrite = "sync"\n' + mirror
        elif a.scenario == "cold":
            body = pmtools.s3_toml(g) + l1_off + '[derivatives]\nstore = false\n' + mirror
        elif a.scenario == "mirror-miss":
            body = pmtools.s3_toml(g) + '[derivatives]\nstore = false\n' + mirror
        else:
            body = pmtools.s3_toml(g) + mirror
        cfg = os.path.join(work, "pixmirror.toml")
        open(cfg, "w").write('[server]\nlisten = "127.0.0.1:0"\nadmin_listen = "127.0.0.1:0"\n' + body)
        px, base, _ = pmtools.start_pixmirror(a.binary, cfg, log="warn,pixmirror=info",
                                              env={"MALLOC_ARENA_MAX": "2"})
        procs.append(px)
        names = [f"o{i:02d}-{IMAGES[i % len(IMAGES)]}" for i in range(50 if a.scenario == "zipf" else 1)]
        if a.scenario != "mirror-miss":
            upload(base, run, names)
        one = f"{base}/{run}{names[0]}?x-oss-process=image/resize,w_300/format,webp"
        if a.scenario in ("l1-hit", "bucket-hit"):
            urllib.request.urlopen(one, timeout=60).read()  # rendered (and stored) once
        cpu0 = pmtools.cpu_seconds(px.pid)
        if a.scenario in ("l1-hit", "bucket-hit"):
            r = oha(one, a)
        elif a.scenario == "cold":
            r = oha(f"{base}/{run}{names[0]}\\?x-oss-process=image/resize,w_(2[5-9][0-9]|3[0-4][0-9])/format,webp",
                    a, regex=True)
        elif a.scenario == "mirror-miss":
            r = oha(f"{base}/{run}new/[a-z]{{12}}[.]jpg", a, regex=True)
        else:
            urls = [f"{base}/{run}{n}?x-oss-process=image/resize,w_{w}/format,webp"
                    for n in names for w in range(200, 600, 10)]
            rnd = random.Random(7)
            weights = [1 / (i + 1) ** 1.1 for i in range(len(urls))]
            rnd.shuffle(urls)
            path = os.path.join(work, "urls.txt")
            open(path, "w").write("\n".join(rnd.choices(urls, weights, k=200_000)) + "\n")
            r = oha(None, a, urls_file=path)
        summarize(a.scenario, r, pmtools.cpu_seconds(px.pid) - cpu0,
                  pmtools.memory(px.pid)["VmHWM"] / 2**20, cmd)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=60)
        pmtools.stop_garage(os.path.join(work, "garage"))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
