#!/usr/bin/env python3
"""Side-by-side benchmark of pixmirror and its peers (ipx, sharp, thumbor) on one machine.

Started by run.sh (which installs everything and passes the paths); runs each server alone
on 127.0.0.1, drives it with wrk, measures it from /proc and prints one table per scenario.
Needs numpy, Pillow and boto3 (the peers venv has them).
"""
import argparse
import concurrent.futures as cf
import csv
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
WEBP_Q = 80
FIXED_W = 300            # the request whose bytes and SSIM are reported
COLD_WMIN, COLD_WMAX = 250, 349
SWEEP_WIDTHS = range(COLD_WMIN, COLD_WMAX + 1, 5)  # output bytes are compared summed over these
ZIPF_N_ORIG, ZIPF_N_WIDTHS, ZIPF_S = 50, 20, 1.1
ZIPF_WIDTHS = [int(round(200 + i * (960 - 200) / (ZIPF_N_WIDTHS - 1))) for i in range(ZIPF_N_WIDTHS)]
ZIPF_SEQ_LEN = 300_000   # pre-generated requests; wrk wraps around if it gets further
SEED = 20240611

PROCS = []               # every process group started here, stopped on exit


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and /proc
class Proc:
    def __init__(self, name, argv, logfile, env=None, cwd=None):
        self.name = name
        self.logf = open(logfile, "ab")
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=e,
                                  cwd=cwd, start_new_session=True, stdin=subprocess.DEVNULL)
        self.pid = self.p.pid
        PROCS.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            for sig, wait in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(self.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.p.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # children left in the group (thumbor's forks) go too
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.logf.close()
        if self in PROCS:
            PROCS.remove(self)


def stop_all():
    for p in list(reversed(PROCS)):
        try:
            p.stop()
        except Exception as e:  # noqa: BLE001
            log(f"stopping {p.name}: {e}")


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def tree(roots):
    """roots and all their descendants (live processes)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat(d)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        if p in out or not os.path.exists(f"/proc/{p}"):
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    """utime+stime (+ reaped children's) of these processes, in seconds."""
    t = 0
    for p in pids:
        try:
            f = _stat(p)
            t += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        except (OSError, ValueError, IndexError):
            pass
    return t / CLK_TCK


def cpu_by_pid(pids):
    out = {}
    for p in pids:
        try:
            f = _stat(p)
            out[p] = (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / CLK_TCK
        except (OSError, ValueError, IndexError):
            pass
    return out


def hwm_mib(pids):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        t += int(line.split()[1])
        except OSError:
            pass
    return t / 1024


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=60, headers=None):
    """(status, headers, body); any HTTP status, never raises for HTTP errors."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_http(url, procs, timeout=60, ok=lambda st: True):
    t0 = time.time()
    while time.time() - t0 < timeout:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited during startup (see its log)")
        try:
            st, _, _ = http_get(url, timeout=2)
            if ok(st):
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} after {timeout}s")


# ---------------------------------------------------------------- image quality
def _gauss(n=11, sigma=1.5):
    x = np.arange(n) - (n - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filt(img, g):
    from numpy.lib.stride_tricks import sliding_window_view as sw
    a = sw(img, len(g), axis=0) @ g
    return sw(a, len(g), axis=1) @ g


def to_luma(im):
    """Pillow image -> float luma (BT.601), alpha composited over white."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    a = np.asarray(im.convert("RGB"), dtype=np.float64)
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def ssim(y1, y2):
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 .01, K2 .03)."""
    g = _gauss()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = _filt(y1, g), _filt(y2, g)
    s11 = _filt(y1 * y1, g) - mu1 * mu1
    s22 = _filt(y2 * y2, g) - mu2 * mu2
    s12 = _filt(y1 * y2, g) - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    return float(m.mean())


_REF_CACHE = {}


def reference_luma(path, size):
    """The same resize done in high quality: Pillow Lanczos from the full-size decode."""
    k = (path, size)
    if k not in _REF_CACHE:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA", "P"):
                im = im.convert("RGBA")
            else:
                im = im.convert("RGB")
            ref = im.resize(size, Image.LANCZOS, reducing_gap=None)
        _REF_CACHE[k] = to_luma(ref)
    return _REF_CACHE[k]


def judge_output(body, original):
    """bytes, format, size and SSIM of one server output vs the reference."""
    out = {"bytes": len(body), "format": None, "size": None, "ssim": None}
    try:
        im = Image.open(io.BytesIO(body))
        im.load()
    except Exception as e:  # noqa: BLE001
        out["error"] = f"undecodable output: {e}"
        return out
    out["format"] = im.format
    out["size"] = list(im.size)
    out["ssim"] = round(ssim(to_luma(im), reference_luma(original, im.size)), 4)
    return out


# ---------------------------------------------------------------- servers
class Server:
    """One running server (possibly several processes)."""

    def __init__(self, name, port, procs, url, ready, note="", admin=None):
        self.name, self.port, self.procs, self.url = name, port, procs, url
        self.ready, self.note, self.admin = ready, note, admin

    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def pids(self):
        return tree([p.pid for p in self.procs])

    def stop(self):
        for p in reversed(self.procs):
            p.stop()


class Ctx:
    def __init__(self, a, work):
        self.a, self.work = a, work
        self.logs = os.path.join(a.results, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.node_path = os.path.join(a.peers_dir, "node", "node_modules")
        self.venv = os.path.join(a.peers_dir, "venv")

    def logfile(self, name):
        return os.path.join(self.logs, f"{name}.log")


def start_pixmirror(ctx, tag, storage_toml, cache_toml, deriv_toml):
    port, admin = free_port(), free_port()
    cfg = os.path.join(ctx.work, f"pixmirror-{tag}.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{admin}"\n\n'
                f"[storage]\n{storage_toml}\n\n[cache]\n{cache_toml}\n\n[derivatives]\n{deriv_toml}\n")
    p = Proc("pixmirror", [ctx.a.pixmirror, "serve", "--config", cfg], ctx.logfile(f"pixmirror-{tag}"),
             env={"MALLOC_ARENA_MAX": "2", "RUST_LOG": os.environ.get("RUST_LOG", "warn")})
    s = Server("pixmirror", port, [p],
               lambda key, w: f"/{key}?x-oss-process=image/resize,w_{w}/format,webp/quality,Q_{WEBP_Q}",
               f"http://127.0.0.1:{admin}/healthz", admin=admin)
    wait_http(s.ready, s.procs, ok=lambda st: st == 200)
    return s


def pixmirror_cold(ctx, origdir):
    s = start_pixmirror(ctx, "cold", f'kind = "fs"\nroot = "{origdir}"', "memory_bytes = 0",
                        "store = false")
    s.note = "fs store, L1 off, no write-back"
    return s


def pixmirror_zipf(ctx, g):
    st = (f'kind = "s3"\nbucket = "images"\nregion = "garage"\nendpoint = "{g.s3}"\n'
          f'force_path_style = true\naccess_key_id = "{g.ak}"\nsecret_access_key = "{g.sk}"')
    s = start_pixmirror(ctx, "zipf", st, 'memory_bytes = "256MiB"', 'store = true\nwrite = "async"')
    s.note = "S3 (Garage), L1 256 MiB, coalescing, async write-back"
    return s


def node_proc(ctx, name, script, args, tag):
    env = {"NODE_PATH": ctx.node_path, "NODE_ENV": "production"}
    return Proc(name, ["node", os.path.join(HERE, "servers", script)] + args, ctx.logfile(f"{name}-{tag}"),
                env=env)


def ipx_cold(ctx, origdir):
    port = free_port()
    p = node_proc(ctx, "ipx", "ipx-server.mjs", [str(port), "fs", origdir], "cold")
    s = Server("ipx", port, [p], lambda key, w: f"/w_{w},f_webp,q_{WEBP_Q}/{key}",
               f"http://127.0.0.1:{port}/", note="1 node process, fs storage")
    wait_http(s.ready, s.procs)
    return s


def sharp_cold(ctx, origdir):
    port = free_port()
    p = node_proc(ctx, "sharp", "sharp-server.mjs", [str(port), origdir], "cold")
    s = Server("sharp (node:http)", port, [p], lambda key, w: f"/{key}?w={w}",
               f"http://127.0.0.1:{port}/", note="1 node process, reads files")
    wait_http(s.ready, s.procs)
    return s


def thumbor_conf(ctx, tag, extra):
    path = os.path.join(ctx.work, f"thumbor-{tag}.conf")
    with open(path, "w") as f:
        f.write("ALLOW_UNSAFE_URL = True\nENGINE = 'thumbor.engines.pil'\n"
                "PRESERVE_EXIF_INFO = False\nMAX_AGE = 86400\n" + extra)
    return path


THUMBOR_FILTERS = f"filters:format(webp):quality({WEBP_Q}):no_upscale()"


def thumbor_start(ctx, tag, conf, url, note):
    port = free_port()
    p = Proc("thumbor", [os.path.join(ctx.venv, "bin", "thumbor"), "-i", "127.0.0.1", "-p", str(port),
                         "-c", conf, "--processes", str(ctx.a.thumbor_processes), "-l", "error"],
             ctx.logfile(f"thumbor-{tag}"))
    s = Server(f"thumbor x{ctx.a.thumbor_processes}", port, [p], url,
               f"http://127.0.0.1:{port}/healthcheck", note=note)
    wait_http(s.ready, s.procs, ok=lambda st: st == 200)
    return s


def thumbor_cold(ctx, origdir):
    conf = thumbor_conf(ctx, "cold", f"LOADER = 'thumbor.loaders.file_loader'\n"
                                     f"FILE_LOADER_ROOT_PATH = '{origdir}'\n"
                                     "STORAGE = 'thumbor.storages.no_storage'\nRESULT_STORAGE = None\n")
    return thumbor_start(ctx, "cold", conf, lambda key, w: f"/unsafe/{w}x0/{THUMBOR_FILTERS}/{key}",
                         f"{ctx.a.thumbor_processes} forked processes on one port, file loader, no storages")


def thumbor_zipf(ctx, g):
    rs = os.path.join(ctx.work, "thumbor-result-storage")
    st = os.path.join(ctx.work, "thumbor-storage")
    shutil.rmtree(rs, ignore_errors=True)
    shutil.rmtree(st, ignore_errors=True)
    conf = thumbor_conf(ctx, "zipf", "LOADER = 'thumbor.loaders.http_loader'\n"
                                     "HTTP_LOADER_MAX_CLIENTS = 64\n"
                                     f"STORAGE = 'thumbor.storages.file_storage'\nFILE_STORAGE_ROOT_PATH = '{st}'\n"
                                     "RESULT_STORAGE = 'thumbor.result_storages.file_storage'\n"
                                     f"RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = '{rs}'\n"
                                     "RESULT_STORAGE_STORES_UNSAFE = True\n")
    host = f"localhost:{g.web_port}"
    return thumbor_start(ctx, "zipf", conf, lambda key, w: f"/unsafe/{w}x0/{THUMBOR_FILTERS}/{host}/{key}",
                         f"{ctx.a.thumbor_processes} processes; HTTP loader from Garage's website endpoint, "
                         "file result storage + file storage (originals) on")


def nginx_proc(ctx, tag, listen, upstream):
    d = os.path.join(ctx.work, f"nginx-{tag}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "tmp"))
    os.makedirs(os.path.join(d, "cache"))
    conf = os.path.join(d, "nginx.conf")
    t = os.path.join(d, "tmp")
    with open(conf, "w") as f:
        # as root, nginx's workers would switch to nobody, who cannot write under $HOME
        f.write(("user root;\n" if os.geteuid() == 0 else "") + f"""daemon off;
worker_processes {ctx.a.nginx_workers};
pid {d}/nginx.pid;
error_log {ctx.logfile(f"nginx-{tag}-error")} warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {t}/client; proxy_temp_path {t}/proxy; fastcgi_temp_path {t}/fastcgi;
  uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;
  proxy_cache_path {d}/cache levels=1:2 keys_zone=img:10m max_size=2g inactive=1h use_temp_path=off;
  upstream ipx {{ server {upstream}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{listen};
    location / {{
      proxy_pass http://ipx;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache img;
      proxy_cache_key $request_uri;
      proxy_cache_valid 200 1h;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 60s;
      proxy_read_timeout 60s;
      add_header X-Cache-Status $upstream_cache_status;
    }}
  }}
}}
""")
    return Proc("nginx", [ctx.a.nginx, "-p", d, "-c", conf, "-e", ctx.logfile(f"nginx-{tag}-error")],
                ctx.logfile(f"nginx-{tag}"))


def ipx_zipf(ctx, g):
    inner, port = free_port(), free_port()
    p = node_proc(ctx, "ipx", "ipx-server.mjs", [str(inner), "http", f"localhost:{g.web_port}"], "zipf")
    n = nginx_proc(ctx, "zipf", port, f"127.0.0.1:{inner}")
    s = Server("ipx + nginx cache", port, [p, n], lambda key, w: f"/w_{w},f_webp,q_{WEBP_Q}/o/{key}",
               f"http://127.0.0.1:{port}/",
               note="1 node process (HTTP storage from Garage's website endpoint) behind nginx "
                    f"proxy_cache ({ctx.a.nginx_workers} workers, proxy_cache_lock on)")
    wait_http(f"http://127.0.0.1:{inner}/", [p])
    wait_http(s.ready, s.procs)
    return s


COLD_SERVERS = {"pixmirror": pixmirror_cold, "ipx": ipx_cold, "sharp": sharp_cold, "thumbor": thumbor_cold}
ZIPF_SERVERS = {"pixmirror": pixmirror_zipf, "ipx": ipx_zipf, "thumbor": thumbor_zipf}


# ---------------------------------------------------------------- Garage
class Garage:
    """A private single-node Garage with an S3 API, a website endpoint and the admin API."""

    def __init__(self, ctx, tag):
        self.dir = os.path.join(ctx.work, f"garage-{tag}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "meta"))
        os.makedirs(os.path.join(self.dir, "data"))
        self.s3_port, self.rpc_port, self.web_port, self.admin_port = (free_port() for _ in range(4))
        self.s3 = f"http://127.0.0.1:{self.s3_port}"
        self.ak = "GK" + os.urandom(12).hex()
        self.sk = os.urandom(32).hex()
        self.conf = os.path.join(self.dir, "garage.toml")
        with open(self.conf, "w") as f:
            f.write(f"""metadata_dir = "{self.dir}/meta"
data_dir = "{self.dir}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{self.rpc_port}"
rpc_public_addr = "127.0.0.1:{self.rpc_port}"
rpc_secret = "{os.urandom(32).hex()}"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{self.s3_port}"
root_domain = ".s3.garage.localhost"
[s3_web]
bind_addr = "127.0.0.1:{self.web_port}"
root_domain = ".web.garage.localhost"
index = "index.html"
[admin]
api_bind_addr = "127.0.0.1:{self.admin_port}"
""")
        self.ctx = ctx
        self.proc = Proc("garage", [ctx.a.garage, "-c", self.conf, "server", "--single-node", "--default-bucket"],
                         ctx.logfile(f"garage-{tag}"),
                         env={"GARAGE_DEFAULT_ACCESS_KEY": self.ak, "GARAGE_DEFAULT_SECRET_KEY": self.sk,
                              "GARAGE_DEFAULT_BUCKET": "images", "RUST_LOG": "warn"})
        wait_http(self.s3 + "/", [self.proc], timeout=60)
        for i in range(50):
            if self.cli("bucket", "info", "images", check=False) == 0:
                break
            time.sleep(0.2)
        # website access, reachable as Host "localhost" (a global alias of the bucket)
        self.cli("bucket", "website", "--allow", "images")
        self.cli("bucket", "alias", "images", "localhost")

    def cli(self, *args, check=True):
        with open(os.path.join(self.dir, "setup.log"), "ab") as f:
            r = subprocess.run([self.ctx.a.garage, "-c", self.conf] + list(args), stdout=f, stderr=f)
        if check and r.returncode != 0:
            raise RuntimeError(f"garage {' '.join(args)} failed (see {self.dir}/setup.log)")
        return r.returncode

    def upload(self, files):
        import boto3
        from botocore.config import Config
        s3 = boto3.client("s3", endpoint_url=self.s3, region_name="garage", aws_access_key_id=self.ak,
                          aws_secret_access_key=self.sk,
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}))
        for key, path in files:
            with open(path, "rb") as f:
                s3.put_object(Bucket="images", Key=key, Body=f.read(), ContentType="image/jpeg")
        st, _, _ = http_get(f"http://127.0.0.1:{self.web_port}/{files[0][0]}", headers={"Host": "localhost"})
        if st != 200:
            raise RuntimeError(f"Garage website endpoint answers {st} for {files[0][0]}")

    def metrics(self):
        try:
            st, _, body = http_get(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=10)
        except OSError:
            return {}
        if st != 200:
            return {}
        out = {}
        for line in body.decode(errors="replace").splitlines():
            m = re.match(r'^(api_s3_request_counter|web_request_counter)\{([^}]*)\}\s+([0-9.e+]+)', line)
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            k = ("s3:" + labels.get("api_endpoint", "?")) if m.group(1).startswith("api") else \
                ("web:" + labels.get("method", "?"))
            out[k] = out.get(k, 0) + int(float(m.group(3)))
        return out

    def stop(self):
        self.proc.stop()


# ---------------------------------------------------------------- load runs
def wrk(ctx, server, script, args):
    a = ctx.a
    cmd = [a.wrk, "-t", str(a.threads), "-c", str(a.connections), "-d", f"{a.duration}s", "--timeout", "30s",
           "-s", os.path.join(HERE, "wrk", script), server.base(), "--"] + args
    env = dict(os.environ, PEERS_WRK_DIR=os.path.join(HERE, "wrk"))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.duration + 120)
    for line in r.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    raise RuntimeError(f"wrk gave no result: {r.stdout[-500:]} {r.stderr[-500:]}")


def warm(server, paths):
    """A few requests, 3 at a time (so every worker process of the server sees some).
    Fails when none succeeds: a server that only answers errors is not benchmarked."""
    def one(p):
        try:
            st, _, body = http_get(server.base() + p, timeout=120)
            return st, body
        except OSError as e:
            return 0, str(e).encode()
    with cf.ThreadPoolExecutor(3) as ex:
        res = list(ex.map(one, paths))
    if not any(200 <= st < 300 for st, _ in res):
        st, body = res[0]
        raise RuntimeError(f"warm-up: GET {paths[0]} -> {st}: {body[:300]!r}")
    return [st for st, _ in res]


def measured_run(ctx, server, script, args, extra_pids=()):
    pids0 = server.pids()
    c0 = cpu_by_pid(pids0)
    e0 = cpu_seconds(tree(extra_pids))
    res = wrk(ctx, server, script, args)
    pids1 = server.pids()
    c1 = cpu_by_pid(pids1)
    cpu = sum(c1.values()) - sum(v for p, v in c0.items() if p in c1)  # new processes count from 0
    res["cpu_s"] = round(cpu, 3)
    res["extra_cpu_s"] = round(cpu_seconds(tree(extra_pids)) - e0, 3)
    res["rss_mib"] = round(hwm_mib(pids1), 1)
    res["nprocs"] = len(pids1)
    dur = res["duration_us"] / 1e6
    res["rps"] = res["requests"] / dur if dur else 0
    res["req_per_cpu_s"] = res["requests"] / cpu if cpu > 0 else None
    res["errors"] = sum(res[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    return res


def run_cold(ctx, images, origdir, servers):
    rows = []
    for img in images:
        key = os.path.basename(img)
        orig = os.path.join(origdir, key)
        with Image.open(orig) as im:
            dims = im.size
        log(f"== cold: {key} {dims[0]}x{dims[1]}")
        outputs = {}  # server -> its w300 output, to compare pixmirror's with each peer's
        for name in servers:
            row = {"scenario": "cold", "image": key, "server": name}
            s = None
            try:
                s = COLD_SERVERS[name](ctx, origdir)
                row["server"], row["note"] = s.name, s.note
                rnd = random.Random(SEED)
                codes = warm(s, [s.url(key, rnd.randint(COLD_WMIN, COLD_WMAX)) for _ in range(6)])
                st, hdr, body = http_get(s.base() + s.url(key, FIXED_W), timeout=120)
                if st != 200:
                    raise RuntimeError(f"GET {s.url(key, FIXED_W)} -> {st}: {body[:200]!r}")
                row.update(judge_output(body, orig))
                outputs[row["server"]] = body
                row["sweep_bytes"] = sweep_bytes(s, key)
                row["warm_codes"] = codes
                tpl = s.url(key, "{W}")
                row.update(measured_run(ctx, s, "cold.lua", [tpl, str(COLD_WMIN), str(COLD_WMAX)]))
                log(f"   {s.name:<22} {row['rps']:8.1f} req/s  {row['cpu_s']:6.1f} CPU-s  "
                    f"err {row['errors']}  ssim {row['ssim']}")
            except Exception as e:  # noqa: BLE001
                row["error"] = str(e)
                log(f"   {name}: FAILED: {e}")
            finally:
                if s:
                    s.stop()
            rows.append(row)
            time.sleep(1)
        compare_with_peers(rows, key, outputs)
    return rows


def sweep_bytes(s, key):
    """The server's output bytes summed over SWEEP_WIDTHS (one size says little: which
    rounding pattern the encoder meets moves a 7 KB file by a few bytes)."""
    total = 0
    for w in SWEEP_WIDTHS:
        st, _, body = http_get(s.base() + s.url(key, w), timeout=120)
        if st != 200:
            raise RuntimeError(f"GET {s.url(key, w)} -> {st}: {body[:200]!r}")
        total += len(body)
    return total


def compare_with_peers(rows, key, outputs):
    """SSIM of pixmirror's w300 output against each peer's, and of the peers' outputs
    against each other (same size only): two lossy encodes of nearly the same pixels differ
    by the encoder's noise, and the peers among themselves show how much that is."""
    pm = [r for r in rows if r["image"] == key and r["server"] == "pixmirror"]
    if "pixmirror" not in outputs or not pm:
        return
    luma = {}
    for name, body in outputs.items():
        with Image.open(io.BytesIO(body)) as im:
            im.load()
            luma[name] = to_luma(im)

    def pair(x, y):
        a, b = luma[x], luma[y]
        return round(ssim(a, b), 4) if a.shape == b.shape else None

    peers = [n for n in outputs if n != "pixmirror"]
    pm[0]["ssim_vs_peers"] = {n: pair("pixmirror", n) for n in peers}
    # ipx and sharp run the same sharp build: their outputs are the same bytes.
    pm[0]["ssim_among_peers"] = {
        f"{x} / {y}": pair(x, y)
        for i, x in enumerate(peers) for y in peers[i + 1:]
        if outputs[x] != outputs[y]
    }


# ---------------------------------------------------------------- Zipf data
def zipf_originals(ctx, images):
    """50 originals of 1-3 MP cropped from the benchmark photos, JPEG q85 (made once, cached)."""
    d = os.path.join(ctx.a.peers_dir, f"zipf-originals-{SEED}")
    stamp = os.path.join(d, ".done")
    if not os.path.exists(stamp):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        rnd = random.Random(SEED)
        aspects = [(4, 3), (3, 2), (16, 9), (1, 1), (3, 4), (2, 3)]
        for i in range(ZIPF_N_ORIG):
            src = images[i % len(images)]
            with Image.open(src) as im:
                im = im.convert("RGB")
                W, H = im.size
                aw, ah = aspects[rnd.randrange(len(aspects))]
                cw = min(W, int(H * aw / ah))
                ch = int(cw * ah / aw)
                cw = int(cw * rnd.uniform(0.6, 1.0))
                ch = int(cw * ah / aw)
                x, y = rnd.randint(0, W - cw), rnd.randint(0, H - ch)
                crop = im.crop((x, y, x + cw, y + ch))
                mp = rnd.uniform(1.0, 3.0) * 1e6
                scale = min(1.0, (mp / (cw * ch)) ** 0.5)
                out = crop.resize((max(1, int(cw * scale)), max(1, int(ch * scale))), Image.LANCZOS)
                out.save(os.path.join(d, f"img-{i:02d}.jpg"), "JPEG", quality=85)
        open(stamp, "w").close()
    return [(f"zipf/img-{i:02d}.jpg", os.path.join(d, f"img-{i:02d}.jpg")) for i in range(ZIPF_N_ORIG)]


def zipf_sequence(ctx, keys):
    """1000 URLs (50 originals x 20 widths), ranked at random; a Zipf(s) request sequence."""
    urls = [(k, w) for k in keys for w in ZIPF_WIDTHS]
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(urls))
    ranked = [urls[i] for i in order]
    p = 1.0 / np.arange(1, len(ranked) + 1) ** ZIPF_S
    p /= p.sum()
    seq = rng.choice(len(ranked), size=ZIPF_SEQ_LEN, p=p) + 1
    ufile = os.path.join(ctx.work, "zipf-urls.txt")
    sfile = os.path.join(ctx.work, "zipf-seq.txt")
    with open(ufile, "w") as f:
        f.writelines(f"{k} {w}\n" for k, w in ranked)
    np.savetxt(sfile, seq, fmt="%d")
    top = np.bincount(seq, minlength=len(ranked) + 1)[1:]
    return ufile, sfile, {"distinct_urls": len(ranked), "seq_len": ZIPF_SEQ_LEN,
                          "top1_share": round(float(top[0] / ZIPF_SEQ_LEN), 4),
                          "top10_share": round(float(np.sort(top)[::-1][:10].sum() / ZIPF_SEQ_LEN), 4)}


def pixmirror_store_requests(s):
    try:
        st, _, body = http_get(f"http://127.0.0.1:{s.admin}/metrics", timeout=10)
    except OSError:
        return None
    if st != 200:
        return None
    ops, found = {}, False
    other = {}
    for line in body.decode(errors="replace").splitlines():
        m = re.match(r'^pixmirror_store_requests_total\{([^}]*)\}\s+([0-9.e+]+)', line)
        if m:
            found = True
            lab = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            ops[lab.get("op", "?")] = ops.get(lab.get("op", "?"), 0) + int(float(m.group(2)))
            continue
        m = re.match(r'^(pixmirror_(?:processed_total|coalesced_total|store_writes_total\{result="ok"\}|'
                     r'writeback_inline_total|busy_total))\s+([0-9.e+]+)', line)
        if m:
            other[m.group(1)] = int(float(m.group(2)))
    return {"store_requests": ops if found else None, "counters": other}


def run_zipf(ctx, images, servers):
    files = zipf_originals(ctx, images)
    ufile, sfile, info = zipf_sequence(ctx, [k for k, _ in files])
    log(f"== zipf: {info['distinct_urls']} URLs, s={ZIPF_S}, top URL {info['top1_share']:.1%} "
        f"and top 10 {info['top10_share']:.1%} of requests")
    rows = []
    for name in servers:
        if name not in ZIPF_SERVERS:
            continue
        row = {"scenario": "zipf", "image": f"{ZIPF_N_ORIG} originals x {ZIPF_N_WIDTHS} widths", "server": name}
        s = g = None
        try:
            g = Garage(ctx, name)
            g.upload(files)
            s = ZIPF_SERVERS[name](ctx, g)
            row["server"], row["note"] = s.name, s.note
            # warm-up on widths outside the 20 of the sequence, so no URL of it is cached
            row["warm_codes"] = warm(s, [s.url(files[i][0], 100 + i) for i in range(6)])
            gm0 = g.metrics()
            tpl = s.url("{KEY}", "{W}")
            row.update(measured_run(ctx, s, "zipf.lua", [tpl, ufile, sfile, str(ctx.a.threads)],
                                    extra_pids=[g.proc.pid]))
            row["garage_cpu_s"] = row.pop("extra_cpu_s")
            gm1 = g.metrics()
            d = {k: gm1.get(k, 0) - gm0.get(k, 0) for k in set(gm0) | set(gm1)}
            row["garage_requests"] = {k: v for k, v in sorted(d.items()) if v}
            if name == "pixmirror":
                time.sleep(0.5)
                row["pixmirror_metrics"] = pixmirror_store_requests(s)
            log(f"   {s.name:<22} {row['rps']:8.1f} req/s  {row['cpu_s']:6.1f} CPU-s  err {row['errors']}  "
                f"garage {row['garage_requests']}")
        except Exception as e:  # noqa: BLE001
            row["error"] = str(e)
            log(f"   {name}: FAILED: {e}")
        finally:
            if s:
                s.stop()
            if g:
                g.stop()
        rows.append(row)
        time.sleep(1)
    return rows, info


# ---------------------------------------------------------------- report
def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def table(headers, rows):
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(  # noqa: E731
        str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(cells)) + " |"
    out = [line(headers), "|" + "|".join(("-" * (x + 1) + ":") if i else ("-" * (x + 2))
                                         for i, x in enumerate(w)) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def base_cells(r):
    if "error" in r and "rps" not in r:
        return None
    return [fmt(r["rps"], ".1f"), fmt(r["p50_us"] / 1000, ".1f"), fmt(r["p99_us"] / 1000, ".1f"),
            str(r["errors"]), fmt(r["cpu_s"], ".1f"), fmt(r["req_per_cpu_s"], ".1f"), fmt(r["rss_mib"], ".0f")]


def ratio_line(rows):
    pm = [r for r in rows if r["server"] == "pixmirror" and "rps" in r]
    peers = [r for r in rows if r["server"] != "pixmirror" and "rps" in r]
    if not pm or not peers:
        return "pixmirror / best peer: n/a"
    pm = pm[0]
    b1 = max(peers, key=lambda r: r["rps"])
    b2 = max(peers, key=lambda r: r["req_per_cpu_s"] or 0)
    s = f"pixmirror / best peer: req/s {pm['rps'] / b1['rps']:.2f}x ({b1['server']})"
    if pm["req_per_cpu_s"] and b2["req_per_cpu_s"]:
        s += f", req/CPU-s {pm['req_per_cpu_s'] / b2['req_per_cpu_s']:.2f}x ({b2['server']})"
    return s


def bytes_line(rows):
    """pixmirror's summed output bytes against each peer's."""
    pm = next((r for r in rows if r["server"] == "pixmirror" and r.get("sweep_bytes")), None)
    peers = [r for r in rows if r["server"] != "pixmirror" and r.get("sweep_bytes")]
    if not pm or not peers:
        return "pixmirror's output bytes against each peer's: n/a"
    return (f"pixmirror's output bytes over {len(SWEEP_WIDTHS)} widths against each peer's: " + ", ".join(
        f"{r['server']} {pm['sweep_bytes'] / r['sweep_bytes'] - 1:+.2%}" for r in peers))


def reference_line(rows):
    """pixmirror's SSIM against the reference beside the best peer's: the quality
    comparison (two servers' outputs against each other say how alike they are, not
    which is right)."""
    pm = next((r for r in rows if r["server"] == "pixmirror" and r.get("ssim") is not None), None)
    peers = [r for r in rows if r["server"] != "pixmirror" and r.get("ssim") is not None]
    if not pm or not peers:
        return f"w{FIXED_W} SSIM against the reference: n/a"
    best = max(peers, key=lambda r: r["ssim"])
    return (f"w{FIXED_W} SSIM against the reference: pixmirror {pm['ssim']:.4f}, best peer "
            f"{best['ssim']:.4f} ({best['server']}), {pm['ssim'] - best['ssim']:+.4f}")


def report(a, meta, cold, zipf, zinfo):
    out = []
    p = out.append
    p(f"# pixmirror vs peers — {meta['date']}, {meta['cores']} cores, wrk {a.threads} threads / "
      f"{a.connections} connections, {a.duration} s per run, WebP q{WEBP_Q}")
    p("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    if cold:
        p("")
        p(f"## cold: a random width {COLD_WMIN}-{COLD_WMAX} per request (nothing cached, nothing coalesced)")
        hdr = ["server", "req/s", "p50 ms", "p99 ms", "errors", "CPU-s", "req/CPU-s", "peak RSS MiB",
               f"out bytes w{FIXED_W}", "SSIM",
               f"out bytes w{SWEEP_WIDTHS[0]}-{SWEEP_WIDTHS[-1]}/{SWEEP_WIDTHS.step}"]
        for img in dict.fromkeys(r["image"] for r in cold):
            rs = [r for r in cold if r["image"] == img]
            p("")
            dims = rs[0].get("source_dims", "")
            p(f"### {img} {dims}")
            trs = []
            for r in rs:
                c = base_cells(r)
                if c is None:
                    trs.append([r["server"], "FAILED: " + r["error"][:60]] + [""] * (len(hdr) - 2))
                else:
                    trs.append([r["server"]] + c + [str(r.get("bytes", "")), fmt(r.get("ssim"), ".4f"),
                                                    str(r.get("sweep_bytes", ""))])
            p(table(hdr, trs))
            p(ratio_line(rs))
            p(bytes_line(rs))
            p(reference_line(rs))
            vs = next((r.get("ssim_vs_peers") for r in rs if r["server"] == "pixmirror"), None)
            if vs:
                p(f"pixmirror's w{FIXED_W} output against each peer's, SSIM: " + ", ".join(
                    f"{k} {fmt(v, '.4f') if v is not None else 'n/a (other size)'}" for k, v in vs.items()))
            among = next((r.get("ssim_among_peers") for r in rs if r["server"] == "pixmirror"), None)
            if among:
                p(f"the peers' w{FIXED_W} outputs against each other, SSIM: " + ", ".join(
                    f"{k} {fmt(v, '.4f') if v is not None else 'n/a (other size)'}" for k, v in among.items()))
    if zipf:
        p("")
        p(f"## zipf: {zinfo['distinct_urls']} URLs ({ZIPF_N_ORIG} originals x {ZIPF_N_WIDTHS} widths "
          f"{ZIPF_WIDTHS[0]}-{ZIPF_WIDTHS[-1]}), s = {ZIPF_S}, originals in Garage, caches empty at the start "
          f"(top URL {zinfo['top1_share']:.1%}, top 10 {zinfo['top10_share']:.1%} of requests)")
        hdr = ["server", "req/s", "p50 ms", "p99 ms", "errors", "CPU-s", "req/CPU-s", "peak RSS MiB",
               "Garage CPU-s", "Garage req / 1000"]
        trs = []
        for r in zipf:
            c = base_cells(r)
            if c is None:
                trs.append([r["server"], "FAILED: " + r["error"][:60]] + [""] * (len(hdr) - 2))
                continue
            gr = r.get("garage_requests") or {}
            n = r["requests"] or 1
            gs = " ".join(f"{k.split(':')[1]} {v * 1000 / n:.1f}" for k, v in gr.items()) or "0"
            trs.append([r["server"]] + c + [fmt(r.get("garage_cpu_s"), ".1f"), gs])
        p(table(hdr, trs))
        p(ratio_line(zipf))
        for r in zipf:
            if r.get("note"):
                p(f"- {r['server']}: {r['note']}")
        pm = [r for r in zipf if r["server"] == "pixmirror" and "rps" in r]
        if pm:
            m = pm[0].get("pixmirror_metrics") or {}
            sr = m.get("store_requests")
            n = pm[0]["requests"] + len(pm[0].get("warm_codes", []))
            if sr:
                sr = {op: v for op, v in sorted(sr.items()) if v or op in ("GET", "HEAD", "PUT")}
                p(f"- pixmirror store requests per 1000 client requests (pixmirror_store_requests_total, "
                  f"{n} client requests incl. warm-up): " +
                  ", ".join(f"{op} {v * 1000 / n:.1f}" for op, v in sr.items()) +
                  "; counts seen: " + ", ".join(f"{op} {v}" for op, v in sr.items()))
            else:
                p("- pixmirror store requests per 1000 client requests: n/a "
                  "(pixmirror_store_requests_total not exported by this build)")
            if m.get("counters"):
                p("- pixmirror counters: " + ", ".join(f"{k} {v}" for k, v in m["counters"].items()))
    if cold:
        p("")
        p("notes: " + "; ".join(dict.fromkeys(f"{r['server']}: {r['note']}" for r in cold if r.get("note"))))
        p(f"CPU-s = utime+stime of all the server's processes during the load run; peak RSS = sum of VmHWM; "
          f"SSIM on luma vs a Pillow Lanczos resize of the original to the same size.")
    return "\n".join(out)


# ---------------------------------------------------------------- main
def versions(a):
    v = {}
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:  # noqa: BLE001
            return "?"
    v["pixmirror"] = (cmd([a.pixmirror, "--version"]) or "?").split("\n")[0]
    nm = os.path.join(a.peers_dir, "node", "node_modules")
    for pkg in ("ipx", "sharp"):
        try:
            with open(os.path.join(nm, pkg, "package.json")) as f:
                v[pkg] = json.load(f)["version"]
        except OSError:
            v[pkg] = "?"
    v["libvips (sharp)"] = cmd(["node", "-e", f"console.log(require('{nm}/sharp').versions.vips)"])
    v["thumbor"] = cmd([os.path.join(a.peers_dir, "venv", "bin", "python"), "-c",
                        "import thumbor, PIL; print(thumbor.__version__, '/ Pillow', PIL.__version__)"])
    v["node"] = cmd(["node", "--version"])
    v["nginx"] = subprocess.run([a.nginx, "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    v["wrk"] = cmd([a.wrk, "-v"]).split(" [")[0].replace("wrk ", "") or "?"
    if a.garage:
        v["garage"] = cmd([a.garage, "--version"]).split("\n")[0]
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers-dir", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--image-dir", required=True)
    ap.add_argument("--images", default="")
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scenario", default="all", choices=["cold", "zipf", "all"])
    ap.add_argument("--servers", default="pixmirror,ipx,sharp,thumbor")
    ap.add_argument("--thumbor-processes", type=int, default=2)
    ap.add_argument("--nginx-workers", type=int, default=2)
    ap.add_argument("--pixmirror", required=True)
    ap.add_argument("--wrk", default="wrk")
    ap.add_argument("--nginx", default="nginx")
    ap.add_argument("--garage", default="")
    ap.add_argument("--keep-work", action="store_true", help="keep configs, caches and Garage data")
    a = ap.parse_args()
    a.threads = max(1, min(a.threads, a.connections))
    servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    for s in servers:
        if s not in COLD_SERVERS:
            sys.exit(f"unknown server {s}; known: {', '.join(COLD_SERVERS)}")
    if "pixmirror" in servers and not os.access(a.pixmirror, os.X_OK):
        log(f"pixmirror binary {a.pixmirror} missing: leaving pixmirror out")
        servers.remove("pixmirror")

    os.makedirs(a.results, exist_ok=True)
    work = os.path.join(a.results, "work")
    os.makedirs(work, exist_ok=True)
    ctx = Ctx(a, work)

    # the selected images, copied side by side into one directory that every server reads
    names = [n.strip() for n in a.images.split(",") if n.strip()]
    images = [os.path.join(a.image_dir, n) for n in names]
    for p in images:
        if not os.path.isfile(p):
            sys.exit(f"no such image: {p}")
    origdir = os.path.join(work, "originals")
    os.makedirs(origdir, exist_ok=True)
    for p in images:
        shutil.copyfile(p, os.path.join(origdir, os.path.basename(p)))

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "versions": versions(a),
            "duration_s": a.duration, "connections": a.connections, "threads": a.threads,
            "images": names, "servers": servers, "webp_quality": WEBP_Q}
    cold, zipf, zinfo = [], [], {}
    try:
        if a.scenario in ("cold", "all"):
            cold = run_cold(ctx, images, origdir, servers)
            for r in cold:
                with Image.open(os.path.join(origdir, r["image"])) as im:
                    r["source_dims"] = f"{im.size[0]}x{im.size[1]}"
        if a.scenario in ("zipf", "all"):
            if not a.garage:
                log("garage not found: skipping the zipf scenario")
            else:
                all_ = [os.path.join(a.image_dir, n) for n in sorted(os.listdir(a.image_dir))]
                photos = [p for p in all_ if p.lower().endswith((".jpg", ".jpeg")) and _opens(p)] or \
                    [p for p in all_ if p.lower().endswith(".png") and _opens(p)]
                zipf, zinfo = run_zipf(ctx, photos, servers)
    finally:
        stop_all()

    text = report(a, meta, cold, zipf, zinfo)
    print(text)
    rows = cold + zipf
    with open(os.path.join(a.results, "results.json"), "w") as f:
        json.dump({"meta": meta, "zipf": zinfo, "rows": rows}, f, indent=1, default=str)
    cols = ["scenario", "image", "server", "rps", "p50_us", "p90_us", "p99_us", "max_us", "requests", "errors",
            "cpu_s", "req_per_cpu_s", "rss_mib", "nprocs", "bytes", "ssim", "sweep_bytes", "garage_cpu_s", "error"]
    with open(os.path.join(a.results, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    with open(os.path.join(a.results, "tables.md"), "w") as f:
        f.write(text + "\n")
    if not a.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    log(f"raw results: {a.results}/results.json, results.csv, tables.md; server logs in {a.results}/logs")


def _opens(p):
    try:
        with Image.open(p) as im:
            im.verify()
        return True
    except Exception:  # noqa: BLE001
        return False


if __name__ == "__main__":
    main()
