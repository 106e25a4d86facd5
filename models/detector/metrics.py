"""Postprocessing as the kiosk's engine does it, and COCO-style detection metrics."""

import numpy as np
import torch
import torchvision

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def postprocess(boxes, scores, conf, iou=0.45, max_det=300):
    """Like vision-engine's postprocess: best class per anchor, score above `conf`, class-aware NMS.

    boxes [B, A, 4] x1y1x2y2, scores [B, A, C] sigmoid. Returns per image an array [k, 6]:
    x1, y1, x2, y2, score, class.
    """
    out = []
    best, cls = scores.max(-1)
    for b in range(boxes.shape[0]):
        keep = best[b] > conf
        bx, sc, cl = boxes[b][keep].float(), best[b][keep].float(), cls[b][keep]
        idx = torchvision.ops.batched_nms(bx, sc, cl, iou)[:max_det]
        out.append(torch.cat((bx[idx], sc[idx, None], cl[idx, None].float()), 1).cpu().numpy())
    return out


def _iou_matrix(a, b):
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)
    return inter / (area(a)[:, None] + area(b)[None] - inter + 1e-9)


def _match(det, gt):
    """True-positive flags [k, 10] of score-sorted detections against gt (class, x1..y2)."""
    tp = np.zeros((len(det), len(IOU_THRESHOLDS)), bool)
    if len(det) == 0 or len(gt) == 0:
        return tp
    iou = _iou_matrix(det[:, :4], gt[:, 1:5]) * (det[:, 5:6] == gt[None, :, 0])
    rows = np.nonzero(iou.max(1) >= IOU_THRESHOLDS[0])[0]  # the rest are false at every threshold
    for t, thr in enumerate(IOU_THRESHOLDS):
        used = np.zeros(len(gt), bool)
        for i in rows:  # greedy by score: each gt counts once
            cand = np.where(~used & (iou[i] >= thr), iou[i], -1)
            j = int(cand.argmax())
            if cand[j] >= 0:
                used[j] = True
                tp[i, t] = True
    return tp


def _ap(tp, scores, n_gt):
    """101-point interpolated AP per IoU threshold."""
    if n_gt == 0:
        return np.full(tp.shape[1], np.nan)
    if len(scores) == 0:
        return np.zeros(tp.shape[1])
    order = np.argsort(-scores, kind="stable")
    tpc = np.cumsum(tp[order], 0)
    fpc = np.cumsum(~tp[order], 0)
    recall = tpc / n_gt
    precision = tpc / (tpc + fpc)
    precision = np.maximum.accumulate(precision[::-1], 0)[::-1]  # monotone envelope
    grid = np.linspace(0, 1, 101)
    ap = []
    for t in range(tp.shape[1]):
        idx = np.searchsorted(recall[:, t], grid, side="left")
        ap.append(np.where(idx < len(recall), precision[np.minimum(idx, len(recall) - 1), t], 0).mean())
    return np.array(ap)


def _recall_at(per, conf):
    hits = sum(int(np.concatenate(tps)[np.concatenate(scs) > conf, 0].sum()) for tps, scs, _ in per.values() if tps)
    return hits / max(1, sum(n for _, _, n in per.values()))


def evaluate(dets, gts, names, conf=0.25, sweep=(0.25, 0.4, 0.5, 0.6)):
    """dets: per image [k, 6] at a low threshold; gts: per image [m, 5] (class, x1, y1, x2, y2).

    Returns mAP50, mAP50-95, per-class AP/precision/recall (P/R at `conf`, IoU 0.5), the false
    detections per defect-free image at `conf`, and both at each threshold of `sweep`.
    """
    nc = len(names)
    per = {c: ([], [], 0) for c in range(nc)}
    sweep = (conf, *sweep)
    fp_clean, n_clean = np.zeros(len(sweep)), 0
    for det, gt in zip(dets, gts):
        det = det[np.argsort(-det[:, 4], kind="stable")]
        tp = _match(det, gt)
        for c in range(nc):
            k = det[:, 5] == c
            tps, scs, n = per[c]
            tps.append(tp[k])
            scs.append(det[k, 4])
            per[c] = (tps, scs, n + int((gt[:, 0] == c).sum()))
        if len(gt) == 0:
            n_clean += 1
            fp_clean += [(det[:, 4] > t).sum() for t in sweep]
    classes = {}
    aps = []
    for c in range(nc):
        tps, scs, n = per[c]
        tp = np.concatenate(tps) if tps else np.zeros((0, 10), bool)
        sc = np.concatenate(scs) if scs else np.zeros(0)
        ap = _ap(tp, sc, n)
        aps.append(ap)
        hi = sc > conf
        tp50 = int(tp[hi, 0].sum())
        classes[names[c]] = {
            "instances": n,
            "AP50": round(float(ap[0]), 4),
            "AP50-95": round(float(np.mean(ap)), 4),
            "precision": round(tp50 / max(1, int(hi.sum())), 4),
            "recall": round(tp50 / max(1, n), 4),
        }
    aps = np.array(aps)
    return {
        "images": len(gts),
        "mAP50": round(float(np.nanmean(aps[:, 0])), 4),
        "mAP50-95": round(float(np.nanmean(aps.mean(1))), 4),
        "fp_per_clean_image": round(float(fp_clean[0]) / max(1, n_clean), 4),
        # The same at higher thresholds, with the recall over all classes that each one leaves.
        "threshold_sweep": {str(t): {"fp_per_clean_image": round(float(f) / max(1, n_clean), 4),
                                     "false_detections": int(f),
                                     "recall": round(_recall_at(per, t), 4)} for t, f in zip(sweep[1:], fp_clean[1:])},
        "clean_images": n_clean,
        "conf": conf,
        "classes": classes,
    }
