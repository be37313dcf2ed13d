#!/usr/bin/env python3
"""Can public URLs flood the bucket? (issue 13) 10,000 requests with random
widths, qualities and formats for 10 originals, against pixmirror on a real
Garage, once per write-back policy. Prints per policy: derivatives stored,
admission verdicts, and whether every response was correct (status, format,
width read from the image header).

    python3 benches/bucket/run.py [--requests 10000] [--concurrency 8]

Needs `cargo build --release` and Garage (`make garage`); the originals are
served to pixmirror's mirror rule by a local HTTP server, so they land in the
bucket the way a migration would put them there.
"""
import argparse
import concurrent.futures
import functools
import http.server
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import pmtools  # noqa: E402
from pmtools import free_port  # noqa: E402


def width_of(b):
    """The width in an image's header (PNG, JPEG, WebP), else None."""
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">I", b[16:20])[0]
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        kind = b[12:16]
        if kind == b"VP8 ":
            return struct.unpack("<H", b[26:28])[0] & 0x3FFF
        if kind == b"VP8L":
            return (struct.unpack("<I", b[21:25])[0] & 0x3FFF) + 1
        if kind == b"VP8X":
            return int.from_bytes(b[24:27], "little") + 1
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(b):
            if b[i] != 0xFF:
                i += 1
                continue
            m = b[i + 1]
            if m in (0xC0, 0xC1, 0xC2):
                return struct.unpack(">H", b[i + 7:i + 9])[0]
            i += 2 + struct.unpack(">H", b[i + 2:i + 4])[0]
    return None


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, "", e.read()


def metrics(admin):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics").read().decode()
    out = {}
    for m in re.finditer(r'^pixmirror_writeback_admission_total\{result="(\w+)"\} (\d+)', text, re.M):
        out[m.group(1)] = int(m.group(2))
    m = re.search(r'^pixmirror_store_writes_total\{result="ok"\} (\d+)', text, re.M)
    out["puts_ok"] = int(m.group(1)) if m else 0
    return out


def run_policy(a, g, origin_port, name, derivs, originals):
    port, admin = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="pm-bucket-")
    cfg = os.path.join(work, "c.toml")
    prefix = f"{name}-{int(time.time())}/"
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{admin}"\n'
                f'shutdown_timeout = "120s"\n'
                + pmtools.s3_toml(g) +
                f'[cache]\nmemory_bytes = "64MiB"\n'
                f'[derivatives]\n{derivs}\n'
                f'[mirror]\nallow_private_networks = true\n[[mirror.rules]]\nprefix = "{prefix}"\n'
                f'replace_prefix = ""\norigin = "http://127.0.0.1:{origin_port}/{{key}}"\n')
    env = dict(os.environ, PIXMIRROR_LOG="error")
    p = subprocess.Popen([a.binary, "serve", "--config", cfg], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=1)
                break
            except Exception:
                time.sleep(0.05)
        rnd = random.Random(42)
        fmts = ["jpg", "webp", "png"]
        jobs = []
        for _ in range(a.requests):
            o, w = rnd.choice(originals), rnd.randint(50, 1200)
            fmt, q = rnd.choice(fmts), rnd.choice([60, 70, 80, 90])
            jobs.append((o, w, fmt, q))

        def one(job):
            o, w, fmt, q = job
            url = (f"http://127.0.0.1:{port}/{prefix}{o}?x-oss-process=image/resize,w_{w},limit_0"
                   f"/format,{fmt}/quality,Q_{q}")
            status, ct, body = get(url)
            want = {"jpg": "image/jpeg", "webp": "image/webp", "png": "image/png"}[fmt]
            return status == 200 and ct == want and width_of(body) == w

        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.concurrency) as ex:
            ok = sum(ex.map(one, jobs))
        took = time.time() - t0
        distinct = len(set(jobs))
        m = metrics(admin)  # write = "sync": every admitted PUT has landed
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)
    return {"policy": name, "requests": a.requests, "distinct_urls": distinct, "correct": ok,
            "seconds": round(took, 1), "derivatives_stored": m.get("admitted", 0),
            "puts_ok": m.get("puts_ok", 0),
            "verdicts": {k: v for k, v in m.items() if k != "puts_ok"}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--images", default=os.path.join(REPO, "..", "shared", "images"))
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "pixmirror"))
    a = ap.parse_args()
    src = a.images if os.path.isdir(a.images) else os.path.join(REPO, "tests", "fixtures")
    originals_dir = tempfile.mkdtemp(prefix="pm-originals-")
    names = sorted(n for n in os.listdir(src) if n.lower().endswith((".jpg", ".png")))[:10]
    for n in names:
        shutil.copy(os.path.join(src, n), originals_dir)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=originals_dir)
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=origin.serve_forever, daemon=True).start()

    gdir = tempfile.mkdtemp(prefix="pm-garage-")
    g = pmtools.start_garage(gdir, free_port())
    print(f"originals: {names}", flush=True)
    policies = [
        ("cap-200", 'write = "sync"\nadmit = "always"\nmax_per_original = 200'),
        ("repeat", 'write = "sync"\nadmit = "repeat"\nadmit_hits = 2\nmax_per_original = 200'),
        ("no-cap", 'write = "sync"\nadmit = "always"\nmax_per_original = 0'),
    ]
    rows = []
    try:
        for name, derivs in policies:
            r = run_policy(a, g, origin.server_address[1], name, derivs, names)
            rows.append(r)
            print(r, flush=True)
    finally:
        pmtools.stop_garage(gdir)
        shutil.rmtree(gdir, ignore_errors=True)
        origin.shutdown()
        shutil.rmtree(originals_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
