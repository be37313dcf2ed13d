"""Helpers shared by the Python checks and benchmarks (tests/ops, benches):
ports, Garage, starting pixmirror, reading a process's CPU and memory.

Import with: sys.path.insert(0, "<repo>/tests/support"); import pmtools
"""
import os
import re
import socket
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GARAGE = os.path.join(REPO, "tests", "support", "garage.sh")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_garage(work, port):
    """Garage in `work` on `port`; returns its PIXMIRROR_TEST_S3_* settings."""
    env = dict(os.environ, PIXMIRROR_TEST_S3_PORT=str(port))
    out = subprocess.run(["bash", GARAGE, "start", work], env=env,
                         capture_output=True, text=True, check=True).stdout
    return {k: v.strip("'\"") for k, v in re.findall(r"export (\w+)=(\S+)", out)}


def stop_garage(work):
    subprocess.run(["bash", GARAGE, "stop", work], capture_output=True)


def s3_toml(g):
    """The [storage] table for the Garage that start_garage returned."""
    return (f'[storage]\nkind = "s3"\nbucket = "{g["PIXMIRROR_TEST_S3_BUCKET"]}"\n'
            f'endpoint = "{g["PIXMIRROR_TEST_S3_ENDPOINT"]}"\nregion = "garage"\nforce_path_style = true\n'
            f'access_key_id = "{g["PIXMIRROR_TEST_S3_ACCESS_KEY"]}"\n'
            f'secret_access_key = "{g["PIXMIRROR_TEST_S3_SECRET_KEY"]}"\n')


def start_pixmirror(binary, conf, log="info", prefix=(), env=None):
    """`pixmirror serve --config conf` (under `prefix`, e.g. strace), with
    listen and admin_listen on port 0; returns (process, base URL, admin URL)
    read from its start-up log line. The rest of the log is drained."""
    import threading
    env = dict(os.environ, NO_COLOR="1", PIXMIRROR_LOG=log, **(env or {}))
    p = subprocess.Popen([*prefix, binary, "serve", "--config", conf],
                         stderr=subprocess.PIPE, text=True, env=env)
    for line in p.stderr:
        m = re.search(r" listen=(\S+) admin=(\S+)", line)
        if m:
            threading.Thread(target=p.stderr.read, daemon=True).start()
            return p, "http://" + m.group(1), "http://" + m.group(2)
    raise SystemExit(f"pixmirror did not start (exit {p.wait()})")


def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid):
    """{"VmRSS": bytes, "VmHWM": bytes} of a live process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out
