"""The peer of the `bench` binary: native ONNX Runtime (CPU) on the same model, input and thread
count, timed the same way (cold start = session creation + first run; then warm-up runs, then
timed runs). Prints one JSON object. `bench` runs it; to run it alone:

    python3 vision-engine/tools/ort_peer.py --model M.onnx --threads 2 --runs 20 --warmup 3
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def pattern_input(shape):
    """The input `bench` feeds: a fixed pattern in [0, 1], the range of a letterboxed image."""
    count = int(np.prod(shape))
    return ((np.arange(count, dtype=np.int64) * 7919 % 1000) / 999.0).astype(np.float32).reshape(shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
    feed = {model_input.name: pattern_input(model_input.shape).astype(dtype)}
    session.run(None, feed)
    cold_ms = (time.perf_counter() - started) * 1000

    for _ in range(args.warmup):
        session.run(None, feed)
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t) * 1000)
    print(json.dumps({
        "runtime": f"ONNX Runtime {ort.__version__} CPU",
        "threads": args.threads,
        "precision": "f16" if dtype == np.float16 else "f32",
        "cold_ms": cold_ms,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
    }))


if __name__ == "__main__":
    main()
