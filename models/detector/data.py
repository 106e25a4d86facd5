"""YOLO-format folders (images/<split>, labels/<split>, data.yaml) loaded into memory, letterboxed."""

import ast
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def read_names(root):
    """Class names from data.yaml's `names:` as a list, an inline dict or an indented `i: name` map,
    the forms Ultralytics writes; parsed here so no YAML package is needed."""
    lines = (Path(root) / "data.yaml").read_text().splitlines()
    for k, line in enumerate(lines):
        if not line.startswith("names:"):
            continue
        rest = line[len("names:"):].strip()
        if rest:
            v = ast.literal_eval(rest) if rest[0] in "[{" else None
            return list(v.values()) if isinstance(v, dict) else list(v)
        names = {}
        for sub in lines[k + 1:]:
            if not sub.startswith((" ", "\t")) or ":" not in sub:
                break
            i, n = sub.split(":", 1)
            names[int(i.strip())] = n.strip().strip("'\"")
        return [names[i] for i in sorted(names)]
    raise ValueError(f"{root}/data.yaml has no names")


def letterbox(img, size):
    """Resize keeping aspect ratio, pad with grey 114 to size x size, as the engine does."""
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nh, nw = round(h * r), round(w * r)
    top, left = (size - nh) // 2, (size - nw) // 2
    out = np.full((size, size, 3), 114, np.uint8)
    out[top:top + nh, left:left + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, r, left, top


def load_split(root, split, size):
    """Returns (uint8 BGR images [n, size, size, 3], list of [k, 5] class, x1, y1, x2, y2 in pixels)."""
    root = Path(root)
    files = sorted(p for p in (root / "images" / split).glob("*") if p.suffix.lower() in IMAGE_EXTS)
    images = np.empty((len(files), size, size, 3), np.uint8)
    labels = []
    for i, f in enumerate(files):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        images[i], r, left, top = letterbox(img, size)
        txt = root / "labels" / split / (f.stem + ".txt")
        rows = np.loadtxt(txt, ndmin=2, dtype=np.float32) if txt.exists() and txt.stat().st_size else np.zeros((0, 5), np.float32)
        c, cx, cy, bw, bh = rows[:, :5].T
        labels.append(np.stack((c, (cx - bw / 2) * w * r + left, (cy - bh / 2) * h * r + top,
                                (cx + bw / 2) * w * r + left, (cy + bh / 2) * h * r + top), 1).astype(np.float32))
    return images, labels
