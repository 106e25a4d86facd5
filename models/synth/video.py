"""A camera video of parts passing through the view on a conveyor, with per-frame ground truth.

The belt indexes: each part stops centred under the camera for an inspection moment, then the belt
moves one pitch and the next part comes in from the left while the last one leaves to the right.
Parts are drawn by the image generator's renderer (`lit_part`, `background`, `Camera`), every other
one with defects, and the ground truth is read from the same label maps that give its boxes.

    python -m synth.video --out linecheck-parts.y4m --seed 1     # writes the .y4m and a .json beside it

The video is YUV4MPEG2 (4:2:0, the format Chromium's fake camera reads), raw, so it is generated on
demand and never committed: 640x480 at 15 fps for 8 s is 120 frames, 55 MB.
"""

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from .render import BACKGROUNDS, CLASSES, Camera, boxes_of, background, cast_shadow, lit_part

F32 = np.float32


class Timeline:
    """Frame timing of an indexing belt: still for `still` frames, then a move of `move` frames."""

    def __init__(self, parts, still, move):
        self.parts, self.still, self.move = parts, still, move
        self.frames = parts * (still + move)

    def belt(self, frame):
        """(belt travel in pitches, index of the part held still under the camera or None)."""
        cycle, k = divmod(frame, self.still + self.move)
        if k < self.still:
            return float(cycle), cycle
        t = (k - self.still + 1) / self.move
        return cycle + t * t * (3 - 2 * t), None  # smoothstep: the belt starts and stops gently

    def still_frames(self, part):
        start = part * (self.still + self.move)
        return start, start + self.still


def part_canvas(seed, index, size, defective, shifted, defects=True):
    """The part's lit canvas turned to its orientation on the belt, and its soft shadow.

    A part meant to be defective whose drawn defects all got undone (too little visible) is redrawn
    from the next sub-seed, so the defective ones always carry at least one defect. `defects=False`
    gives the same part without its defects (for the checks).
    """
    for attempt in range(100):
        stream = [int(seed), int(index), int(shifted), 2, attempt]
        rng, drng = np.random.default_rng(stream), np.random.default_rng(stream + [1])
        part = lit_part(rng, drng, size, shifted, p_clean=0.0 if defective else 1.0)
        if bool(part.classes) == defective:
            break
    if not defects:
        rng, drng = np.random.default_rng(stream), np.random.default_rng(stream + [1])
        part = lit_part(rng, drng, size, shifted, defects=False)
    turn = cv2.getRotationMatrix2D(part.c, rng.uniform(-180, 180), 1.0)
    part.image = cv2.warpAffine(part.image, turn, (size, size), flags=cv2.INTER_LINEAR)
    part.mask = cv2.warpAffine(part.mask, turn, (size, size), flags=cv2.INTER_LINEAR)
    part.label = cv2.warpAffine(part.label, turn, (size, size), flags=cv2.INTER_NEAREST)
    part.shadow = cast_shadow(rng, part.mask, part.ldir, size / 320)
    return part


class Belt:
    """The parts of one video on their belt and background, and the camera above it.

    Parts sit one pitch (the frame width) apart, so two are never in the same place; part k is
    centred in its still interval. Parts 1, 3, ... are defective, 0, 2, ... clean.
    """

    def __init__(self, seed=1, width=640, height=480, fps=15, parts=5, still_s=1.0, move_s=0.6, shifted=False,
                 defects=True):
        if width % 2 or height % 2:
            raise ValueError(f"4:2:0 needs even frame sides, got {width}x{height}")
        self.timeline = Timeline(parts, round(still_s * fps), round(move_s * fps))
        if self.timeline.still < 1 or self.timeline.move < 1:
            raise ValueError(f"still ({still_s} s) and move ({move_s} s) must each last at least one frame at {fps} fps")
        self.seed, self.width, self.height, self.fps, self.shifted = seed, width, height, fps, shifted
        # The canvas's part spans 0.54-0.72 of its side as in the training images, so in a frame the
        # part takes about as many of the network's input pixels as it did there.
        self.size = 2 * round(0.57 * height)
        # parts + 1: the last move brings the next part in.
        self.parts = [part_canvas(seed, k, self.size, k % 2 == 1, shifted, defects) for k in range(parts + 1)]
        rng = np.random.default_rng([int(seed), 0, int(shifted), 3])
        self.strip = background(rng, BACKGROUNDS[shifted][0], height, width + parts * width)
        self.strip *= self.parts[0].light * 0.9  # one lamp over the belt
        self.camera = Camera(rng, self.size / 320)

    def describe(self):
        """The ground truth's header: sizes, timing and each part with its still interval."""
        parts = []
        for k, part in enumerate(self.parts):
            entry = {"part": k, "shape": part.shape, "material": part.material, "defective": bool(part.classes),
                     "defects": [CLASSES[c] for c in part.classes]}
            if k < self.timeline.parts:
                a, b = self.timeline.still_frames(k)
                entry["still_frames"] = [a, b]  # first, one past last
                entry["still_s"] = [round(a / self.fps, 4), round(b / self.fps, 4)]
            parts.append(entry)
        return {"seed": self.seed, "width": self.width, "height": self.height, "fps": self.fps,
                "frames": self.timeline.frames, "shifted": self.shifted, "classes": list(CLASSES), "parts": parts}

    def frames(self, camera=True):
        """Yields (BGR uint8 frame, ground truth dict) for every frame; `camera=False` leaves out
        blur, noise and JPEG (for the checks)."""
        w, h, size = self.width, self.height, self.size
        for f in range(self.timeline.frames):
            travel, centred = self.timeline.belt(f)
            shift = int(round(travel * w))
            x0 = self.timeline.parts * w - shift  # the frame's left edge on the strip
            img = self.strip[:, x0:x0 + w].copy()
            gt = {"frame": f, "time_s": round(f / self.fps, 4), "still": centred is not None,
                  "centred_part": centred, "parts_in_view": [], "boxes": []}
            for k, part in enumerate(self.parts):
                # Canvas corner in frame pixels: part k's centre is k pitches left of the centre, plus travel.
                left, top = w // 2 - k * w + shift - size // 2, h // 2 - size // 2
                fx0, fx1, fy0, fy1 = max(0, left), min(w, left + size), max(0, top), min(h, top + size)
                if fx0 >= fx1:
                    continue
                win = (slice(fy0 - top, fy1 - top), slice(fx0 - left, fx1 - left))
                region = img[fy0:fy1, fx0:fx1]
                mask = part.mask[win][..., None]
                region *= 1 - part.shadow[win][..., None]
                region[:] = region * (1 - mask) + part.image[win] * mask
                if (part.mask[win] > 0.5).any():
                    gt["parts_in_view"].append(k)
                for c, x1, y1, x2, y2 in boxes_of(part.label[win], part.classes):
                    gt["boxes"].append({"part": k, "class": CLASSES[int(c)],
                                        "box": [int(x1) + fx0, int(y1) + fy0, int(x2) + fx0, int(y2) + fy0]})
            yield self.camera.shoot(img, camera, frame=f), gt


def y4m_header(width, height, fps):
    return f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode()


def write(path, seed=1, width=640, height=480, fps=15, parts=5, still_s=1.0, move_s=0.6, shifted=False):
    """Writes PATH (y4m) and PATH with .json (ground truth); returns the ground truth."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    belt = Belt(seed, width, height, fps, parts, still_s, move_s, shifted)
    truth = belt.describe()
    truth["video"] = path.name
    truth["frame_truth"] = []
    with open(path, "wb") as f:
        f.write(y4m_header(width, height, fps))
        for img, gt in belt.frames():
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420).tobytes())  # planar Y, U, V
            truth["frame_truth"].append(gt)
    path.with_suffix(".json").write_text(json.dumps(truth, indent=1))
    return truth


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the .y4m to write; the ground truth goes beside it as .json")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--parts", type=int, default=5, help="parts inspected (each still once)")
    p.add_argument("--still", type=float, default=1.0, help="seconds each part stays centred")
    p.add_argument("--move", type=float, default=0.6, help="seconds the belt takes to move one part on")
    p.add_argument("--shifted", action="store_true", help="the shifted set's shapes, materials and mat")
    a = p.parse_args()
    truth = write(a.out, a.seed, a.width, a.height, a.fps, a.parts, a.still, a.move, a.shifted)
    size = Path(a.out).stat().st_size
    print(f"{truth['frames']} frames {a.width}x{a.height} at {a.fps} fps, {size / 1e6:.1f} MB -> {a.out}; "
          f"defective parts {[p['part'] for p in truth['parts'] if p['defective']]}")


if __name__ == "__main__":
    main()
