"""Generates many images in parallel and writes them as a YOLO-format folder."""

import functools
import multiprocessing as mp
import os
from pathlib import Path

import cv2
import numpy as np

from .render import CLASSES, render


def _one(i, seed, size, shifted):
    return render(seed, i, size, shifted)


def generate(seed, n, size=320, shifted=False, workers=None):
    """Returns (uint8 BGR images [n, size, size, 3], list of [k, 5] labels: class, x1, y1, x2, y2).

    Image i depends only on (seed, i, shifted), so any worker count gives the same set.
    """
    workers = workers or os.cpu_count()
    images = np.empty((n, size, size, 3), np.uint8)
    labels = []
    fn = functools.partial(_one, seed=seed, size=size, shifted=shifted)
    # fork shares the parent's imports; a worker's results come back in index order.
    # One OpenCV thread per worker: its own thread pool would oversubscribe the cores many times.
    # Set in the parent and inherited through fork; changing it in a forked child can hang.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            for i, (img, lab) in enumerate(pool.imap(fn, range(n), chunksize=32)):
                images[i] = img
                labels.append(lab)
    finally:
        cv2.setNumThreads(threads)
    return images, labels


def write_yolo(root, split, images, labels, names=CLASSES):
    """Writes images/<split>/NNNNNN.png and labels/<split>/NNNNNN.txt (class cx cy w h, 0..1)."""
    root = Path(root)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i, (img, lab) in enumerate(zip(images, labels)):
        h, w = img.shape[:2]
        cv2.imwrite(str(root / "images" / split / f"{i:06d}.png"), img)
        lines = [f"{int(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
                 for c, x1, y1, x2, y2 in lab]
        (root / "labels" / split / f"{i:06d}.txt").write_text("".join(l + "\n" for l in lines))
    yaml = root / "data.yaml"
    if not yaml.exists():
        yaml.write_text(f"path: .\ntrain: images/train\nval: images/val\nnames:\n"
                        + "".join(f"  {i}: {n}\n" for i, n in enumerate(names)))
