#!/usr/bin/env python3
"""Memory under a burst (issue 9, items 2 and 4): N concurrent requests for huge
outputs from big sources, against pixmirror with a memory budget and without
one (a budget larger than the machine). Prints, per run: statuses, peak RSS
(VmHWM), RSS sampled at the end of the burst and after a pause.

    python3 benches/memory/run.py [--requests 200] [--budget 1GiB] [--pause 10]
"""
import argparse
import collections
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import pmtools  # noqa: E402
from pmtools import free_port  # noqa: E402


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except Exception:
        return "error"


def run(binary, images, budget, n, pause):
    work = tempfile.mkdtemp(prefix="pm-mem-")
    port, admin = free_port(), free_port()
    cfg = os.path.join(work, "c.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{admin}"\n'
                f'[storage]\nkind = "fs"\nroot = "{images}"\n[cache]\nmemory_bytes = 0\n'
                f'[derivatives]\nstore = false\n[process]\nmemory_budget = "{budget}"\n'
                f'queue = 1000\ntimeout = "60s"\n')
    env = dict(os.environ, MALLOC_ARENA_MAX="2", PIXMIRROR_LOG="error")
    p = subprocess.Popen([binary, "serve", "--config", cfg], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=1)
                break
            except Exception:
                time.sleep(0.05)
        start = pmtools.memory(p.pid)["VmRSS"]
        names = sorted(os.listdir(images))
        plans = ["resize,w_6000,limit_0/format,png", "resize,p_150,limit_0/format,webp",
                 "rotate,30/format,jpg", "resize,w_5000,limit_0/blur,r_3,s_2/format,png"]
        urls = [f"http://127.0.0.1:{port}/{names[i % len(names)]}?x-oss-process=image/"
                f"{plans[i % len(plans)]}" for i in range(n)]
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
            statuses = collections.Counter(ex.map(fetch, urls))
        took = time.time() - t0
        end = pmtools.memory(p.pid)
        time.sleep(pause)
        after = pmtools.memory(p.pid)
        return {"budget": budget, "statuses": dict(statuses), "seconds": round(took, 1),
                "rss_start_mib": start >> 20, "peak_mib": end["VmHWM"] >> 20,
                "rss_end_mib": end["VmRSS"] >> 20, f"rss_after_{pause}s_mib": after["VmRSS"] >> 20}
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--budget", default="1GiB")
    ap.add_argument("--pause", type=int, default=10)
    ap.add_argument("--images", default=os.path.join(REPO, "..", "shared", "images"))
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "pixmirror"))
    a = ap.parse_args()
    src = a.images if os.path.isdir(a.images) else os.path.join(REPO, "tests", "fixtures")
    images = tempfile.mkdtemp(prefix="pm-mem-img-")
    for name in os.listdir(src):
        if name.lower().endswith((".jpg", ".png")) and os.path.getsize(os.path.join(src, name)) > 200_000:
            shutil.copy(os.path.join(src, name), images)
    print(f"sources: {sorted(os.listdir(images))}", flush=True)
    for budget in (a.budget, "1TiB"):
        r = run(a.binary, images, budget, a.requests, a.pause)
        print(r, flush=True)
    shutil.rmtree(images, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
