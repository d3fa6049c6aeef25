"""A loss-curve chart drawn with Pillow (no matplotlib needed): loss on a log axis against step."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 30, 50


def loss_curve_image(steps: Sequence[int], losses: Sequence[float], title: str = "training loss") -> np.ndarray:
    """An (H, W, 3) uint8 chart of ``losses`` (log scale) over ``steps``."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.text((LEFT, 8), title, fill="black")
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    draw.rectangle([x0, y0, x1, y1], outline="black")
    points = [(s, v) for s, v in zip(steps, losses, strict=True) if v > 0 and math.isfinite(v)]
    if not points:
        draw.text((x0 + 10, y0 + 10), "no loss values yet", fill="gray")
        return np.asarray(image)

    s_min, s_max = points[0][0], max(points[-1][0], points[0][0] + 1)
    log_values = [math.log10(v) for _, v in points]
    lo, hi = math.floor(min(log_values) * 4) / 4, math.ceil(max(log_values) * 4) / 4
    hi = hi if hi > lo else lo + 0.25

    def to_xy(step: float, log_value: float) -> tuple[float, float]:
        return (x0 + (step - s_min) / (s_max - s_min) * (x1 - x0), y1 - (log_value - lo) / (hi - lo) * (y1 - y0))

    for k in range(5):  # y ticks, evenly spaced in log10
        log_value = lo + (hi - lo) * k / 4
        _, y = to_xy(s_min, log_value)
        draw.line([x0 - 4, y, x0, y], fill="black")
        draw.line([x0 + 1, y, x1 - 1, y], fill=(230, 230, 230))
        draw.text((6, y - 6), f"{10**log_value:.3g}", fill="black")
    for k in range(5):  # x ticks
        step = s_min + (s_max - s_min) * k / 4
        x, _ = to_xy(step, lo)
        draw.line([x, y1, x, y1 + 4], fill="black")
        draw.text((x - 12, y1 + 8), f"{step:.0f}", fill="black")
    draw.text(((x0 + x1) // 2 - 12, HEIGHT - 20), "step", fill="black")
    xy = [to_xy(s, lv) for (s, _), lv in zip(points, log_values, strict=True)]
    if len(xy) == 1:
        draw.ellipse([xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2], fill=(31, 119, 180))
    else:
        draw.line(xy, fill=(31, 119, 180), width=2)
    return np.asarray(image)
