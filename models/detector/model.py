"""An anchor-free single-stage detector in the YOLOv8n size class, written here from scratch.

CSP backbone with SiLU, SPPF, a PAN neck over strides 8/16/32, and a decoupled head per level that
predicts class logits and, per box side, a distribution over `reg_max` distances (DFL). `Export`
turns the raw outputs into the Ultralytics detect layout `[1, 4 + classes, anchors]` (cx, cy, w, h in
input pixels, sigmoid scores), so the kiosk's engine runs it like any Ultralytics export.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

STRIDES = (8, 16, 32)


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut):
        super().__init__()
        self.a, self.b = Conv(c, c, 3), Conv(c, c, 3)
        self.shortcut = shortcut

    def forward(self, x):
        y = self.b(self.a(x))
        return x + y if self.shortcut else y


class CSP(nn.Module):
    """Cross-stage partial block: half the channels bypass, every bottleneck's output is kept."""

    def __init__(self, c1, c2, n, shortcut=True):
        super().__init__()
        self.h = c2 // 2
        self.stem = Conv(c1, 2 * self.h)
        self.blocks = nn.ModuleList(Bottleneck(self.h, shortcut) for _ in range(n))
        self.fuse = Conv((2 + n) * self.h, c2)

    def forward(self, x):
        ys = list(self.stem(x).split(self.h, 1))
        for b in self.blocks:
            ys.append(b(ys[-1]))
        return self.fuse(torch.cat(ys, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling by three chained 5x5 max pools (receptive fields 5, 9, 13)."""

    def __init__(self, c1, c2):
        super().__init__()
        self.a, self.b = Conv(c1, c1 // 2), Conv(c1 // 2 * 4, c2)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.a(x)
        p1 = self.pool(x)
        p2 = self.pool(p1)
        return self.b(torch.cat((x, p1, p2, self.pool(p2)), 1))


class Detector(nn.Module):
    def __init__(self, num_classes, width=(16, 32, 64, 128, 256), depth=(1, 2, 2, 1), reg_max=16):
        super().__init__()
        w, d = width, depth
        self.nc, self.reg_max = num_classes, reg_max
        self.stem = nn.Sequential(Conv(3, w[0], 3, 2), Conv(w[0], w[1], 3, 2), CSP(w[1], w[1], d[0]))
        self.s3 = nn.Sequential(Conv(w[1], w[2], 3, 2), CSP(w[2], w[2], d[1]))
        self.s4 = nn.Sequential(Conv(w[2], w[3], 3, 2), CSP(w[3], w[3], d[2]))
        self.s5 = nn.Sequential(Conv(w[3], w[4], 3, 2), CSP(w[4], w[4], d[3]), SPPF(w[4], w[4]))
        # PAN: top-down brings context to fine levels, bottom-up brings detail back to coarse ones.
        self.td4 = CSP(w[4] + w[3], w[3], d[3], shortcut=False)
        self.td3 = CSP(w[3] + w[2], w[2], d[3], shortcut=False)
        self.down3 = Conv(w[2], w[2], 3, 2)
        self.bu4 = CSP(w[2] + w[3], w[3], d[3], shortcut=False)
        self.down4 = Conv(w[3], w[3], 3, 2)
        self.bu5 = CSP(w[3] + w[4], w[4], d[3], shortcut=False)
        chans = (w[2], w[3], w[4])
        cb, cc = max(16, chans[0] // 4, 4 * reg_max), max(chans[0], min(num_classes, 100))
        self.box = nn.ModuleList(
            nn.Sequential(Conv(c, cb, 3), Conv(cb, cb, 3), nn.Conv2d(cb, 4 * reg_max, 1)) for c in chans)
        self.cls = nn.ModuleList(
            nn.Sequential(Conv(c, cc, 3), Conv(cc, cc, 3), nn.Conv2d(cc, num_classes, 1)) for c in chans)
        self.init_biases()

    def init_biases(self, imgsz=640):
        # Start every score near the prior of a few objects per image, so early BCE is not swamped
        # by thousands of easy negatives; box logits start flat.
        for box, cls, s in zip(self.box, self.cls, STRIDES):
            box[-1].bias.data[:] = 1.0
            cls[-1].bias.data[:] = math.log(5 / self.nc / (imgsz / s) ** 2)

    def forward(self, x):
        """Returns (box logits [B, 4 * reg_max, A], class logits [B, classes, A]) over all levels."""
        p3 = self.s3(self.stem(x))
        p4 = self.s4(p3)
        p5 = self.s5(p4)
        t4 = self.td4(torch.cat((F.interpolate(p5, scale_factor=2.0, mode="nearest"), p4), 1))
        o3 = self.td3(torch.cat((F.interpolate(t4, scale_factor=2.0, mode="nearest"), p3), 1))
        o4 = self.bu4(torch.cat((self.down3(o3), t4), 1))
        o5 = self.bu5(torch.cat((self.down4(o4), p5), 1))
        feats = (o3, o4, o5)
        box = torch.cat([b(f).flatten(2) for b, f in zip(self.box, feats)], 2)
        cls = torch.cat([c(f).flatten(2) for c, f in zip(self.cls, feats)], 2)
        return box, cls


def anchors(imgsz, device=None):
    """Anchor centres [A, 2] in input pixels and their strides [A, 1], level by level, row-major."""
    pts, strides = [], []
    for s in STRIDES:
        n = imgsz // s
        ys, xs = torch.meshgrid(torch.arange(n, device=device), torch.arange(n, device=device), indexing="ij")
        pts.append((torch.stack((xs, ys), -1).reshape(-1, 2) + 0.5) * s)
        strides.append(torch.full((n * n, 1), float(s), device=device))
    return torch.cat(pts), torch.cat(strides)


def dfl_expect(box_logits, reg_max):
    """[B, 4 * R, A] logits -> [B, A, 4] expected distances in stride units."""
    b, _, a = box_logits.shape
    prob = box_logits.view(b, 4, reg_max, a).softmax(2)
    bins = torch.arange(reg_max, device=box_logits.device, dtype=prob.dtype)
    return (prob * bins[None, None, :, None]).sum(2).transpose(1, 2)


def decode(box_logits, reg_max, pts, strides):
    """Returns boxes [B, A, 4] as x1, y1, x2, y2 in input pixels."""
    d = dfl_expect(box_logits, reg_max) * strides
    return torch.cat((pts - d[..., :2], pts + d[..., 2:]), -1)


class Export(nn.Module):
    """The inference graph, written with the ops an Ultralytics export uses (Reshape, Transpose,
    Softmax, a 1x1 Conv for the DFL expectation, Slice, Add/Sub/Mul/Div, Sigmoid, Concat)."""

    def __init__(self, model, imgsz):
        super().__init__()
        self.model, self.r = model, model.reg_max
        pts, strides = anchors(imgsz)
        self.register_buffer("pts", pts.T[None].contiguous())  # [1, 2, A]
        self.register_buffer("strides", strides.T[None].contiguous())  # [1, 1, A]
        self.dfl = nn.Conv2d(self.r, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(self.r, dtype=torch.float).view(1, self.r, 1, 1)

    def forward(self, x):
        box, cls = self.model(x)
        a = box.shape[2]
        prob = box.view(1, 4, self.r, a).transpose(2, 1).softmax(1)
        d = self.dfl(prob).view(1, 4, a)
        lt, rb = d[:, :2], d[:, 2:]
        xy = self.pts + (rb - lt) / 2 * self.strides
        wh = (lt + rb) * self.strides
        return torch.cat((xy, wh, cls.sigmoid()), 1)
