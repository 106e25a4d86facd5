"""Checks of the generator: python -m unittest discover -s models -p 'test_*.py'"""

import unittest

import cv2
import numpy as np

from synth import CLASSES, render
from synth.dataset import generate

N = 40


class SynthTest(unittest.TestCase):
    def test_labels_are_valid_boxes_inside_the_image(self):
        for shifted in (False, True):
            for i in range(N):
                img, lab = render(7, i, 320, shifted)
                self.assertEqual(img.shape, (320, 320, 3))
                self.assertEqual(img.dtype, np.uint8)
                for c, x1, y1, x2, y2 in lab:
                    self.assertIn(int(c), range(len(CLASSES)))
                    self.assertTrue(0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 320, (i, lab))

    def test_boxes_cover_the_defect_pixels(self):
        # Against the clean twin (same scene, no defects, no camera noise), every changed pixel lies
        # in a box, and every box holds a visible change.
        outside, changed = 0, 0
        for shifted in (False, True):
            for i in range(N):
                img, lab = render(11, i, 320, shifted, camera=False)
                twin, none = render(11, i, 320, shifted, defects=False, camera=False)
                self.assertEqual(len(none), 0)
                diff = np.abs(img.astype(int) - twin.astype(int)).max(-1) > 12
                inside = np.zeros_like(diff)
                for c, x1, y1, x2, y2 in lab.astype(int):
                    inside[max(0, y1 - 1):y2 + 1, max(0, x1 - 1):x2 + 1] = True
                    self.assertGreater(diff[y1:y2, x1:x2].sum(), 4, (i, shifted, CLASSES[c]))
                outside += int((diff & ~inside).sum())
                changed += int(diff.sum())
        self.assertLess(outside / changed, 0.01, (outside, changed))

    def test_seeds_reproduce_byte_identical_images(self):
        for i in (0, 5, 17):
            a, la = render(3, i, 320)
            b, lb = render(3, i, 320)
            self.assertEqual(a.tobytes(), b.tobytes())
            np.testing.assert_array_equal(la, lb)
        self.assertNotEqual(render(3, 0)[0].tobytes(), render(4, 0)[0].tobytes())

    def test_worker_count_does_not_change_the_set(self):
        a, la = generate(5, 12, 320, workers=1)
        b, lb = generate(5, 12, 320, workers=3)
        self.assertEqual(a.tobytes(), b.tobytes())
        for x, y in zip(la, lb):
            np.testing.assert_array_equal(x, y)

    def test_every_class_and_clean_images_occur(self):
        seen, clean = set(), 0
        for i in range(N):
            _, lab = render(9, i, 320)
            seen |= {int(c) for c in lab[:, 0]}
            clean += len(lab) == 0
        self.assertEqual(seen, set(range(len(CLASSES))))
        self.assertGreater(clean, 0)

    def test_other_sizes(self):
        img, lab = render(2, 3, 640)
        self.assertEqual(img.shape, (640, 640, 3))
        self.assertTrue((lab[:, 3:] <= 640).all())


if __name__ == "__main__":
    unittest.main()
