"""An Ultralytics YOLOv8n at 320x320 for the bench page, exported as factories export it (ONNX
opset 17, not simplified, batch 1, fp32), built from `yolov8n.yaml`: untrained weights, which is
fine for timing (the work does not depend on the weights) and needs no download.

    python webbench/export_yolov8n.py --out yolov8n-320.onnx

Needs `ultralytics`, `torch` (CPU is enough) and `onnx` in this Python.
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--imgsz", type=int, default=320)
    a = p.parse_args()
    os.environ["YOLO_OFFLINE"] = "1"
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
        from ultralytics import YOLO
    except ImportError as e:
        sys.exit(f"export_yolov8n.py: {e}: install ultralytics, torch and onnx into {sys.executable}")
    out = Path(a.out).resolve()
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)  # Ultralytics writes the export beside the model, i.e. here
        exported = YOLO("yolov8n.yaml").export(format="onnx", opset=17, imgsz=a.imgsz, simplify=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(exported, out)
    print(f"YOLOv8n {a.imgsz}x{a.imgsz} -> {out}")


if __name__ == "__main__":
    main()
