"""Checks vision-engine against real Ultralytics detectors: YOLOv8n, YOLO11n and YOLO26n, trained
briefly here on synthetic shapes (untrained models barely depend on their input, which would make
any comparison meaningless), exported to ONNX as factories export them, and run three ways on the
same images:

- ONNX Runtime (CPU) on the letterboxed input: the raw-output reference;
- Ultralytics' own `non_max_suppression` + `scale_boxes` on ONNX Runtime's output: the
  detections reference;
- our `detect` binary, GPU and CPU backends, with `--raw-out`.

It prints a table and writes $OUT/parity.json and $OUT/parity.txt. It needs CUDA PyTorch,
onnxruntime and the `ultralytics` package, so it runs on the GPU machine (the device tool):

    cargo build --release -p vision-engine --bin detect && mkdir -p .device && cp target/release/detect .device/
    # carry .device, .gl (Vulkan loader) and .whl (ultralytics, ultralytics-thop, ultralytics-platform wheels)
    python3 vision-engine/tools/ultralytics_parity.py --detect .device/detect --epochs 8
    # only YOLO26n's end-to-end (NMS-free) export, in less device time:
    python3 vision-engine/tools/ultralytics_parity.py --detect .device/detect --epochs 6 --archs yolo26n --variants fp32-end2end

YOLO26's end-to-end export (`nms=False`) ends in `[1, 300, 6]` (x1, y1, x2, y2, score, class, best
first); Ultralytics' `non_max_suppression` only thresholds it, and the check compares the score
column and the class column (exactly) instead of class rows. Its rows are ordered by score, and two
candidates whose scores differ by less than the arithmetic's noise (ONNX Runtime's convolutions
and ours round differently) may come in either order: the raw error is reported as it is and after
pairing such rows (scores within TIE of each other), with the number of rows that moved.

Ultralytics imports polars only inside functions; where the 54 MB polars wheel would not fit the
device call, an empty `polars` module on PYTHONPATH is enough for training and export.

The test images are 640x480 so the letterbox only pads (no resampling): both sides then feed the
network identical pixels, and any difference is the engine's.
"""

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")

ARCHS = ["yolov8n", "yolo11n", "yolo26n"]
CLASSES = ["disc", "block", "wedge"]
IMGSZ = 640
TIE = 1e-5  # end-to-end rows whose scores differ by less are in no defined order


def draw_scene(rng, width, height):
    """A noisy, shaded background with 1-4 shapes; returns the BGR image and YOLO labels."""
    base = rng.integers(40, 200, 3)
    grad = np.linspace(0.7, 1.3, width)[None, :, None]
    img = np.clip(base[None, None, :] * grad + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    labels = []
    for _ in range(rng.integers(1, 5)):
        cls = int(rng.integers(0, 3))
        size = int(rng.integers(min(width, height) // 10, min(width, height) // 3))
        cx, cy = int(rng.integers(size, width - size)), int(rng.integers(size, height - size))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if cls == 0:
            cv2.circle(img, (cx, cy), size // 2, color, -1)
        elif cls == 1:
            cv2.rectangle(img, (cx - size // 2, cy - size // 3), (cx + size // 2, cy + size // 3), color, -1)
        else:
            pts = np.array([[cx, cy - size // 2], [cx - size // 2, cy + size // 2], [cx + size // 2, cy + size // 2]])
            cv2.fillPoly(img, [pts], color)
        h = size * (2 / 3 if cls == 1 else 1)
        labels.append((cls, cx / width, cy / height, size / width, h / height))
    return img, labels


def make_dataset(root, rng, train=1200, val=100, size=320):
    for split, count in [("train", train), ("val", val)]:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, labels = draw_scene(rng, size, size)
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), img)
            (root / "labels" / split / f"{i}.txt").write_text("".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels))
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {dict(enumerate(CLASSES))}\n")
    return data


def letterbox_padding_only(bgr):
    """Ultralytics' letterbox for an image whose width equals IMGSZ: grey bands above and below."""
    h, w = bgr.shape[:2]
    assert w == IMGSZ and h <= IMGSZ
    top = round((IMGSZ - h) / 2 - 0.1)
    out = np.full((IMGSZ, IMGSZ, 3), 114, np.uint8)
    out[top:top + h] = bgr
    return np.ascontiguousarray(out[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0, top


def ultralytics_detections(raw, top, shape, conf, iou):
    import torch
    try:
        from ultralytics.utils.nms import non_max_suppression
    except ImportError:
        from ultralytics.utils.ops import non_max_suppression
    from ultralytics.utils.ops import scale_boxes
    det = non_max_suppression(torch.from_numpy(raw), conf_thres=conf, iou_thres=iou)[0]
    det[:, :4] = scale_boxes((IMGSZ, IMGSZ), det[:, :4], shape)
    return [{"class_id": int(d[5]), "score": float(d[4]), "box": [float(v) for v in d[:4]]} for d in det]


def compare_detections(ours, ref):
    if len(ours) != len(ref):
        return False, f"{len(ours)} detections vs {len(ref)}"
    key = lambda d: (d["class_id"], -d["score"])
    worst_box, worst_score = 0.0, 0.0
    for a, b in zip(sorted(ours, key=key), sorted(ref, key=key)):
        if a["class_id"] != b["class_id"]:
            return False, f"class {a['class_id']} vs {b['class_id']}"
        worst_box = max(worst_box, max(abs(x - y) for x, y in zip(a["box"], b["box"])))
        worst_score = max(worst_score, abs(a["score"] - b["score"]))
    ok = worst_box <= 0.5 and worst_score <= 1e-3
    return ok, f"{len(ours)} equal classes, box diff {worst_box:.3f} px, score diff {worst_score:.1e}"


def align_tied_rows(ours, ref):
    """Our end-to-end rows reordered to ONNX Runtime's where a row of its output matches one of ours
    whose score is within TIE (the same candidates listed in the other order); and how many moved."""
    ours, ref = ours[0], ref[0]
    free = np.ones(len(ours), bool)
    order = []
    for i, row in enumerate(ref):
        tied = [j for j in np.flatnonzero(free) if abs(ours[j, 4] - row[4]) <= TIE]
        j = min(tied, key=lambda j: np.abs(ours[j] - row).max()) if tied else i
        free[j] = False
        order.append(j)
    return ours[order][None], sum(int(j != i) for i, j in enumerate(order))


def median_ms(fn, runs=20):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--detect", required=True, help="path to the release `detect` binary")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--conf", type=float, default=0.1, help="confidence threshold of both postprocessings")
    parser.add_argument("--work", default="/tmp/parity")
    parser.add_argument("--archs", nargs="+", default=ARCHS, choices=ARCHS)
    parser.add_argument("--variants", nargs="+", help="only these exports (fp32, fp16, fp32-end2end)")
    args = parser.parse_args()
    out_dir = Path(os.environ.get("OUT", args.work))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    rng = np.random.default_rng(26)

    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    data = make_dataset(work / "data", rng)
    images = []
    for i in range(3):
        img, _ = draw_scene(rng, IMGSZ, 480)
        path = work / f"test{i}.png"
        cv2.imwrite(str(path), img)
        images.append(path)

    report = {"machine": torch.cuda.get_device_name(0), "onnxruntime": ort.__version__, "models": {}}
    lines = []
    for arch in args.archs:
        entry = report["models"].setdefault(arch, {})
        try:
            t = time.time()
            model = YOLO(f"{arch}.yaml")
            model.train(data=str(data), epochs=args.epochs, imgsz=320, batch=32, device=0, workers=4, plots=False,
                        amp=False, project=str(work / "runs"), name=arch, exist_ok=True, verbose=False, val=False)
            entry["train_s"] = round(time.time() - t, 1)
            net = model.model.to("cuda").eval()
            x = torch.rand(1, 3, IMGSZ, IMGSZ, device="cuda")
            with torch.no_grad():
                entry["pytorch_eager_ms"] = median_ms(lambda: (net(x), torch.cuda.synchronize()))
            # Ultralytics 8.4 names fp16 `quantize=16`. YOLO26's default export keeps NMS outside the
            # graph (`[1, 4 + classes, N]`); `nms=False` gives its NMS-free end-to-end head instead.
            variants = {"fp32": dict(), "fp16": dict(quantize=16, device=0)}
            if arch == "yolo26n":
                variants["fp32-end2end"] = dict(nms=False)
            for variant, extra in variants.items():
                if args.variants and variant not in args.variants:
                    continue
                kwargs = dict(format="onnx", opset=17, simplify=False, imgsz=IMGSZ, dynamic=False, **extra)
                onnx_path = Path(model.export(**kwargs))
                target = work / f"{arch}-{variant}.onnx"
                onnx_path.rename(target)
                entry[variant] = check_model(target, images, args, work / f"{arch}-{variant}", lines, arch, variant)
        except Exception as e:  # keep going: one architecture's failure must not hide the others
            entry["error"] = f"{type(e).__name__}: {e}"
            lines.append(f"{arch}: ERROR {entry['error']}")
        # Written after every architecture, so a run cut short still reports what it finished.
        text = "\n".join([f"machine: {report['machine']}, onnxruntime {report['onnxruntime']}"] + lines)
        (out_dir / "parity.txt").write_text(text + "\n")
        (out_dir / "parity.json").write_text(json.dumps(report, indent=1))
    print(text)


def check_model(onnx_path, images, args, raw_dir, lines, arch, variant):
    import onnxruntime as ort
    result = {"size_mb": round(onnx_path.stat().st_size / 1e6, 2)}
    options = ort.SessionOptions()
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    half = inp.type == "tensor(float16)"
    refs = []
    for path in images:
        bgr = cv2.imread(str(path))
        x, top = letterbox_padding_only(bgr)
        raw = session.run(None, {inp.name: x.astype(np.float16) if half else x})[0].astype(np.float32)
        refs.append((raw, top, bgr.shape[:2]))
    result["output_shape"] = list(refs[0][0].shape)
    x16 = x.astype(np.float16) if half else x
    result["ort_cpu_ms"] = median_ms(lambda: session.run(None, {inp.name: x16}), runs=10)
    one = ort.SessionOptions()
    one.intra_op_num_threads = 1
    single = ort.InferenceSession(str(onnx_path), one, providers=["CPUExecutionProvider"])
    result["ort_cpu_1thread_ms"] = median_ms(lambda: single.run(None, {inp.name: x16}), runs=5)

    for backend in ["gpu", "cpu"]:
        out_dir = raw_dir / backend
        proc = subprocess.run([args.detect, "--model", str(onnx_path), "--backend", backend, "--conf", str(args.conf), "--iou", "0.45",
                               "--raw-out", str(out_dir)] + [str(p) for p in images], capture_output=True, text=True)
        res = result.setdefault(backend, {})
        if proc.returncode != 0:
            res["error"] = proc.stderr.strip()[-2000:]
            lines.append(f"{arch} {variant} {backend}: ERROR {res['error']}")
            continue
        outputs = [json.loads(l) for l in proc.stdout.splitlines()]
        res["detect_ms"] = [round(o["timings_ms"]["detect"], 2) for o in outputs]
        res["model_load_ms"] = round(outputs[0]["timings_ms"]["model_load"], 1)
        res["adapter"] = outputs[0]["backend"]
        res["gpu_activation_bytes"] = outputs[0].get("gpu_activation_bytes")
        rel, score, det_ok, det_msgs, classes_equal, rel_aligned, moved = [], [], [], [], [], [], []
        for path, (raw, top, shape), o in zip(images, refs, outputs):
            ours = np.load(out_dir / f"{path.stem}.npy")
            rel.append(float(np.linalg.norm(ours - raw) / np.linalg.norm(raw)))
            if raw.shape[-1] == 6:  # end-to-end rows: x1, y1, x2, y2, score, class
                aligned, n = align_tied_rows(ours, raw)
                rel_aligned.append(float(np.linalg.norm(aligned - raw) / np.linalg.norm(raw)))
                moved.append(n)
                score.append(float(np.abs(aligned[0, :, 4] - raw[0, :, 4]).max()))
                classes_equal.append(bool(np.array_equal(aligned[0, :, 5], raw[0, :, 5])))
            else:
                score.append(float(np.abs(ours[0, 4:] - raw[0, 4:]).max()))
            reference = ultralytics_detections(raw, top, shape, args.conf, 0.45)
            # Equality of two empty lists proves nothing: an untrained model detects nothing.
            ok, msg = compare_detections(o["detections"], reference) if reference else (False, "no detections to compare")
            det_ok.append(ok)
            det_msgs.append(msg)
        res.update(rel_err=max(rel), max_score_diff=max(score), detections_equal=all(det_ok), detections=det_msgs)
        tied = ""
        if classes_equal:
            res.update(class_column_equal=all(classes_equal), rel_err_tied_rows_paired=max(rel_aligned),
                       tied_rows_moved=moved)
            tied = (f"after pairing tied rows (moved {moved}) rel {max(rel_aligned):.2e}, "
                    f"class column equal: {all(classes_equal)}, ")
        lines.append(f"{arch:8} {variant:12} {backend}: rel {max(rel):.2e}, {tied}score diff {max(score):.2e}, "
                     f"detections equal: {all(det_ok)} ({'; '.join(det_msgs)}); detect ms {res['detect_ms']}, "
                     f"GPU activations {res['gpu_activation_bytes']} B, "
                     f"ORT CPU {result['ort_cpu_ms']:.1f} ms (1 thread {result['ort_cpu_1thread_ms']:.1f})")
    return result


if __name__ == "__main__":
    main()
