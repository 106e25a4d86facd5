"""The bench page's input: one camera frame of the conveyor video (`models/synth/video.py`, seed 1)
at the moment a defective part stands still under the camera, as the kiosk inspects it.

    python webbench/camera_frame.py --out camera-frame.png     # 640x480 PNG

Every runtime gets this frame letterboxed into the model's input by our engine's letterbox.
"""

import argparse
import itertools
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models"))
from synth.video import Belt  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    # Two parts are enough: part 1 (defective) is centred in its still interval.
    belt = Belt(seed=a.seed, parts=2)
    first, end = belt.timeline.still_frames(1)
    frame, truth = next(itertools.islice(belt.frames(), (first + end) // 2, None))
    if not cv2.imwrite(a.out, frame):
        sys.exit(f"cannot write {a.out}")
    print(f"{frame.shape[1]}x{frame.shape[0]} frame {truth['frame']}, {len(truth['boxes'])} defects -> {a.out}")


if __name__ == "__main__":
    main()
