#!/usr/bin/env python3
"""`pixmirror warm` on a generated access log (issue 12).

Makes a bucket (fs store) of 50 originals (copies of the bundled samples under
distinct keys), writes a combined-format access log of LINES lines whose
targets follow a Zipf law (s = 1.1) over 50 originals x 20 sizes x 2 grammars,
mixed with plain original requests, a few 404s and bad parameters, then runs
`pixmirror warm` twice (the second run must render nothing) and prints both
summary lines.

    python3 benches/warm/run.py [LINES] [BINARY]
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINES = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
BINARY = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target/release/pixmirror")
SAMPLES = ["sunset.jpg", "dragonfly.jpg", "gulp.png", "rotated-exif6.jpg"]


def zipf_weights(n, s=1.1):
    return [1.0 / (i + 1) ** s for i in range(n)]


def main():
    rng = random.Random(42)
    work = tempfile.mkdtemp(prefix="pixmirror-warm-")
    bucket = os.path.join(work, "bucket")
    originals = []
    for i in range(50):
        sample = SAMPLES[i % len(SAMPLES)]
        key = f"photos/{i:02d}-{sample}"
        os.makedirs(os.path.dirname(os.path.join(bucket, key)), exist_ok=True)
        shutil.copy(os.path.join(ROOT, "tests/fixtures", sample), os.path.join(bucket, key))
        originals.append(key)
    sizes = [80 + 40 * i for i in range(20)]
    targets = []
    for key in originals:
        for w in sizes:
            targets.append(f"/{key}?x-oss-process=image/resize,w_{w}/format,webp")
            targets.append(f"/{key}?imageMogr2/thumbnail/{w}x/format/webp")
    rng.shuffle(targets)
    weights = zipf_weights(len(targets))
    picks = rng.choices(targets, weights=weights, k=LINES)
    with open(os.path.join(work, "access.log"), "w") as f:
        for i, t in enumerate(picks):
            if i % 10 == 0:
                t = "/" + rng.choice(originals)  # an original, no processing
            elif i % 997 == 0:
                t = "/photos/missing.jpg?x-oss-process=image/resize,w_100"
            elif i % 1499 == 0:
                t = f"/{originals[0]}?x-oss-process=image/resize,w_0"
            f.write(f'198.51.100.{i % 250} - - [24/Nov/2026:10:{i // 600 % 60:02d}:{i // 10 % 60:02d} +0000] '
                    f'"GET {t} HTTP/1.1" 200 4096 "-" "Mozilla/5.0"\n')
    conf = os.path.join(work, "pixmirror.toml")
    with open(conf, "w") as f:
        f.write(f'[storage]\nkind = "fs"\nroot = "{bucket}"\n')
    for run in (1, 2):
        t0 = time.time()
        out = subprocess.run([BINARY, "warm", "--config", conf, os.path.join(work, "access.log")],
                             capture_output=True, text=True, check=True)
        print(f"run {run} ({time.time() - t0:.1f} s wall): {out.stdout.strip()}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
