"""The systemd unit's SystemCallFilter against the syscalls pixmirror really makes.

usage: syscalls.py PIXMIRROR_BINARY UNIT_FILE

Serves the test fixtures from a folder under strace -f, sends a mixed load
(every output format, rotate, blur, an original, a 404, a 400, metrics), stops
with SIGTERM (the drain), then checks every syscall made is allowed by the
unit's SystemCallFilter lines, expanded by `systemd-analyze syscall-filter`.
A syscall outside the filter would fail with EPERM in production.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import pmtools  # noqa: E402


def expand(name, cache={}):
    if name not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name],
                             capture_output=True, text=True, check=True).stdout
        calls = set()
        for line in out.splitlines()[1:]:
            t = line.strip()
            if not t or t.startswith("#"):
                continue
            calls |= expand(t) if t.startswith("@") else {t}
        cache[name] = calls
    return cache[name]


def unit_filter(unit):
    allowed = None
    for line in open(unit):
        m = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
        if not m:
            continue
        names = set()
        for n in m.group(2).split():
            names |= expand(n) if n.startswith("@") else {n}
        if m.group(1):
            allowed = (allowed or set()) - names
        else:
            allowed = (allowed or set()) | names
    return allowed


def main(binary, unit):
    allowed = unit_filter(unit)
    assert allowed, "the unit has no SystemCallFilter"
    work = tempfile.mkdtemp()
    try:
        bucket = os.path.join(work, "bucket", "s")
        os.makedirs(bucket)
        for f in ["sunset.jpg", "gulp.png", "rotated-exif6.jpg"]:
            shutil.copy(os.path.join("tests", "fixtures", f), bucket)
        # Video snapshots: FFmpeg's demuxers and decoders in-process (H.264, H.265).
        for codec, name in [("libx264", "clip.mp4"), ("libx265", "clip265.mkv")]:
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2",
                            "-c:v", codec, "-g", "25", "-pix_fmt", "yuv420p", os.path.join(bucket, name)],
                           check=True, stderr=subprocess.DEVNULL if codec == "libx265" else None)
        conf = os.path.join(work, "c.toml")
        open(conf, "w").write(
            '[server]\nlisten = "127.0.0.1:0"\nadmin_listen = "127.0.0.1:0"\n'
            f'[storage]\nkind = "fs"\nroot = "{work}/bucket"\n')
        trace = os.path.join(work, "trace")
        p, base, admin = pmtools.start_pixmirror(binary, conf, prefix=["strace", "-f", "-qq", "-o", trace])
        paths = [
            "/s/sunset.jpg?x-oss-process=image/resize,w_300/format,webp",
            "/s/gulp.png?x-oss-process=image/resize,w_120/format,avif",
            "/s/sunset.jpg?x-oss-process=image/rotate,45/format,png",
            "/s/rotated-exif6.jpg?x-oss-process=image/blur,r_3,s_2/format,jpg",
            "/s/gulp.png?x-oss-process=image/resize,w_64/format,gif",
            "/s/sunset.jpg?x-oss-process=image/info",
            # Text watermarks: fontconfig and Pango; an image watermark; the
            # encoders that run threads of their own (x265, libjxl).
            "/s/sunset.jpg?x-oss-process=image/watermark,text_5rC05Y2wIEFi,type_ZmFuZ3poZW5na2FpdGk,shadow_50,rotate_20",
            "/s/sunset.jpg?x-oss-process=image/watermark,image_cy9ndWxwLnBuZz94LW9zcy1wcm9jZXNzPWltYWdlL3Jlc2l6ZSxQXzIw,g_nw",
            "/s/gulp.png?x-oss-process=image/resize,w_64/format,heic",
            "/s/gulp.png?x-oss-process=image/resize,w_64/format,jxl",
            "/s/clip.mp4?x-oss-process=video/snapshot,t_1500,f_jpg,w_160",
            "/s/clip265.mkv?x-oss-process=video/snapshot,t_1500,f_png,m_fast",
            "/s/sunset.jpg", "/s/missing.jpg", "/s/sunset.jpg?x-oss-process=image/resize,w_0",
        ]
        codes = []
        try:
            for path in paths:
                try:
                    codes.append(urllib.request.urlopen(base + path, timeout=30).status)
                except urllib.error.HTTPError as e:
                    codes.append(e.code)
            urllib.request.urlopen(admin + "/metrics", timeout=10).read()
            assert codes == [200] * 13 + [404, 400], f"statuses {codes}"
        except BaseException:
            p.kill()  # strace, and with it the traced server
            raise
        tracee = int(open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()[0])
        os.kill(tracee, signal.SIGTERM)
        p.wait(timeout=60)
        used = set()
        for line in open(trace):
            m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
            if m:
                used.add(m.group(1))
        outside = sorted(used - allowed)
        print(f"syscalls: {len(used)} used, {len(allowed)} allowed, outside: {outside or 'none'}")
        sys.exit(1 if outside else 0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
