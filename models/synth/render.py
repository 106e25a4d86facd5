"""Renders one labelled image of a manufactured part under an inspection camera.

The part is drawn in an axis-aligned canvas as albedo (material colour and texture) plus relief
(a height map), defects change albedo and/or relief, and the relief is lit by a directional light so
dents, pores and scratches get highlight and shadow sides the way real ones do. The canvas is then
warped (rotation, scale, mild perspective) onto a background together with a label map, and the boxes
are read off the warped label map, so every box covers exactly the visible pixels of its defect.

Everything random comes from one numpy Generator seeded per image, so a (seed, index) pair always
gives the same bytes, whatever the process split.
"""

import functools

import cv2
import numpy as np

CLASSES = ("scratch", "dent", "crack", "stain", "pore")

# The shifted set uses shapes, materials, lighting and a background the training set never shows.
SHAPES = {False: ("bracket", "washer", "flange", "panel"), True: ("casting", "gear")}
MATERIALS = {False: ("brushed", "cast", "painted", "plastic"), True: ("anodized", "galvanized")}
BACKGROUNDS = {False: ("conveyor", "fixture"), True: ("esd_mat",)}

F32 = np.float32


def smooth_noise(rng, h, w, cells):
    """Gaussian noise with a correlation length of about w / cells pixels."""
    small = rng.standard_normal((cells, max(2, cells * w // h)), dtype=F32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=4)
def grid(h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(F32)
    return yy, xx


# ---------------------------------------------------------------- part shapes (mask, relief extras)


def _circle(img, c, r, v):
    cv2.circle(img, (int(c[0] * 16), int(c[1] * 16)), int(r * 16), v, -1, cv2.LINE_AA, shift=4)


def _poly(img, pts, v):
    cv2.fillPoly(img, [np.round(np.asarray(pts) * 16).astype(np.int32)], v, cv2.LINE_AA, shift=4)


def draw_shape(rng, kind, s, c, r):
    """Returns (mask float 0..1, relief float) of a part of radius about r centred at c."""
    m = np.zeros((s, s), np.uint8)
    relief = np.zeros((s, s), F32)
    cx, cy = c
    if kind == "washer":
        _circle(m, c, r, 255)
        _circle(m, c, r * rng.uniform(0.35, 0.55), 0)
    elif kind == "flange":
        _circle(m, c, r, 255)
        hub = r * rng.uniform(0.45, 0.6)
        cv2.circle(relief, (int(cx), int(cy)), int(hub), 0.6, -1, cv2.LINE_AA)
        _circle(m, c, r * rng.uniform(0.22, 0.32), 0)
        n, a0 = int(rng.integers(4, 9)), rng.uniform(0, np.pi)
        br, rr = r * rng.uniform(0.06, 0.09), r * rng.uniform(0.74, 0.8)
        for k in range(n):
            a = a0 + 2 * np.pi * k / n
            _circle(m, (cx + rr * np.cos(a), cy + rr * np.sin(a)), br, 0)
    elif kind == "bracket":
        w, t = r * rng.uniform(1.5, 1.9), r * rng.uniform(0.55, 0.8)
        x0, y0 = cx - w / 2, cy - w / 2
        _poly(m, [(x0, y0), (x0 + w, y0), (x0 + w, y0 + t), (x0 + t, y0 + t),
                  (x0 + t, y0 + w), (x0, y0 + w)], 255)
        # A bend line along the inner corner reads as a formed sheet-metal bracket.
        cv2.rectangle(relief, (int(x0), int(y0)), (int(x0 + t * 0.45), int(y0 + w)), 0.5, -1)
        for k in range(2):
            hx = x0 + w * (0.55 + 0.25 * k)
            _circle(m, (hx, y0 + t / 2), t * 0.17, 0)
            _circle(m, (x0 + t * 0.65, y0 + w * (0.55 + 0.25 * k)), t * 0.17, 0)
    elif kind == "panel":
        w, h = r * rng.uniform(1.6, 2.0), r * rng.uniform(1.1, 1.6)
        rc = r * 0.15
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        cv2.rectangle(m, (int(x0 + rc), int(y0)), (int(x1 - rc), int(y1)), 255, -1)
        cv2.rectangle(m, (int(x0), int(y0 + rc)), (int(x1), int(y1 - rc)), 255, -1)
        for px, py in ((x0 + rc, y0 + rc), (x1 - rc, y0 + rc), (x0 + rc, y1 - rc), (x1 - rc, y1 - rc)):
            _circle(m, (px, py), rc, 255)
            _circle(m, (px, py), rc * 0.4, 0)
        # Stamped louvres: raised slots with a groove around them.
        for k in range(int(rng.integers(0, 4))):
            ly = y0 + h * (0.3 + 0.15 * k)
            cv2.rectangle(relief, (int(cx - w * 0.25), int(ly)), (int(cx + w * 0.25), int(ly + h * 0.05)), 0.7, -1)
    elif kind == "casting":
        a = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        rad = r * (0.85 + sum(rng.uniform(0, 0.08) * np.cos(k * a + rng.uniform(0, 6)) for k in (2, 3, 5)))
        _poly(m, np.stack([cx + rad * np.cos(a), cy + rad * np.sin(a)], 1), 255)
        for _ in range(2):
            b = rng.uniform(0, 2 * np.pi)
            bc = (cx + r * 0.5 * np.cos(b), cy + r * 0.5 * np.sin(b))
            cv2.circle(relief, (int(bc[0]), int(bc[1])), int(r * 0.22), 0.8, -1, cv2.LINE_AA)
            _circle(m, bc, r * 0.09, 0)
    elif kind == "gear":
        n = int(rng.integers(12, 24))
        a = np.linspace(0, 2 * np.pi, n * 8, endpoint=False)
        tooth = (np.cos(a * n) > 0).astype(F32)
        rad = r * (0.86 + 0.14 * tooth)
        _poly(m, np.stack([cx + rad * np.cos(a), cy + rad * np.sin(a)], 1), 255)
        cv2.circle(relief, (int(cx), int(cy)), int(r * 0.4), 0.5, -1, cv2.LINE_AA)
        _circle(m, c, r * 0.2, 0)
        cv2.rectangle(m, (int(cx - r * 0.05), int(cy - r * 0.26)), (int(cx + r * 0.05), int(cy)), 0, -1)
    else:
        raise ValueError(kind)
    return m.astype(F32) / 255, relief


# ---------------------------------------------------------------- materials


def material(rng, kind, s):
    """Returns (albedo HxWx3 in 0..1, specular strength, specular sharpness, relief noise)."""
    def tint(base, spread):
        return np.clip(np.asarray(base, F32) + rng.uniform(-spread, spread, 3).astype(F32), 0, 1)

    fine = rng.standard_normal((s, s), dtype=F32)
    if kind in ("brushed", "anodized"):
        # Brushing drags the grain along one axis: blur noise along x only, at two lengths.
        streak = cv2.blur(fine, (41, 1)) * 2.2 + cv2.blur(fine, (9, 1)) * 0.6
        lum = 1 + 0.07 * streak
        col = (tint((0.72, 0.72, 0.74), 0.06) if kind == "brushed" else
               np.asarray([(0.55, 0.2, 0.15), (0.2, 0.3, 0.7), (0.2, 0.55, 0.7), (0.25, 0.25, 0.27)]
                          [rng.integers(4)], F32))
        return lum[..., None] * col, rng.uniform(0.5, 0.9), 0.0, streak * 0.02
    if kind == "cast":
        lum = 1 + 0.09 * smooth_noise(rng, s, s, 12) + 0.05 * smooth_noise(rng, s, s, 60) + 0.06 * fine
        grain = cv2.GaussianBlur(fine, (0, 0), 0.8)
        return lum[..., None] * tint((0.5, 0.52, 0.55), 0.06), rng.uniform(0.1, 0.25), 0.0, grain * 0.15
    if kind == "painted":
        palette = [(0.1, 0.75, 0.85), (0.6, 0.35, 0.1), (0.15, 0.15, 0.65), (0.45, 0.47, 0.48), (0.2, 0.5, 0.25)]
        peel = cv2.GaussianBlur(fine, (0, 0), 2.0)
        lum = 1 + 0.02 * fine
        return lum[..., None] * tint(palette[rng.integers(len(palette))], 0.05), rng.uniform(0.2, 0.4), 0.0, peel * 0.3
    if kind == "plastic":
        palette = [(0.12, 0.12, 0.13), (0.85, 0.85, 0.83), (0.6, 0.3, 0.1), (0.1, 0.4, 0.85)]
        lum = 1 + 0.01 * fine
        return lum[..., None] * tint(palette[rng.integers(len(palette))], 0.04), rng.uniform(0.4, 0.7), 0.0, fine * 0.0
    if kind == "galvanized":
        # Zinc spangle: Voronoi crystals of different brightness, from a distance transform's labels.
        seeds = np.full((s, s), 255, np.uint8)
        pts = rng.integers(0, s, (int(rng.integers(40, 120)), 2))
        seeds[pts[:, 1], pts[:, 0]] = 0
        _, lab = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_CCOMP)
        shade = rng.uniform(0.85, 1.15, lab.max() + 1).astype(F32)
        lum = shade[lab] + 0.03 * fine
        return lum[..., None] * tint((0.68, 0.7, 0.7), 0.04), rng.uniform(0.4, 0.6), 0.0, fine * 0.0
    raise ValueError(kind)


# ---------------------------------------------------------------- defects


def _bezier(rng, p0, length, bend):
    a = rng.uniform(0, np.pi)
    d = np.array([np.cos(a), np.sin(a)]) * length
    n = np.array([-d[1], d[0]]) / length
    p2 = p0 + d
    p1 = p0 + d / 2 + n * bend * length
    t = np.linspace(0, 1, max(8, int(length / 3)))[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _polyline_mask(s, pts, widths, values=None):
    m = np.zeros((s, s), F32)
    values = np.ones(len(pts) - 1) if values is None else values
    for a, b, w, v in zip(pts[:-1], pts[1:], widths, values):
        cv2.line(m, (int(a[0] * 16), int(a[1] * 16)), (int(b[0] * 16), int(b[1] * 16)),
                 float(v), int(max(1, round(w))), cv2.LINE_AA, shift=4)
    return m


def defect(rng, cls, s, c, scale, albedo, relief):
    """Draws one defect centred near c into albedo/relief; returns its pixel mask (bool)."""
    name = CLASSES[cls]
    if name == "scratch":
        length = rng.uniform(25, 80) * scale
        pts = _bezier(rng, np.asarray(c, float), length, rng.uniform(-0.25, 0.25))
        pts -= (pts[-1] - pts[0]) / 2
        # A tool mark is deepest mid-stroke and tapers out at both ends.
        t = np.sin(np.linspace(0.15, np.pi - 0.15, len(pts) - 1))
        widths = (1 + rng.uniform(0, 1.5) * t) * scale
        fade = np.clip(_polyline_mask(s, pts, widths, 0.4 + 0.6 * t), 0, 1)
        sign = 1 if rng.random() < 0.5 else -1
        amp = rng.uniform(0.3, 0.55)
        albedo *= (1 + sign * amp * fade)[..., None]
        relief -= 0.4 * fade
        return fade > 0.3
    if name == "dent":
        a, b = rng.uniform(7, 20, 2) * scale
        ang = rng.uniform(0, np.pi)
        depth = rng.uniform(5, 9) * scale
        # A bump with compact support and zero slope at its rim: the dent ends where its label ends.
        x0, y0 = max(0, int(c[0] - max(a, b)) - 1), max(0, int(c[1] - max(a, b)) - 1)
        x1, y1 = min(s, int(c[0] + max(a, b)) + 2), min(s, int(c[1] + max(a, b)) + 2)
        dy, dx = np.mgrid[y0:y1, x0:x1].astype(F32)
        dx -= c[0]
        dy -= c[1]
        u = (dx * np.cos(ang) + dy * np.sin(ang)) / a
        v = (-dx * np.sin(ang) + dy * np.cos(ang)) / b
        g = np.clip(1 - (u * u + v * v), 0, 1) ** 2
        relief[y0:y1, x0:x1] -= depth * g
        albedo[y0:y1, x0:x1] *= (1 - 0.08 * g)[..., None]
        pix = np.zeros((s, s), bool)
        pix[y0:y1, x0:x1] = g > 0
        return pix
    if name == "crack":
        pts = [np.asarray(c, float)]
        # Cracks run along a stress direction that drifts slowly; each segment zig-zags around it.
        base, step = rng.uniform(0, 2 * np.pi), 3.0 * scale
        for _ in range(int(rng.uniform(8, 22))):
            base += rng.normal(0, 0.12)
            ang = base + rng.normal(0, 0.6)
            pts.append(pts[-1] + step * np.array([np.cos(ang), np.sin(ang)]) * rng.uniform(0.6, 1.4))
        pts = np.array(pts)
        pts -= (pts[-1] - pts[0]) / 2
        m = _polyline_mask(s, pts, np.full(len(pts), scale * rng.uniform(1, 1.6)))
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.integers(2, len(pts) - 1))
            b_ang = np.arctan2(*(pts[k] - pts[k - 1])[::-1]) + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1)
            br = [pts[k]]
            for _ in range(int(rng.integers(3, 8))):
                b_ang += rng.normal(0, 0.25)
                br.append(br[-1] + step * np.array([np.cos(b_ang), np.sin(b_ang)]))
            m = np.maximum(m, _polyline_mask(s, np.array(br), np.full(len(br), scale)))
        albedo *= (1 - rng.uniform(0.6, 0.85) * m)[..., None]
        relief -= 0.6 * m
        return m > 0.3
    if name == "stain":
        blob = np.zeros((s, s), F32)
        rad = rng.uniform(7, 20) * scale
        for _ in range(int(rng.integers(3, 7))):
            o = rng.normal(0, rad * 0.45, 2)
            ax = (int(rad * rng.uniform(0.35, 0.8)), int(rad * rng.uniform(0.3, 0.7)))
            cv2.ellipse(blob, (int(c[0] + o[0]), int(c[1] + o[1])), ax, rng.uniform(0, 180), 0, 360, 1.0, -1)
        blob = cv2.GaussianBlur(blob, (0, 0), rad * 0.18 + 0.5)
        blob *= 1 + 0.3 * smooth_noise(rng, s, s, 40)
        alpha = rng.uniform(0.45, 0.7) * np.clip(blob, 0, 1)[..., None]
        if albedo.mean() > 0.3:  # oil, rust or water mark: a tinted darkening
            tint = np.asarray([(0.55, 0.65, 0.8), (0.5, 0.5, 0.5), (0.45, 0.6, 0.75)][rng.integers(3)], F32)
            albedo[:] = albedo * (1 - alpha * (1 - tint))
        else:  # on dark parts, dried residue shows up lighter
            albedo[:] = albedo + alpha * np.asarray((0.2, 0.21, 0.22), F32)
        return blob > 0.2
    if name == "pore":
        rad = rng.uniform(1.8, 4.5) * scale
        d = np.zeros((s, s), F32)
        cv2.circle(d, (int(c[0] * 16), int(c[1] * 16)), int(rad * 16), 1.0, -1, cv2.LINE_AA, shift=4)
        d = cv2.GaussianBlur(d, (0, 0), 0.6 * scale)
        relief -= 4 * scale * d
        albedo *= (1 - 0.75 * d)[..., None]
        rim = np.zeros((s, s), np.uint8)
        cv2.circle(rim, (int(c[0]), int(c[1])), int(rad + 1.5 * scale + 0.5), 1, -1)
        return rim > 0
    raise ValueError(name)


# ---------------------------------------------------------------- benign features (hard negatives)

MARK_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789-/."


def benign_features(rng, s, r, mask, relief, albedo):
    """Adds surface features a detector must not report: tonal patches or grain, bosses around design
    holes, stiffening ribs, printed or lasered markings and stickers, dust. Each is present on some
    parts. Training generator only: the shifted set keeps its own surfaces, never seen in training.
    Changes mask, relief and albedo in place; returns the height of the part's edge in the relief."""
    scale = s / 320
    ys, xs = np.nonzero(mask > 0.5)

    def spot():
        k = rng.integers(len(xs))
        return float(xs[k]), float(ys[k])

    if rng.random() < 0.45:
        amp = rng.uniform(0.04, 0.2)
        if rng.random() < 0.5:  # grains of different brightness, from a distance transform's labels
            seeds = np.full((s, s), 255, np.uint8)
            pts = rng.integers(0, s, (int(rng.integers(12, 400)), 2))
            seeds[pts[:, 1], pts[:, 0]] = 0
            _, lab = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_CCOMP)
            patches = rng.uniform(1 - amp, 1 + amp, lab.max() + 1).astype(F32)[lab]
        else:  # mottling: smooth noise cut into a few flat levels, sharp-edged like heat tint or coating
            n = smooth_noise(rng, s, s, int(rng.integers(3, 16)))
            levels = int(rng.integers(2, 6))
            q = np.floor((n - n.min()) / (np.ptp(n) + 1e-6) * levels) / max(1, levels - 1)
            patches = (1 + amp * (2 * q - 1)).astype(F32)
        if rng.random() < 0.4:
            patches = cv2.GaussianBlur(patches, (0, 0), rng.uniform(0.5, 3) * scale)
        albedo *= patches[..., None]
    if rng.random() < 0.4:  # cast or pressed bosses around design holes (a boss without one would
        # shade like a dent under a light from the other side)
        holes = np.full((s, s), 255, np.uint8)
        for _ in range(int(rng.integers(1, 5))):
            p, br = spot(), r * rng.uniform(0.08, 0.22)
            cv2.circle(relief, (int(p[0]), int(p[1])), int(br), float(rng.uniform(0.3, 1.2)), -1, cv2.LINE_AA)
            _circle(holes, p, br * rng.uniform(0.3, 0.65), 0)
        mask *= holes.astype(F32) / 255
    if rng.random() < 0.2:  # stiffening ribs: straight raised lines
        for _ in range(int(rng.integers(1, 4))):
            (x0, y0), (x1, y1) = spot(), spot()
            cv2.line(relief, (int(x0), int(y0)), (int(x1), int(y1)), float(rng.uniform(0.3, 0.8)),
                     max(1, int(rng.uniform(2, 7) * scale)), cv2.LINE_AA)
    if rng.random() < 0.3:  # part numbers in ink or lasered, sometimes on a sticker
        ink = np.zeros((s, s), np.uint8)  # putText draws into 8-bit images only
        x, y = spot()
        text = "".join(rng.choice(list(MARK_CHARS), int(rng.integers(3, 11))))
        font_scale = rng.uniform(0.3, 0.9) * scale
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        if rng.random() < 0.35:
            pad = 4 * scale
            cv2.rectangle(albedo, (int(x - pad), int(y - th - pad)), (int(x + tw + pad), int(y + pad)),
                          tuple(float(v) for v in rng.uniform(0.3, 1.0, 3)), -1)
        cv2.putText(ink, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, 255,
                    int(rng.integers(1, 3)), cv2.LINE_AA)
        colour = np.asarray((0.08, 0.08, 0.08) if rng.random() < 0.6 else (0.95, 0.95, 0.93), F32)
        a = ink[..., None].astype(F32) * (rng.uniform(0.5, 0.95) / 255)
        albedo[:] = albedo * (1 - a) + colour * a
    if rng.random() < 0.25:  # dust and lint: light specks and short fibres lying on the part
        dust = np.zeros((s, s), F32)
        for _ in range(int(rng.integers(3, 30))):
            p = spot()
            _circle(dust, p, rng.uniform(0.5, 1.6) * scale, 1.0)
        for _ in range(int(rng.integers(0, 3))):
            pts = _bezier(rng, np.asarray(spot()), rng.uniform(6, 20) * scale, rng.uniform(-0.4, 0.4))
            dust = np.maximum(dust, _polyline_mask(s, pts, np.full(len(pts), scale)))
        albedo[:] = albedo + (rng.uniform(0.1, 0.35) * np.clip(dust, 0, 1))[..., None]
    return float(rng.uniform(2, 5))


# ---------------------------------------------------------------- backgrounds and camera


def background(rng, kind, h, w):
    fine = rng.standard_normal((h, w), dtype=F32)
    if kind == "conveyor":
        base = rng.uniform(0.12, 0.25)
        yy = np.arange(h, dtype=F32)[:, None]
        ribs = 0.03 * np.sin(yy * rng.uniform(0.8, 1.6)) * np.ones((1, w), F32)
        lum = base * (1 + 0.15 * smooth_noise(rng, h, w, 8) + 0.08 * fine) + ribs
        img = np.repeat(lum[..., None], 3, 2)
        for y0 in (0, h - int(h * rng.uniform(0.04, 0.08))):  # side rails sometimes in view
            if rng.random() < 0.4:
                img[y0:y0 + int(h * 0.06)] = rng.uniform(0.45, 0.6)
        return img
    if kind == "fixture":
        lum = rng.uniform(0.35, 0.55) * (1 + 0.05 * cv2.blur(fine, (31, 1)) + 0.04 * fine)
        img = np.repeat(lum[..., None], 3, 2) * np.asarray((1.0, 1.0, 0.97), F32)
        pitch = int(h * rng.uniform(0.12, 0.2))
        off = rng.integers(0, pitch, 2)
        for y in range(int(off[1]), h, pitch):
            for x in range(int(off[0]), w, pitch):
                cv2.circle(img, (x, y), max(2, pitch // 9), (0.08, 0.08, 0.08), -1, cv2.LINE_AA)
        return img
    if kind == "esd_mat":
        col = np.asarray([(0.25, 0.45, 0.28), (0.55, 0.4, 0.3)][rng.integers(2)], F32)
        lum = 1 + 0.1 * smooth_noise(rng, h, w, 6) + 0.1 * fine
        return lum[..., None] * col
    raise ValueError(kind)


class Part:
    """A lit part in its own square canvas, centred: colour (float BGR), coverage mask, label map
    (defect i has value i + 1) and what the scene around it needs to match its light."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def lit_part(rng, drng, s, shifted, p_clean=0.25, defects=True, frng=None):
    """Draws shape, material, defects (from drng) and light (from rng) into an s x s canvas, with
    benign surface features (from frng) on the training generator's parts."""
    scale = s / 320
    shape = SHAPES[shifted][rng.integers(len(SHAPES[shifted]))]
    mat = MATERIALS[shifted][rng.integers(len(MATERIALS[shifted]))]
    r = s * rng.uniform(0.27, 0.36)
    c = (s / 2, s / 2)
    mask, relief = draw_shape(rng, shape, s, c, r)
    albedo, spec_k, _, relief_tex = material(rng, mat, s)
    edge = 3 if shifted or frng is None else benign_features(frng, s, r, mask, relief, albedo)
    relief = cv2.GaussianBlur(mask * edge + relief, (0, 0), 1.2 * scale) + relief_tex

    # Defects sit on solid material away from edges and holes, and never overlap each other.
    inner = cv2.erode((mask > 0.5).astype(np.uint8), np.ones((9, 9), np.uint8), iterations=max(1, int(2 * scale)))
    ys, xs = np.nonzero(inner)
    label = np.zeros((s, s), np.uint8)
    classes, centres = [], []
    n = 0 if drng.random() < p_clean or not defects else int(drng.integers(1, 5))
    for _ in range(n):
        for _try in range(10):
            k = drng.integers(len(xs))
            pc = (float(xs[k]), float(ys[k]))
            if all(np.hypot(pc[0] - q[0], pc[1] - q[1]) > 45 * scale for q in centres):
                break
        else:
            continue
        cls = int(drng.integers(len(CLASSES)))
        saved = albedo.copy(), relief.copy()
        pix = defect(drng, cls, s, pc, scale, albedo, relief) & (mask > 0.5) & (label == 0)
        if pix.sum() < 6 * scale * scale:  # too little of it visible to label: undo it
            albedo, relief = saved
            continue
        centres.append(pc)
        classes.append(cls)
        label[pix] = len(classes)

    # Light: direction in the image plane, a gradient across the field and a specular lobe. The lobe
    # is stretched across the brushing direction on brushed metal, as anisotropic reflection does.
    la = rng.uniform(0, 2 * np.pi)
    ldir = np.array([np.cos(la), np.sin(la)], F32)
    gx = cv2.Sobel(relief, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(relief, cv2.CV_32F, 0, 1, ksize=3) / 8
    diffuse = np.clip(0.85 + 0.9 * (gx * ldir[0] + gy * ldir[1]) / scale, 0.15, 1.8)
    yy, xx = grid(s, s)
    grad = 1 + rng.uniform(0.1, 0.45 if shifted else 0.3) * ((xx - s / 2) * ldir[0] + (yy - s / 2) * ldir[1]) / s
    hc = np.asarray(c) + rng.uniform(-0.5, 0.5, 2) * r
    sx, sy = (r * 0.35, r * 1.2) if mat in ("brushed", "anodized") else (r * 0.35, r * 0.35)
    spec = np.exp(-(((xx - hc[0]) / sx) ** 2 + ((yy - hc[1]) / sy) ** 2)) * spec_k
    if mat in ("brushed", "anodized", "galvanized"):
        spec *= np.clip(1 + 3 * relief_tex, 0.3, 2)
    spec *= np.clip(diffuse, 0, 1.3)
    exposure = rng.uniform(0.6, 0.9) if shifted else rng.uniform(0.85, 1.15)
    light = (np.asarray((0.85, 1.0, 1.2), F32) if shifted else np.asarray((1.0, 1.0, 1.0), F32)) * exposure
    if shifted:
        light = light[rng.permutation(3)] if rng.random() < 0.5 else light
    image = (albedo * (diffuse * grad)[..., None] + spec[..., None] * 0.8) * light
    return Part(image=image, mask=mask, label=label, classes=classes, shape=shape, material=mat, r=r, c=c,
                ldir=ldir, grad=grad, light=light)


def cast_shadow(rng, mask, ldir, scale):
    """Soft shadow coverage (0..1) of a part's mask, thrown away from the light."""
    off = -ldir * rng.uniform(3, 10) * scale
    h, w = mask.shape
    shadow = cv2.warpAffine(mask, np.float32([[1, 0, off[0]], [0, 1, off[1]]]), (w, h))
    return cv2.GaussianBlur(shadow, (0, 0), 3 * scale) * rng.uniform(0.3, 0.6)


class Camera:
    """One camera's vignetting, focus blur, sensor noise and JPEG quality."""

    def __init__(self, rng, scale):
        self.vignette = rng.uniform(0.1, 0.3)
        self.sigma, self.shot, self.read, self.quality, self.noise_seed = (
            rng.uniform(0, 1.0) * scale, rng.uniform(0.0002, 0.0015), rng.uniform(1e-5, 2e-4),
            int(rng.integers(55, 96)), int(rng.integers(2**31)))

    def shoot(self, img, effects=True, frame=0):
        """float BGR scene (0..1) -> uint8 BGR image; `effects=False` keeps only the vignetting.
        Each frame index gets its own sensor noise."""
        h, w = img.shape[:2]
        yy, xx = grid(h, w)
        img = img * (1 - self.vignette * (((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (h * w / 2)))[..., None]
        if effects and self.sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), self.sigma)
        img = np.clip(img, 0, 1)
        if effects:
            # OpenCV's generator is several times faster than numpy's for a full-frame draw; seeding it
            # from rng keeps the image a pure function of (seed, index).
            cv2.setRNGSeed((self.noise_seed + frame) % 2**31)
            noise = np.empty(img.shape, F32)
            cv2.randn(noise, 0.0, 1.0)
            img = img + noise * np.sqrt(img * self.shot + self.read)
        img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        if effects:
            img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])[1], cv2.IMREAD_COLOR)
        return img


def boxes_of(label, classes):
    """[k, 5] class, x1, y1, x2, y2 of each labelled defect with at least 4 visible pixels."""
    boxes = []
    for i, cls in enumerate(classes):
        ys, xs = np.nonzero(label == i + 1)
        if len(xs) >= 4:
            boxes.append((cls, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    return np.asarray(boxes, F32).reshape(-1, 5)


def render(seed, index, size=320, shifted=False, p_clean=0.25, defects=True, camera=True):
    """Returns (BGR uint8 image, labels float32 [k, 5] as class, x1, y1, x2, y2 in pixels).

    Defects draw from their own random stream, so `defects=False` renders the same scene without
    them (its clean twin); `camera=False` leaves out blur, noise and JPEG. Both serve the checks.
    """
    rng = np.random.default_rng([int(seed), int(index), int(shifted)])
    drng = np.random.default_rng([int(seed), int(index), int(shifted), 1])
    frng = np.random.default_rng([int(seed), int(index), int(shifted), 4])
    s = size
    scale = s / 320
    part = lit_part(rng, drng, s, shifted, p_clean, defects, frng)

    # Place the part: rotation, scale, translation kept inside the frame, and corner jitter for
    # a camera that is not quite square to the belt.
    ang = rng.uniform(-180, 180)
    sc = rng.uniform(0.85, 1.15)
    room = max(0.0, s / 2 - part.r * 1.05 * sc * 1.1)
    tx, ty = rng.uniform(-room, room, 2)
    M = cv2.getRotationMatrix2D(part.c, ang, sc)
    M[:, 2] += (tx, ty)
    src = np.float32([[0, 0], [s, 0], [s, s], [0, s]])
    dst = cv2.transform(src[None], M)[0] + rng.uniform(-0.04, 0.04, (4, 2)).astype(F32) * s
    H = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warp = lambda a, interp: cv2.warpPerspective(a, H, (s, s), flags=interp, borderValue=0)
    part_w = warp(part.image, cv2.INTER_LINEAR)
    mask_w = warp(part.mask, cv2.INTER_LINEAR)
    label_w = warp(part.label, cv2.INTER_NEAREST)

    bg = background(rng, BACKGROUNDS[shifted][rng.integers(len(BACKGROUNDS[shifted]))], s, s)
    bg *= (part.grad[..., None] * part.light * 0.9)
    bg *= (1 - cast_shadow(rng, mask_w, part.ldir, scale))[..., None]
    img = bg * (1 - mask_w[..., None]) + part_w * mask_w[..., None]
    return Camera(rng, scale).shoot(img, camera), boxes_of(label_w, part.classes)
