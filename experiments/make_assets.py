"""Create the pictures of the textured MountainCar look (Rocamonde et al. 2023, section 4.2).

    python -m experiments.make_assets [--out vlmrm_jax/render/assets] [--seed 0]

Writes ``mountain_car_background.png`` (600 x 400 RGB: sky, clouds, distant mountains, a grassy hill whose outline is
the task's track ``sin(3 x) * 0.45 + 0.55`` and the yellow flag at the goal) and ``mountain_car_sprite.png``
(256 x 112 RGBA: a red car seen from the side, facing +x, tyres touching the bottom edge). Everything is drawn
procedurally from a fixed seed (NumPy noise, Pillow shapes), so the pictures are the project's own and license-clean;
the same seed gives the same pictures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from vlmrm_jax.envs.classic.render import (ASSETS_DIR, CANVAS_HEIGHT, CANVAS_WIDTH, MOUNTAIN_CAR_GOAL_POSITION,
                                      MOUNTAIN_CAR_MIN_POSITION, MOUNTAIN_CAR_SCALE, mountain_car_height)

SPRITE_SIZE = (256, 112)  # width, height in texels


def fbm(rng: np.random.Generator, shape: tuple[int, int], base_cells: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0, 1], float32 ``shape``: ``octaves`` bicubically upsampled random grids, halving in
    amplitude and doubling in frequency from ``base_cells`` cells across the width."""
    h, w = shape
    total = np.zeros(shape, np.float64)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        cells = base_cells * 2 ** octave
        grid = rng.random((cells * h // w + 4, cells + 3))
        up = ndimage.zoom(grid, (h / (grid.shape[0] - 3), w / (grid.shape[1] - 3)), order=3)
        total += amplitude * up[:h, :w]
        norm += amplitude
        amplitude *= 0.5
    total /= norm
    return ((total - total.min()) / (total.max() - total.min())).astype(np.float32)


def _lerp(a, b, t):
    return np.asarray(a, np.float32) + (np.asarray(b, np.float32) - np.asarray(a, np.float32)) * t[..., None]


def _over(image: np.ndarray, colour, alpha: np.ndarray) -> np.ndarray:
    return image * (1 - alpha[..., None]) + np.asarray(colour, np.float32) * alpha[..., None]


def make_background(seed: int = 0) -> np.ndarray:
    """The background canvas, uint8 [400, 600, 3] (row 0 at the top)."""
    rng = np.random.default_rng(seed)
    h, w = CANVAS_HEIGHT, CANVAS_WIDTH
    v = (CANVAS_HEIGHT - 0.5 - np.arange(h))[:, None] * np.ones((1, w))  # canvas y (up) of each row
    u = np.ones((h, 1)) * (np.arange(w) + 0.5)[None, :]

    # Sky: deep blue at the top, hazy near the horizon, with a soft sun glow.
    image = _lerp((168, 206, 236), (62, 122, 196), np.clip(v / h, 0, 1) ** 0.8)
    glow = np.exp(-((u - 110) ** 2 + (v - 345) ** 2) / (2 * 70.0 ** 2))
    image = _over(image, (255, 246, 214), 0.3 * glow)
    image = _over(image, (255, 250, 228), np.clip(19 - np.hypot(u - 110, v - 345), 0, 1))  # the sun's disc

    # Clouds: soft blobs modulated by noise, shaded grey underneath.
    cloud_noise = fbm(rng, (h, w), 6)
    cover = np.zeros((h, w), np.float32)
    for cx, cy, rx, ry in ((95, 330, 80, 20), (300, 365, 105, 18), (480, 315, 90, 22), (555, 372, 55, 12)):
        cover += np.exp(-(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2))
    clouds = np.clip((cover * (0.55 + 0.9 * cloud_noise) - 0.45) * 2.2, 0, 1)
    shade = np.clip((ndimage.shift(clouds, (-4, 0), order=1) - clouds) * 3, 0, 1)
    image = _over(image, (250, 251, 253), 0.92 * clouds)
    image = _over(image, (186, 194, 210), 0.5 * shade * clouds)

    # Distant mountains: two ridgelines of ridged 1-D noise (sharp peaks), the far one paler and bluer (haze).
    for base, amp, cells, colour, haze in ((150, 120, 4, (132, 150, 184), (178, 198, 226)),
                                           (95, 70, 7, (78, 112, 104), (132, 160, 170))):
        ridge = 1 - np.abs(2 * fbm(rng, (4, w), cells, octaves=6)[1] - 1)
        ridge = base + amp * (ridge - 0.5)
        mask = np.clip(ridge[None, :] - v + 0.5, 0, 1)
        rock = fbm(rng, (h, w), 60, octaves=3)
        tone = _lerp(np.asarray(colour) * 0.92, np.asarray(colour) * 1.06, rock)
        tone = _lerp(tone, haze, 0.5 * np.clip(1 - v / base, 0, 1))  # hazier toward the valley floor
        image = image * (1 - mask[..., None]) + tone * mask[..., None]

    # The hill: the track's outline, a dirt road along its surface, textured grass below, darker with depth.
    world_x = u / MOUNTAIN_CAR_SCALE + MOUNTAIN_CAR_MIN_POSITION
    surface = mountain_car_height(world_x) * MOUNTAIN_CAR_SCALE
    depth = surface - v  # canvas px below the surface (negative above it)
    grass_noise = fbm(rng, (h, w), 30, octaves=5)
    blades = ndimage.gaussian_filter(rng.random((h, w)), (1.2, 0.3))
    blades = (blades - blades.mean()) / blades.std()
    grass = _lerp((52, 108, 36), (112, 168, 62), np.clip(grass_noise * 0.8 + 0.12 * blades + 0.1, 0, 1))
    grass *= np.clip(1.05 - depth / 500, 0.6, 1.05)[..., None]
    road_noise = fbm(rng, (h, w), 80, octaves=3)
    road = _lerp((120, 94, 62), (164, 134, 96), road_noise)
    ground = np.where((depth < 7)[..., None], road, grass)
    edge = np.clip(depth + 0.5, 0, 1)  # anti-aliased outline
    image = image * (1 - edge[..., None]) + ground * edge[..., None]
    image = _over(image, (86, 132, 44), np.clip(1 - np.abs(depth - 8) / 1.5, 0, 1) * 0.8)  # grass fringe

    image = np.clip(image, 0, 255).astype(np.uint8)

    # The flag at the goal: a white pole with a waving yellow pennant, drawn at 4x and downsampled.
    big = Image.fromarray(image).resize((w * 4, h * 4), Image.BICUBIC)
    draw = ImageDraw.Draw(big)
    flag_x = (MOUNTAIN_CAR_GOAL_POSITION - MOUNTAIN_CAR_MIN_POSITION) * MOUNTAIN_CAR_SCALE
    foot = mountain_car_height(MOUNTAIN_CAR_GOAL_POSITION) * MOUNTAIN_CAR_SCALE - 2
    top = foot + 62

    def px(x, y):  # canvas (y up) -> 4x image pixels
        return 4 * x, 4 * (CANVAS_HEIGHT - y)

    draw.rectangle([*px(flag_x - 1.2, top + 2), *px(flag_x + 1.2, foot)], fill=(235, 235, 228))
    draw.ellipse([*px(flag_x - 2.2, top + 4.5), *px(flag_x + 2.2, top + 0.5)], fill=(200, 170, 40))
    t = np.linspace(0, 1, 40)
    upper = [px(flag_x + 1.2 + 34 * s, top - 1 - 3 * np.sin(np.pi * s) * (1 - s) - 4 * s) for s in t]
    lower = [px(flag_x + 1.2 + 34 * s, top - 21 - 3 * np.sin(np.pi * s) * (1 - s) + 4 * s) for s in t[::-1]]
    draw.polygon(upper + lower, fill=(250, 206, 20), outline=(205, 160, 10))
    small = big.filter(ImageFilter.GaussianBlur(1.0)).resize((w, h), Image.LANCZOS)
    return np.asarray(small)


def make_sprite() -> np.ndarray:
    """The car sprite, uint8 [112, 256, 4] RGBA, facing +x, drawn at 4x and downsampled."""
    k = 4
    w, h = SPRITE_SIZE
    big = Image.new("RGBA", (w * k, h * k), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)

    def p(x, y):  # sprite texels, y up from the bottom edge -> 4x image pixels
        return k * x, k * (h - y)

    def poly(points, fill, outline=None, width=0):
        draw.polygon([p(x, y) for x, y in points], fill=fill, outline=outline, width=width)

    body = (200, 30, 36)
    # Lower body with bumpers, then the cabin.
    poly([(10, 22), (8, 40), (14, 54), (60, 60), (92, 90), (170, 92), (214, 62), (244, 56), (250, 44), (248, 22)],
         fill=body)
    draw.rounded_rectangle([*p(6, 46), *p(252, 20)], radius=k * 8, fill=body)
    poly([(12, 54), (60, 60), (214, 62), (244, 56), (246, 52), (12, 50)], fill=(232, 70, 70))  # highlight
    # Windows, split by the door pillar.
    poly([(70, 62), (98, 86), (138, 86), (138, 62)], fill=(150, 190, 215))
    poly([(144, 62), (144, 86), (166, 86), (200, 62)], fill=(140, 180, 208))
    poly([(98, 86), (112, 86), (86, 66), (76, 64)], fill=(205, 228, 240))  # glare
    draw.line([p(141, 60), p(141, 26)], fill=(130, 18, 22), width=k)  # door seam
    draw.line([p(96, 44), p(108, 44)], fill=(90, 10, 14), width=k)  # handles
    draw.line([p(160, 44), p(172, 44)], fill=(90, 10, 14), width=k)
    draw.rectangle([*p(236, 46), *p(251, 38)], fill=(255, 236, 160))  # headlight
    draw.rectangle([*p(6, 46), *p(13, 36)], fill=(255, 70, 40))  # tail light
    draw.rectangle([*p(6, 24), *p(252, 18)], fill=(40, 40, 44))  # sill / bumpers
    # Wheels: dark wheel arches, tyres, silver rims with hubs.
    for cx in (58, 200):
        draw.chord([*p(cx - 26, 47), *p(cx + 26, -5)], 180, 360, fill=(30, 8, 10))
        draw.ellipse([*p(cx - 21, 42), *p(cx + 21, 0)], fill=(24, 24, 26))
        draw.ellipse([*p(cx - 12, 33), *p(cx + 12, 9)], fill=(185, 188, 196))
        draw.ellipse([*p(cx - 5, 26), *p(cx + 5, 16)], fill=(95, 98, 106))
    sprite = big.resize((w, h), Image.LANCZOS)
    return np.asarray(sprite)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.make_assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ASSETS_DIR, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="seed of the background's noise")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_background(args.seed)).save(args.out / "mountain_car_background.png", optimize=True)
    Image.fromarray(make_sprite()).save(args.out / "mountain_car_sprite.png", optimize=True)
    print(f"wrote {args.out / 'mountain_car_background.png'} and {args.out / 'mountain_car_sprite.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
