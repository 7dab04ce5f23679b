"""Renderer: draws scenes at a supersampled resolution and box-filters down to the image size.

Drawing happens in numpy on a canvas `factor` times larger than the output (at least 128 px on a
side) so small glyphs keep their shape and pattern after averaging. An object-id map is drawn
alongside, which gives each object's visible pixel share exactly as it appears in the image.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from visual_priors.world.kinds import COLOURS
from visual_priors.world.scenes import HORIZON, Scene

# 5x7 bitmap font: digits and capitals, one string of five bits per row.
FONT: dict[str, tuple[str, ...]] = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "B": ("11110", "10001", "10001", "11110", "10001", "10001", "11110"),
    "C": ("01110", "10001", "10000", "10000", "10000", "10001", "01110"),
    "D": ("11100", "10010", "10001", "10001", "10001", "10010", "11100"),
    "E": ("11111", "10000", "10000", "11110", "10000", "10000", "11111"),
    "F": ("11111", "10000", "10000", "11110", "10000", "10000", "10000"),
    "G": ("01110", "10001", "10000", "10111", "10001", "10001", "01111"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
    "I": ("01110", "00100", "00100", "00100", "00100", "00100", "01110"),
    "J": ("00111", "00010", "00010", "00010", "00010", "10010", "01100"),
    "K": ("10001", "10010", "10100", "11000", "10100", "10010", "10001"),
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "M": ("10001", "11011", "10101", "10101", "10001", "10001", "10001"),
    "N": ("10001", "10001", "11001", "10101", "10011", "10001", "10001"),
    "O": ("01110", "10001", "10001", "10001", "10001", "10001", "01110"),
    "P": ("11110", "10001", "10001", "11110", "10000", "10000", "10000"),
    "Q": ("01110", "10001", "10001", "10001", "10101", "10010", "01101"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
    "S": ("01111", "10000", "10000", "01110", "00001", "00001", "11110"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "U": ("10001", "10001", "10001", "10001", "10001", "10001", "01110"),
    "V": ("10001", "10001", "10001", "10001", "10001", "01010", "00100"),
    "W": ("10001", "10001", "10001", "10101", "10101", "10101", "01010"),
    "X": ("10001", "10001", "01010", "00100", "01010", "10001", "10001"),
    "Y": ("10001", "10001", "01010", "00100", "00100", "00100", "00100"),
    "Z": ("11111", "00001", "00010", "00100", "01000", "10000", "11111"),
}
_FONT_ARRAYS = {c: np.array([[b == "1" for b in row] for row in rows]) for c, rows in FONT.items()}
FONT_W, FONT_H = 5, 7
INK = (25, 25, 30)
BOARD = (250, 250, 245)
GRID = (205, 205, 205)
_MIN_CANVAS = 128
_GLYPH_CACHE_LIMIT = 8192


def text_extent(text: str, scale: int) -> tuple[int, int]:
    """Width and height in output pixels of `text` at `scale` (one font pixel gap between chars)."""
    n = len(text)
    return (n * (FONT_W + 1) - 1) * scale, FONT_H * scale


def board_extent(text: str, scale: int) -> tuple[int, int]:
    w, h = text_extent(text, scale)
    pad = max(1, scale)
    return w + 2 * pad + 2 * max(1, scale // 2), h + 2 * pad + 2 * max(1, scale // 2)


def _shape_polygon(shape: str, d: int) -> list[tuple[float, float]] | None:
    c = (d - 1) / 2
    R = d / 2
    if shape == "triangle":
        return [(c, 0.0), (d - 1.0, 0.92 * d), (0.0, 0.92 * d)]
    if shape == "diamond":
        return [(c, 0.0), (d - 1.0, c), (c, d - 1.0), (0.0, c)]
    if shape == "hexagon":
        return [(c + R * math.cos(math.pi / 3 * i), c + R * 0.98 * math.sin(math.pi / 3 * i))
                for i in range(6)]
    if shape == "star":
        pts = []
        for i in range(10):
            rad = R if i % 2 == 0 else 0.45 * R
            a = -math.pi / 2 + math.pi / 5 * i
            pts.append((c + rad * math.cos(a), c + 0.05 * d + rad * math.sin(a)))
        return pts
    return None


def shape_mask(shape: str, d: int) -> np.ndarray:
    img = Image.new("L", (d, d), 0)
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse([0, 0, d - 1, d - 1], fill=255)
    elif shape == "square":
        m = 0.07 * d
        draw.rectangle([m, m, d - 1 - m, d - 1 - m], fill=255)
    elif shape == "cross":
        a, b = 0.3 * d, 0.7 * d
        draw.rectangle([a, 0, b, d - 1], fill=255)
        draw.rectangle([0, a, d - 1, b], fill=255)
    else:
        draw.polygon(_shape_polygon(shape, d), fill=255)
    return np.asarray(img) > 127


def _pattern_mask(pattern: str, inner: np.ndarray, d: int) -> np.ndarray:
    if pattern == "plain" or not inner.any():
        return np.zeros_like(inner)
    ys, xs = np.nonzero(inner)
    cy, cx = ys.mean(), xs.mean()
    yy, xx = np.mgrid[0:d, 0:d]
    if pattern == "striped":
        period = max(2.0, d / 3.5)
        region = ((yy + 0.25 * period) % period) < period / 2
    elif pattern == "spotted":
        region = (yy - cy) ** 2 + (xx - cx) ** 2 <= (0.19 * d) ** 2
    elif pattern == "barred":
        region = np.abs(xx - cx) <= max(0.5, 0.12 * d)
    elif pattern == "dotted":
        region = np.zeros((d, d), bool)
        off, rad = 0.2 * d, max(0.7, 0.09 * d)
        for sy in (-1, 1):
            for sx in (-1, 1):
                region |= (yy - cy - sy * off) ** 2 + (xx - cx - sx * off) ** 2 <= rad ** 2
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return region & inner


def _contrast(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (250, 250, 250) if lum < 150 else (30, 30, 30)


def _outline(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    if sum(rgb) < 150:
        return (90, 90, 90)
    return tuple(int(c * 0.5) for c in rgb)


class Renderer:
    def __init__(self, image_size: int):
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {image_size}")
        self.size = image_size
        self.factor = max(1, -(-_MIN_CANVAS // image_size))
        self.hi = image_size * self.factor
        self._glyphs: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._fill_fraction: dict[str, float] = {}

    def glyph(self, shape: str, pattern: str, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fill, outline, pattern) boolean masks of a d x d glyph, cached by size."""
        key = (shape, pattern, d)
        hit = self._glyphs.get(key)
        if hit is not None:
            return hit
        fill = shape_mask(shape, d)
        width = max(1, int(round(d / 14)))
        inner = ndimage.binary_erosion(fill, iterations=width) if d > 4 else fill
        outline = fill & ~inner
        pat = _pattern_mask(pattern, ndimage.binary_erosion(inner, iterations=width)
                            if d > 8 else inner, d)
        if len(self._glyphs) >= _GLYPH_CACHE_LIMIT:
            self._glyphs.clear()
        self._glyphs[key] = (fill, outline, pat)
        return fill, outline, pat

    def fill_fraction(self, shape: str) -> float:
        """Share of its bounding square that a shape covers."""
        if shape not in self._fill_fraction:
            self._fill_fraction[shape] = float(shape_mask(shape, 256).mean())
        return self._fill_fraction[shape]

    # ------------------------------------------------------------------ drawing

    def _background(self, scene: Scene) -> np.ndarray:
        H = self.hi
        canvas = np.empty((H, H, 3), np.uint8)
        canvas[:] = scene.background
        if scene.layout == "scene":
            # A slightly darker ground plane below the horizon gives a depth cue.
            h = int(round(HORIZON * H))
            canvas[h:] = (np.asarray(scene.background, np.float32) * 0.9).astype(np.uint8)
        return canvas

    @staticmethod
    def _paint(canvas: np.ndarray, mask: np.ndarray, x0: int, y0: int, value) -> None:
        H, W = canvas.shape[:2]
        d0, d1 = mask.shape
        ys, ye = max(0, y0), min(H, y0 + d0)
        xs, xe = max(0, x0), min(W, x0 + d1)
        if ys >= ye or xs >= xe:
            return
        sub = mask[ys - y0:ye - y0, xs - x0:xe - x0]
        canvas[ys:ye, xs:xe][sub] = value

    def _draw_text(self, canvas: np.ndarray, text: str, x0: int, y0: int, px: int) -> None:
        for i, ch in enumerate(text):
            bits = _FONT_ARRAYS.get(ch.upper())
            if bits is None:
                continue
            cell = np.kron(bits, np.ones((px, px), bool))
            self._paint(canvas, cell, x0 + i * (FONT_W + 1) * px, y0, INK)

    def _draw_sign(self, canvas: np.ndarray, ids: np.ndarray, scene: Scene) -> None:
        sign = scene.sign
        f = self.factor
        tw, th = text_extent(sign.text, sign.scale)
        if scene.layout == "card":
            # Printed text on the card itself: no board, no post.
            tx0 = int(round(sign.x - tw / 2))
            ty0 = int(round(sign.y - th / 2))
            self._draw_text(canvas, sign.text, tx0 * f, ty0 * f, sign.scale * f)
            return
        bw, bh = board_extent(sign.text, sign.scale)
        # Board corners sit on output pixel boundaries so font pixels stay crisp after averaging.
        bx0 = int(round(sign.x - bw / 2))
        by0 = int(round(sign.y - bh / 2))
        if sign.post:
            pw = max(1, int(round(0.06 * self.hi)))
            post = np.ones((self.hi, pw), bool)
            self._paint(canvas, post, int(round(sign.x * f)) - pw // 2, (by0 + bh // 2) * f,
                        (110, 80, 50))
        border = max(1, sign.scale // 2)
        board = np.ones((bh * f, bw * f), bool)
        self._paint(canvas, board, bx0 * f, by0 * f, INK)
        self._paint(canvas, np.ones(((bh - 2 * border) * f, (bw - 2 * border) * f), bool),
                    (bx0 + border) * f, (by0 + border) * f, BOARD)
        self._paint(ids, board, bx0 * f, by0 * f, -2)
        self._draw_text(canvas, sign.text, (bx0 + (bw - tw) // 2) * f, (by0 + (bh - th) // 2) * f,
                        sign.scale * f)

    def _draw_chart(self, canvas: np.ndarray, scene: Scene) -> None:
        chart = scene.chart
        H = self.hi
        left, right = int(0.1 * H), int(0.97 * H)
        bottom, top = int(0.92 * H), int(0.06 * H)
        unit = (bottom - top) / chart.max_value
        line = max(1, H // 96)
        for v in range(1, chart.max_value + 1):
            y = int(round(bottom - v * unit))
            canvas[y:y + line, left:right] = GRID
        n = len(chart.values)
        slot = (right - left) / n
        if chart.style == "line":
            points = [(left + slot * (i + 0.5), bottom - v * unit) for i, v in enumerate(chart.values)]
            img = Image.fromarray(canvas)
            ImageDraw.Draw(img).line(points, fill=INK, width=max(1, int(round(0.02 * H))))
            canvas[:] = np.asarray(img)
            half = int(round(0.2 * slot))
            for (x, y), colour in zip(points, chart.colours):
                x, y = int(round(x)), int(round(y))
                canvas[max(0, y - half):y + half, x - half:x + half] = COLOURS[colour]
        else:
            for i, (colour, value) in enumerate(zip(chart.colours, chart.values)):
                xa = int(round(left + slot * (i + 0.2)))
                xb = int(round(left + slot * (i + 0.8)))
                ya = int(round(bottom - value * unit))
                canvas[ya:bottom, xa:xb] = COLOURS[colour]
        canvas[top:bottom + line, left - line:left] = INK
        canvas[bottom:bottom + line, left - line:right] = INK

    def _draw_arrows(self, canvas: np.ndarray, scene: Scene) -> np.ndarray:
        f = self.factor
        img = Image.fromarray(canvas)
        draw = ImageDraw.Draw(img)
        width = max(1, int(round(0.025 * self.hi)))
        for a, b in scene.arrows:
            oa, ob = scene.objects[a], scene.objects[b]
            dx, dy = ob.x - oa.x, ob.y - oa.y
            dist = math.hypot(dx, dy) or 1.0
            ux, uy = dx / dist, dy / dist
            tip = (ob.x - ux * ob.radius * 1.05, ob.y - uy * ob.radius * 1.05)
            start = (oa.x + ux * oa.radius, oa.y + uy * oa.radius)
            head = max(2.0, 0.09 * scene.image_size)
            base = (tip[0] - ux * head, tip[1] - uy * head)
            wing = (-uy * head * 0.6, ux * head * 0.6)
            draw.line([(start[0] * f, start[1] * f), (base[0] * f, base[1] * f)], fill=INK,
                      width=width)
            draw.polygon([(tip[0] * f, tip[1] * f),
                          ((base[0] + wing[0]) * f, (base[1] + wing[1]) * f),
                          ((base[0] - wing[0]) * f, (base[1] - wing[1]) * f)], fill=INK)
        return np.array(img)

    def draw(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        """Supersampled canvas [hi, hi, 3] and object-id map [hi, hi] (-1 background, -2 sign)."""
        if scene.image_size != self.size:
            raise ValueError(f"scene was built for {scene.image_size} px, renderer draws {self.size}")
        f = self.factor
        canvas = self._background(scene)
        ids = np.full((self.hi, self.hi), -1, np.int16)
        if scene.chart is not None:
            self._draw_chart(canvas, scene)
        if scene.arrows:
            canvas = self._draw_arrows(canvas, scene)
        for i in scene.draw_order():
            o = scene.objects[i]
            d = max(2, int(round(o.size * f)))
            x0 = int(round(o.x * f - d / 2))
            y0 = int(round(o.y * f - d / 2))
            fill, outline, pat = self.glyph(o.kind.shape, o.kind.pattern, d)
            rgb = COLOURS[o.colour]
            self._paint(canvas, fill, x0, y0, rgb)
            self._paint(canvas, outline, x0, y0, _outline(rgb))
            self._paint(canvas, pat, x0, y0, _contrast(rgb))
            self._paint(ids, fill, x0, y0, i)
        if scene.sign is not None:
            self._draw_sign(canvas, ids, scene)
        return canvas, ids

    def visibility(self, scene: Scene) -> np.ndarray:
        """Per object: the fraction of its in-frame glyph left visible after occlusion."""
        _, ids = self.draw(scene)
        f = self.factor
        seen = np.bincount(ids[ids >= 0].ravel(), minlength=len(scene.objects))
        full = np.zeros(len(scene.objects))
        H = self.hi
        for i, o in enumerate(scene.objects):
            d = max(2, int(round(o.size * f)))
            x0 = int(round(o.x * f - d / 2))
            y0 = int(round(o.y * f - d / 2))
            fill = self.glyph(o.kind.shape, o.kind.pattern, d)[0]
            sub = fill[max(0, -y0):max(0, min(d, H - y0)), max(0, -x0):max(0, min(d, H - x0))]
            full[i] = sub.sum()
        return seen / np.maximum(full, 1)

    def render(self, scene: Scene) -> np.ndarray:
        canvas, _ = self.draw(scene)
        return self.downsample(canvas)

    def downsample(self, canvas: np.ndarray) -> np.ndarray:
        f, S = self.factor, self.size
        if f == 1:
            return canvas.copy()
        small = canvas.reshape(S, f, S, f, 3).mean(axis=(1, 3), dtype=np.float32)
        return (small + 0.5).astype(np.uint8)

    def mask(self, scene: Scene) -> np.ndarray:
        """Object id of each output pixel (its centre sample): -1 background, -2 sign."""
        _, ids = self.draw(scene)
        f = self.factor
        return ids[f // 2::f, f // 2::f].copy()

    def render_with_mask(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        canvas, ids = self.draw(scene)
        f = self.factor
        return self.downsample(canvas), ids[f // 2::f, f // 2::f].copy()
