"""Trains LineCheck's defect detector, evaluates it and exports ONNX (fp32 and fp16).

Synthetic data (default): the training set, an in-distribution held-out set (new seed) and a
shifted held-out set (unseen shapes, materials, lighting) are generated in memory at start.
Real data: `--data DIR` takes a YOLO-format folder (data.yaml, images/{train,val}, labels/{train,val});
with `--weights` it fine-tunes from a shipped model, replacing the class layer if the classes differ.

Training runs until `--epochs` or `--time-budget` seconds (whichever comes first), so one GPU call
of fixed length always ends with evaluation and export. `--resume` continues from OUT/last.pt
(weights, EMA, optimiser and schedule); `--weights` starts from OUT-style weights.pt anywhere.

    python models/train.py --out runs/synth --time-budget 420
    python models/train.py --data /path/yolo --weights models/linecheck-defects-320.pt --out runs/ft
"""

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detector.data import load_split, read_names  # noqa: E402
from detector.loss import DetectionLoss  # noqa: E402
from detector.metrics import evaluate, postprocess  # noqa: E402
from detector.model import Detector, Export, anchors, decode  # noqa: E402
from synth import CLASSES  # noqa: E402
from synth.dataset import generate  # noqa: E402


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def to_gpu_labels(labels, device):
    """Pads per-image [k, 5] labels to one [N, M, 5] tensor; padding rows have class -1."""
    m = max(1, max((len(l) for l in labels), default=1))
    out = np.full((len(labels), m, 5), -1, np.float32)
    for i, l in enumerate(labels):
        out[i, :len(l)] = l
    return torch.from_numpy(out).to(device)


def augment(x, lab, size):
    """Flips and transposes (parts lie in any orientation); gain, offset, per-channel gain, channel
    order and grey (lamps, white balance, part colours and mono cameras differ between lines).
    x: float [B, 3, S, S] in 0..1, lab: [B, M, 5]."""
    b = x.shape[0]
    dev = x.device
    box = lab[..., 1:].clone()
    valid = lab[..., :1] >= 0
    h = torch.rand(b, device=dev) < 0.5
    x = torch.where(h[:, None, None, None], x.flip(3), x)
    box = torch.where(h[:, None, None], torch.stack((size - box[..., 2], box[..., 1], size - box[..., 0], box[..., 3]), -1), box)
    v = torch.rand(b, device=dev) < 0.5
    x = torch.where(v[:, None, None, None], x.flip(2), x)
    box = torch.where(v[:, None, None], torch.stack((box[..., 0], size - box[..., 3], box[..., 2], size - box[..., 1]), -1), box)
    t = torch.rand(b, device=dev) < 0.5
    x = torch.where(t[:, None, None, None], x.transpose(2, 3), x)
    box = torch.where(t[:, None, None], box[..., [1, 0, 3, 2]], box)
    perm = torch.rand(b, 3, device=dev).argsort(1)
    shuffle = (torch.rand(b, device=dev) < 0.5)[:, None]
    perm = torch.where(shuffle, perm, torch.arange(3, device=dev))
    x = x.gather(1, perm[:, :, None, None].expand_as(x))
    grey = torch.rand(b, device=dev) < 0.1
    x = torch.where(grey[:, None, None, None], x.mean(1, keepdim=True).expand_as(x), x)
    gain = torch.empty(b, 1, 1, 1, device=dev).uniform_(0.55, 1.4) * torch.empty(b, 3, 1, 1, device=dev).uniform_(0.8, 1.2)
    x = (x * gain + torch.empty(b, 1, 1, 1, device=dev).uniform_(-0.08, 0.08)).clamp(0, 1)
    return x, torch.cat((lab[..., :1], torch.where(valid, box, box.new_zeros(()))), -1)


def to_input(images_u8):
    """uint8 BGR [B, S, S, 3] -> float RGB [B, 3, S, S] in 0..1, as the engine feeds the network."""
    return images_u8.permute(0, 3, 1, 2).flip(1).float().div_(255)


class EMA:
    """Exponential moving average of the weights; its ramp lets early updates count while the model
    is still moving fast."""

    def __init__(self, model, decay=0.9999, tau=2000, updates=0):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)


@torch.no_grad()
def predict(model, images_u8, imgsz, conf, batch=256, max_det=100):
    pts, strides = anchors(imgsz, images_u8.device)
    dets = []
    for i in range(0, len(images_u8), batch):
        box, cls = model(to_input(images_u8[i:i + batch]).contiguous(memory_format=torch.channels_last))
        dets += postprocess(decode(box.float(), model.reg_max, pts, strides), cls.float().sigmoid().transpose(1, 2), conf,
                            max_det=max_det)
    return dets


def load_weights(model, path):
    """Loads matching tensors; a class layer of another size stays freshly initialised."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    sd = {k: v.float() for k, v in ck["model"].items()}
    own = model.state_dict()
    ok = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(ok, strict=False)
    log(f"loaded {len(ok)}/{len(own)} tensors from {path}")


def export_onnx(model, imgsz, names, path, half, device):
    import onnx

    # eval() on the wrapper: the exporter restores the wrapper's mode recursively afterwards.
    m = Export(copy.deepcopy(model).float(), imgsz).to(device).eval()
    x = torch.zeros(1, 3, imgsz, imgsz, device=device)
    if half:
        m, x = m.half(), x.half()
    torch.onnx.export(m, x, str(path), opset_version=17, input_names=["images"], output_names=["output0"],
                      dynamo=False)
    proto = onnx.load(str(path))
    meta = {
        "description": "LineCheck default surface-defect detector (own architecture and training)",
        "author": "LineCheck",
        "task": "detect",
        "stride": "32",
        "batch": "1",
        "imgsz": str([imgsz, imgsz]),
        # The engine reads Ultralytics' form: a Python dict literal of index -> name.
        "names": str({i: n for i, n in enumerate(names)}),
    }
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(path))
    return m


def ort_check(path, torch_model, images_u8, half):
    """Max |ONNX Runtime - PyTorch| over a few images, so a broken export is caught here."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for img in images_u8:
        x = to_input(img[None])
        x = x.half() if half else x
        ref = torch_model(x.to(next(torch_model.parameters()).device)).float().cpu().numpy()
        got = sess.run(None, {"images": x.cpu().numpy()})[0].astype(np.float32)
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst, tuple(sess.get_outputs()[0].shape)


def draw(img, dets, names, gt=None):
    img = img.copy()
    for c, x1, y1, x2, y2 in (gt if gt is not None else []):
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), (0, 255, 0), 1)
    for x1, y1, x2, y2, s, c in dets:
        cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), (0, 0, 255), 1)
        cv2.putText(img, f"{names[int(c)]} {s:.2f}", (int(x1), max(8, int(y1) - 2)), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 255), 1)
    return img


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/default")
    p.add_argument("--data", help="YOLO-format folder to train on instead of synthetic data")
    p.add_argument("--weights", help="start from this weights.pt (fine-tuning)")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--train-n", type=int, default=20000)
    p.add_argument("--val-n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--val-seed", type=int, default=1001)
    p.add_argument("--shift-seeds", type=int, nargs="+", default=[2001],
                   help="shifted held-out sets: the first is `shifted`, others `shifted_SEED`")
    p.add_argument("--baseline", help="also evaluate these weights on the same held-out sets, for comparison")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--time-budget", type=float, default=420, help="seconds of training in this call")
    p.add_argument("--wall-limit", type=float, help="seconds the whole call may take: training gets what "
                   "data, evaluation and export leave of it, so the schedule still ends at a low rate")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=300, help="steps of linear learning-rate warm-up")
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--name", default="linecheck-defects")
    a = p.parse_args()

    t0 = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(a.seed)
    torch.backends.cudnn.benchmark = True
    S = a.imgsz

    sets = {}
    if a.data:
        names = read_names(a.data)
        sets["train"] = load_split(a.data, "train", S)
        if (Path(a.data) / "images" / "val").is_dir():
            sets["val"] = load_split(a.data, "val", S)
    else:
        names = list(CLASSES)
        shifted_sets = [("shifted" if i == 0 else f"shifted_{seed}", seed, a.val_n, True)
                        for i, seed in enumerate(a.shift_seeds)]
        for key, seed, n, shifted in [("train", a.seed, a.train_n, False), ("val", a.val_seed, a.val_n, False),
                                      *shifted_sets]:
            t = time.time()
            sets[key] = generate(seed, n, S, shifted, a.workers)
            log(f"generated {key}: {n} images, {sum(len(l) for l in sets[key][1])} defects, "
                f"{n / (time.time() - t):.0f} images/s on {a.workers or os.cpu_count()} processes")
    held_out = [key for key in sets if key != "train"]
    baseline = {}
    if a.baseline:
        base = Detector(len(names)).to(dev)
        load_weights(base, a.baseline)
        base.eval()
        for key in held_out:
            baseline[key] = evaluate(predict(base, torch.from_numpy(sets[key][0]).to(dev), S, 0.001), sets[key][1], names)
            log(f"baseline {key}", json.dumps({k: v for k, v in baseline[key].items() if k != "classes"}))
        del base
    images = torch.from_numpy(sets["train"][0]).to(dev)
    labels = to_gpu_labels(sets["train"][1], dev)
    n = len(images)

    model = Detector(len(names)).to(dev)
    if a.weights:
        load_weights(model, a.weights)
    model = model.to(memory_format=torch.channels_last)
    decay, no_decay = [], []
    for prm in model.parameters():
        (decay if prm.ndim > 1 else no_decay).append(prm)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0}],
                            lr=a.lr, betas=(0.9, 0.999))
    ema = EMA(model)
    start_epoch, trained_s, history = 0, 0.0, []
    if a.resume and (out / "last.pt").exists():
        ck = torch.load(out / "last.pt", map_location=dev, weights_only=False)
        model.load_state_dict(ck["model"])
        ema.model.load_state_dict(ck["ema"])
        ema.updates = ck["ema_updates"]
        opt.load_state_dict(ck["opt"])
        start_epoch, trained_s, history = ck["epoch"], ck["trained_s"], ck["history"]
        log(f"resumed at epoch {start_epoch}, {trained_s:.0f} s trained")
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f} M parameters, {len(names)} classes, input {S}x{S}, device {dev}")

    crit = DetectionLoss(model.reg_max)
    pts, strides = anchors(S, dev)
    budget = a.time_budget
    if a.wall_limit:
        budget = min(budget, a.wall_limit - (time.time() - t0) - 100)  # 100 s: evaluations and export
    total_budget = trained_s + budget
    log(f"training for {budget:.0f} s")
    steps_per_epoch = max(1, n // a.batch)
    bs = min(a.batch, n)
    step = ema.updates
    val_quick = None
    if "val" in sets:
        k = min(500, len(sets["val"][0]))
        val_quick = (torch.from_numpy(sets["val"][0][:k]).to(dev), sets["val"][1][:k])
    epoch = start_epoch
    for epoch in range(start_epoch, a.epochs):
        if trained_s >= total_budget:
            break
        model.train()
        te = time.time()
        perm = torch.randperm(n, device=dev)
        sums = torch.zeros(3, device=dev)
        done = 0
        for it in range(steps_per_epoch):
            # Cosine over the whole time budget, so a short call still ends at a low rate.
            progress = (trained_s + time.time() - te) / total_budget
            if progress >= 1:
                break
            lr = a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))) * min(1.0, (step + 1) / a.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[it * bs:(it + 1) * bs] if n >= bs * (it + 1) else torch.randint(0, n, (bs,), device=dev)
            x, lab = augment(to_input(images[idx]), labels[idx], S)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                box, cls = model(x)
            gt_mask = lab[..., 0] >= 0
            loss, parts = crit(box, cls, pts, strides, lab[..., 0].long(), lab[..., 1:], gt_mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            ema.update(model)
            sums += parts
            step += 1
            done = it + 1
        dt = time.time() - te
        trained_s += dt
        l = (sums / done).tolist()
        rec = {"epoch": epoch + 1, "box": round(l[0], 4), "cls": round(l[1], 4), "dfl": round(l[2], 4),
               "lr": round(lr, 6), "images_per_s": round(done * bs / dt), "trained_s": round(trained_s)}
        if val_quick is not None and ((epoch + 1) % a.eval_every == 0 or trained_s >= total_budget):
            rec["val_mAP50"] = evaluate(predict(ema.model, val_quick[0], S, 0.001), val_quick[1], names)["mAP50"]
        history.append(rec)
        log(json.dumps(rec))
        torch.save({"model": model.state_dict(), "ema": ema.model.state_dict(), "ema_updates": ema.updates,
                    "opt": opt.state_dict(), "epoch": epoch + 1, "trained_s": trained_s, "history": history,
                    "names": names, "imgsz": S}, out / "last.pt")

    # Shippable weights: EMA only, fp16, small enough to carry between machines.
    torch.save({"model": {k: v.half() if v.dtype.is_floating_point else v for k, v in ema.model.state_dict().items()},
                "names": names, "imgsz": S}, out / "weights.pt")

    metrics = {"params": n_params, "imgsz": S, "epochs": epoch + 1 if history else start_epoch,
               "trained_s": round(trained_s), "history": history, "names": names,
               "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"}
    if baseline:
        metrics["baseline"] = {"weights": a.baseline, **baseline}
    for key in held_out:
        imgs = torch.from_numpy(sets[key][0]).to(dev)
        dets = predict(ema.model, imgs, S, 0.001)
        metrics[key] = evaluate(dets, sets[key][1], names)
        log(key, json.dumps({k: v for k, v in metrics[key].items() if k != "classes"}))
        for c, r in metrics[key]["classes"].items():
            log(f"  {c:8s} {json.dumps(r)}")
        tiles = [draw(sets[key][0][i], d[d[:, 4] > 0.25], names, sets[key][1][i]) for i, d in
                 zip(range(8), dets)]
        cv2.imwrite(str(out / f"samples_{key}.png"), np.vstack([np.hstack(tiles[:4]), np.hstack(tiles[4:8])]))

    probe = sets["val" if "val" in sets else "train"][0][:4]
    for half in (False, True):
        if half and dev.type != "cuda":
            continue  # fp16 convolutions need the GPU to trace
        path = out / f"{a.name}-{S}{'-fp16' if half else ''}.onnx"
        m = export_onnx(ema.model, S, names, path, half, dev)
        # fp32 is compared on the CPU: the GPU's convolutions run in TF32.
        diff, shape = ort_check(path, m if half else m.cpu(), torch.from_numpy(probe), half)
        metrics[f"onnx_{'fp16' if half else 'fp32'}"] = {"file": path.name, "bytes": path.stat().st_size,
                                                         "output_shape": list(shape), "max_abs_diff_vs_torch": diff}
        log(f"exported {path} {path.stat().st_size / 1e6:.1f} MB, output {shape}, max |ORT - torch| {diff:.2e}")
    metrics["wall_s"] = round(time.time() - t0)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    log(f"done in {metrics['wall_s']} s")


if __name__ == "__main__":
    main()
