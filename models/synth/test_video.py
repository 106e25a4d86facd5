"""Checks of the conveyor video: python -m unittest synth.test_video (from models/)"""

import json
import tempfile
import unittest
from pathlib import Path

import numpy as np

from synth.video import Belt, write

SMALL = dict(seed=4, width=320, height=240, fps=10, parts=3, still_s=0.5, move_s=0.4)


class VideoTest(unittest.TestCase):
    def test_y4m_header_and_frames_have_their_sizes(self):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "belt.y4m"
            truth = write(path, **SMALL)
            data = path.read_bytes()
            truth_file = json.loads(path.with_suffix(".json").read_text())
        header = b"YUV4MPEG2 W320 H240 F10:1 Ip A1:1 C420jpeg\n"
        self.assertTrue(data.startswith(header))
        frame = len(b"FRAME\n") + 320 * 240 * 3 // 2
        self.assertEqual(truth["frames"], 3 * (5 + 4))
        self.assertEqual(len(data), len(header) + truth["frames"] * frame)
        for f in range(truth["frames"]):
            self.assertEqual(data[len(header) + f * frame:][:6], b"FRAME\n", f)
        self.assertEqual(len(truth_file["frame_truth"]), truth["frames"])
        self.assertEqual(truth_file["video"], "belt.y4m")

    def test_boxes_cover_the_defect_pixels(self):
        # Against the same belt without defects and camera effects, every changed pixel lies in a
        # box and every box holds a visible change, in every frame, moving or still.
        belt = Belt(**SMALL)
        twin = Belt(**SMALL, defects=False)
        outside, changed, boxes = 0, 0, 0
        for (img, gt), (clean, none) in zip(belt.frames(camera=False), twin.frames(camera=False)):
            self.assertEqual(none["boxes"], [])
            diff = np.abs(img.astype(int) - clean.astype(int)).max(-1) > 12
            inside = np.zeros_like(diff)
            for b in gt["boxes"]:
                x1, y1, x2, y2 = b["box"]
                self.assertTrue(0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240, gt)
                inside[max(0, y1 - 1):y2 + 1, max(0, x1 - 1):x2 + 1] = True
                self.assertGreater(diff[y1:y2, x1:x2].sum(), 0, (gt["frame"], b))
                boxes += 1
            outside += int((diff & ~inside).sum())
            changed += int(diff.sum())
        self.assertGreater(boxes, 0)
        self.assertLess(outside / changed, 0.01, (outside, changed))

    def test_still_intervals_hold_one_centred_part_that_is_defective_or_clean(self):
        belt = Belt(**SMALL)
        truth = belt.describe()
        frames = [gt for _, gt in belt.frames(camera=False)]
        self.assertEqual([p["defective"] for p in truth["parts"][:3]], [False, True, False])
        for part in truth["parts"][:3]:
            first, end = part["still_frames"]
            self.assertEqual(end - first, 5)
            for gt in frames[first:end]:
                self.assertTrue(gt["still"])
                self.assertEqual(gt["centred_part"], part["part"])
                self.assertEqual(gt["parts_in_view"], [part["part"]])
                self.assertEqual(bool(gt["boxes"]), part["defective"], gt)
                self.assertTrue(all(b["part"] == part["part"] for b in gt["boxes"]))
            self.assertFalse(frames[end]["still"])
        self.assertEqual(sum(gt["still"] for gt in frames), 15)

    def test_a_seed_reproduces_the_video(self):
        a = [img.tobytes() for img, _ in Belt(**SMALL).frames()]
        b = [img.tobytes() for img, _ in Belt(**SMALL).frames()]
        self.assertEqual(a, b)
        # Without sensor noise, still frames repeat and moving ones do not.
        scene = [img.tobytes() for img, _ in Belt(**SMALL).frames(camera=False)]
        self.assertEqual(scene[1], scene[2])
        self.assertNotEqual(scene[6], scene[7])
        other = next(Belt(**{**SMALL, "seed": 5}).frames())[0]
        self.assertNotEqual(a[0], other.tobytes())

    def test_odd_frame_sides_are_refused(self):
        with self.assertRaisesRegex(ValueError, "even"):
            Belt(width=321, height=240)


if __name__ == "__main__":
    unittest.main()
