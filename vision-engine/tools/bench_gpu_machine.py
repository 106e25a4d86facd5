"""The engine's `bench` on the GPU machine beside PyTorch on the same GPU, same model architecture.

It builds Ultralytics YOLOv8n from its yaml (random weights: timing does not depend on them),
exports it to ONNX as factories do (opset 17, not simplified, static 640x640, batch 1), runs the
carried native `bench` binary on it (Vulkan; with the ONNX Runtime CPU peer on the machine's
cores), and times the same network in PyTorch on CUDA, eager and replayed as a CUDA graph, both
fp32 with Conv+BatchNorm fused as Ultralytics' predictor runs it. `--f16` adds our f16 tensors
and PyTorch in fp16. Optional extra ONNX models
(`--model`) get the bench alone. Everything printed is also written to $OUT/bench.txt, each
launch's GPU time to $OUT/profile-*.jsonl.

Here (build machine), copy what travels into the ignored device folder of the checkout that the
device tool ships, then run it there (carry the folder, `.gl` for the Vulkan loader and `.whl` for
the ultralytics wheels):

    cargo build --release -p vision-engine --bin bench
    mkdir -p .device-engine && cp target/release/bench vision-engine/tools/*.py .device-engine/ \
        && strip .device-engine/bench
    # on the device (one command):
    for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; \
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; \
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
    PYTHONPATH=/tmp/site python3 .device-engine/bench_gpu_machine.py --bench .device-engine/bench \
        --model models/linecheck-defects-320.onnx
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")


def log(out, text):
    print(text, flush=True)
    with open(out / "bench.txt", "a") as f:
        f.write(text + "\n")


def export_yolov8n(work, imgsz):
    """Ultralytics YOLOv8n with random weights, exported the way factories export it."""
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml")
    path = Path(model.export(format="onnx", opset=17, simplify=False, imgsz=imgsz, dynamic=False))
    target = work / f"yolov8n-{imgsz}.onnx"
    path.rename(target)
    return model, target


def time_ms(fn, warmup, runs):
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times), max(times)


def pytorch_rows(model, imgsz, warmup, runs, half=False):
    """Eager and CUDA-graph medians of the fused network on the GPU, fp32 (or fp16: `half`)."""
    import torch

    torch.backends.cudnn.benchmark = True
    net = model.model.fuse().to("cuda").eval()
    x = torch.rand(1, 3, imgsz, imgsz, device="cuda")
    if half:
        net, x = net.half(), x.half()
    rows = []
    with torch.inference_mode():
        rows.append(("PyTorch eager", time_ms(lambda: net(x), warmup, runs)))
        # Capture on a side stream after warm-up, as the CUDA graphs documentation does.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                net(x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            net(x)
        rows.append(("PyTorch CUDA graph", time_ms(graph.replay, warmup, runs)))
    name = torch.cuda.get_device_name(0)
    return [
        f"| {runtime} {torch.__version__} | {name} | {'f16' if half else 'f32'} | - | {m:.3f} | {lo:.3f} | {hi:.3f} | - | - | - |"
        for runtime, (m, lo, hi) in rows
    ]


def bench(args, model, extra, profile_name=None, runs=None):
    cmd = [args.bench, "--model", str(model), "--runs", str(runs or args.runs), "--warmup", str(args.warmup),
           "--peer-script", str(Path(__file__).with_name("ort_peer.py"))] + extra
    if profile_name:
        cmd += ["--profile", "--profile-json", str(args.out / f"profile-{profile_name}.jsonl")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.stdout + (f"\nbench failed ({proc.returncode}): {proc.stderr}" if proc.returncode else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True, help="the native bench binary")
    parser.add_argument("--model", action="append", default=[], help="more ONNX models to bench")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--tilings", type=int, default=0, help="also profile each forced tiling 0..N-1 (bench --tiling)")
    parser.add_argument("--f16", action="store_true", help="also bench every model in f16 (bench --precision f16)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    args = parser.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.bench = str(Path(args.bench).resolve())
    args.model = [Path(m).resolve() for m in args.model]

    # Ultralytics imports polars only in functions that export and predict do not call.
    sys.modules.setdefault("polars", types.ModuleType("polars"))
    work = Path(tempfile.mkdtemp())
    os.chdir(work)
    model, onnx_path = export_yolov8n(work, args.imgsz)
    # Back with the results, so the profiles' nodes can be matched with their shapes.
    (args.out / onnx_path.name).write_bytes(onnx_path.read_bytes())

    log(args.out, f"## YOLOv8n {args.imgsz}x{args.imgsz}, fp32, batch 1")
    log(args.out, bench(args, onnx_path, [], "auto"))
    log(args.out, "\n### the f32 kernels of GPUs without matrix units (split-k)")
    log(args.out, bench(args, onnx_path, ["--conv", "tiled", "--no-peer"], "tiled"))
    if args.f16:
        log(args.out, f"\n## YOLOv8n {args.imgsz}x{args.imgsz}, f16 tensors (f32 arithmetic), batch 1")
        log(args.out, bench(args, onnx_path, ["--precision", "f16", "--no-peer"], "f16"))
        log(args.out, bench(args, onnx_path, ["--precision", "f16", "--conv", "whole", "--no-peer"], "f16-whole"))
    log(args.out, "PyTorch on the same GPU, same architecture (fused Conv+BN), wall clock with synchronize:")
    for row in pytorch_rows(model, args.imgsz, args.warmup, args.runs):
        log(args.out, row)
    if args.f16:
        for row in pytorch_rows(model, args.imgsz, args.warmup, args.runs, half=True):
            log(args.out, row)
    log(args.out, "\n### before split-k: tiled convolutions, never split along k")
    log(args.out, bench(args, onnx_path, ["--conv", "whole", "--no-peer"], "whole"))
    log(args.out, "\n### before: the reference direct convolution")
    log(args.out, bench(args, onnx_path, ["--conv", "direct", "--no-peer"], "direct"))
    for i in range(args.tilings):
        log(args.out, f"\n### every tiled convolution on tiling {i}")
        log(args.out, bench(args, onnx_path, ["--tiling", str(i), "--no-peer"], f"tiling{i}", runs=50))
    for extra in args.model:
        log(args.out, f"\n## {extra.name}")
        log(args.out, bench(args, extra, []))
        if args.f16:
            log(args.out, bench(args, extra, ["--precision", "f16", "--no-peer"]))


if __name__ == "__main__":
    main()
