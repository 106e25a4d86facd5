"""python -m synth --out DIR --n 2000 --seed 1 [--split val] [--shifted] [--size 320]"""

import argparse
import time

from .dataset import generate, write_yolo

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--out", required=True)
p.add_argument("--n", type=int, default=1000)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--size", type=int, default=320)
p.add_argument("--split", default="train")
p.add_argument("--shifted", action="store_true", help="materials, lighting, shapes unseen in training")
p.add_argument("--workers", type=int, default=None)
a = p.parse_args()
t = time.time()
images, labels = generate(a.seed, a.n, a.size, a.shifted, a.workers)
dt = time.time() - t
write_yolo(a.out, a.split, images, labels)
print(f"{a.n} images in {dt:.1f} s ({a.n / dt:.0f}/s), {sum(len(l) for l in labels)} defects -> {a.out}")
