"""Task-aligned assignment and the detection loss (BCE classification, CIoU and DFL regression)."""

import torch
import torch.nn.functional as F

from .model import decode


def box_iou(a, b, eps=1e-7):
    """Elementwise IoU of broadcastable x1y1x2y2 boxes [..., 4]."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + eps)


def ciou(a, b, eps=1e-7):
    """Complete IoU: IoU minus centre distance and aspect-ratio penalties; still informative for
    boxes that do not overlap, which matters for the thin boxes of scratches and cracks."""
    iou = box_iou(a, b, eps)
    wa, ha = a[..., 2] - a[..., 0], (a[..., 3] - a[..., 1]).clamp(min=eps)
    wb, hb = b[..., 2] - b[..., 0], (b[..., 3] - b[..., 1]).clamp(min=eps)
    cw = torch.maximum(a[..., 2], b[..., 2]) - torch.minimum(a[..., 0], b[..., 0])
    ch = torch.maximum(a[..., 3], b[..., 3]) - torch.minimum(a[..., 1], b[..., 1])
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) ** 2 + (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) ** 2) / 4
    v = (4 / torch.pi ** 2) * (torch.atan(wb / hb) - torch.atan(wa / ha)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def assign(scores, boxes, pts, strides, gt_cls, gt_box, gt_mask, topk=10, alpha=1.0, beta=6.0):
    """Task-aligned assignment: each ground truth takes the `topk` candidate anchors that maximise
    score^alpha * IoU^beta, so the anchors trained as positives are those already predicting it well.

    scores [B, A, C] (sigmoid), boxes [B, A, 4], pts [A, 2], strides [A, 1], gt_cls [B, M] (long),
    gt_box [B, M, 4], gt_mask [B, M] (bool). Returns target classes [B, A], boxes [B, A, 4],
    soft scores [B, A, C] and the foreground mask [B, A].
    """
    b, a, c = scores.shape
    m = gt_box.shape[1]
    # Candidates: anchors inside the box, or within one stride of its centre, so that defects
    # smaller than a grid cell (pores) still get anchors on the fine level.
    x, y = pts[:, 0][None, None], pts[:, 1][None, None]
    inside = (x > gt_box[..., 0:1]) & (x < gt_box[..., 2:3]) & (y > gt_box[..., 1:2]) & (y < gt_box[..., 3:4])
    cx = (gt_box[..., 0:1] + gt_box[..., 2:3]) / 2
    cy = (gt_box[..., 1:2] + gt_box[..., 3:4]) / 2
    s = strides[:, 0][None, None]
    near = ((x - cx).abs() < s) & ((y - cy).abs() < s)
    cand = (inside | near) & gt_mask[..., None]  # [B, M, A]

    iou = box_iou(gt_box[:, :, None], boxes[:, None]).clamp(min=0) * cand  # [B, M, A]
    cls_score = scores.gather(2, gt_cls.clamp(min=0)[:, None, :].expand(b, a, m)).transpose(1, 2)
    metric = cls_score.pow(alpha) * iou.pow(beta) * cand
    top = metric.topk(min(topk, a), dim=2).indices
    pos = torch.zeros_like(cand).scatter_(2, top, True) & cand

    # An anchor claimed by several ground truths keeps the one it overlaps most.
    multi = pos.sum(1, keepdim=True) > 1
    best = F.one_hot(iou.argmax(1), m).transpose(1, 2).bool()
    pos = torch.where(multi, best & cand, pos)
    fg = pos.any(1)
    gi = pos.float().argmax(1)  # [B, A]
    t_cls = gt_cls.gather(1, gi).clamp(min=0)
    t_box = gt_box.gather(1, gi[..., None].expand(b, a, 4))

    # Soft targets: the metric normalised per ground truth so its best anchor aims at its best IoU.
    metric = metric * pos
    norm = metric / (metric.amax(2, keepdim=True) + 1e-9) * (iou * pos).amax(2, keepdim=True)
    t_score = F.one_hot(t_cls, c).float() * norm.amax(1)[..., None] * fg[..., None]
    return t_cls, t_box, t_score, fg


class DetectionLoss:
    def __init__(self, reg_max, box_gain=7.5, cls_gain=0.5, dfl_gain=1.5):
        self.r = reg_max
        self.gains = (box_gain, cls_gain, dfl_gain)

    def __call__(self, box_logits, cls_logits, pts, strides, gt_cls, gt_box, gt_mask):
        """Returns (total loss scaled by batch size, detached [box, cls, dfl])."""
        b = box_logits.shape[0]
        box_logits, cls_logits = box_logits.float(), cls_logits.float()
        pred = decode(box_logits, self.r, pts, strides)
        cls_logits = cls_logits.transpose(1, 2)  # [B, A, C]
        _, t_box, t_score, fg = assign(cls_logits.detach().sigmoid(), pred.detach(), pts, strides,
                                       gt_cls, gt_box, gt_mask)
        norm = t_score.sum().clamp(min=1)
        l_cls = F.binary_cross_entropy_with_logits(cls_logits, t_score, reduction="sum") / norm
        if fg.any():
            w = t_score.sum(-1)[fg]
            l_box = ((1 - ciou(pred[fg], t_box[fg])) * w).sum() / norm
            # DFL: put the probability mass on the two bins around the true distance.
            p = pts[None].expand(b, -1, -1)[fg]
            s = strides[None].expand(b, -1, -1)[fg]
            tgt = torch.cat((p - t_box[fg][:, :2], t_box[fg][:, 2:] - p), -1) / s
            tgt = tgt.clamp(0, self.r - 1.01)
            logits = box_logits.view(b, 4, self.r, -1).permute(0, 3, 1, 2)[fg]  # [P, 4, R]
            lo = tgt.long()
            wl = lo + 1 - tgt
            ce = lambda t: F.cross_entropy(logits.reshape(-1, self.r), t.reshape(-1), reduction="none").view(-1, 4)
            l_dfl = ((ce(lo) * wl + ce(lo + 1) * (1 - wl)).mean(-1) * w).sum() / norm
        else:
            l_box = l_dfl = box_logits.sum() * 0
        parts = torch.stack((l_box * self.gains[0], l_cls * self.gains[1], l_dfl * self.gains[2]))
        return parts.sum() * b, parts.detach()
