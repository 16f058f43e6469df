"""Procedural people and flat garments for the synthetic VITON data.

A figure is described once, as a :class:`Person`, in *design pixels*: the CP-VTON frame, 192 wide x 256 high. It is
drawn at any output size by scaling x and y independently, so the raw 762x1100 VITON files and the 192x256 CP-VTON
files come from one drawing (VITON's resize to 256x192 scales the two axes unequally too).

The LIP label map is drawn first (PIL polygons and ellipses, no anti-aliasing) and the RGB image is painted from it,
one colour or texture per label, so parse and image agree exactly. LIP has no neck label: the neck is labelled
13 (Face), as LIP-trained parsers label it. The person faces the camera, so the person's left arm (14), leg (16)
and shoe (18) are on the image's right.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from vton.core.formats import FINE_HEIGHT, FINE_WIDTH, LABEL, NUM_JOINTS, RAW_HEIGHT, RAW_WIDTH

Point = tuple[float, float]
RGB = tuple[int, int, int]

PATTERNS = ("solid", "stripes", "checks", "dots", "print")
SLEEVES = ("sleeveless", "short", "long")
_MAX_CHANNEL = 230  # garment colours stay well below VITON's 250 "white" threshold, so masks have no holes


@dataclass(frozen=True)
class Texture:
    """A garment texture in garment units (one unit = one design pixel at person scale 1)."""

    pattern: str
    base: RGB
    accent: RGB
    period: float
    horizontal: bool


@dataclass(frozen=True)
class Garment:
    """Upper-clothes outline in garment units, relative to the neck-base centre (y grows downwards)."""

    shoulder: float  # half width at the shoulders
    waist: float
    hem: float  # half width at the hem
    length: float  # neck base to hem
    neck_dip: float  # depth of the neckline below the neck base
    sleeve: str  # one of SLEEVES
    sleeve_frac: float  # short sleeves cover this share of the upper arm
    texture: Texture


@dataclass(frozen=True)
class Person:
    """Everything needed to draw one person and their garment; coordinates in design pixels."""

    scale: float
    joints: tuple[Point, ...]  # OpenPose-18 order, before frame clipping
    visible: tuple[bool, ...]  # False where the estimator would not report the joint (turned ear)
    confidence: tuple[float, ...]
    head_center: Point
    head_size: tuple[float, float]  # width, height
    neck_base: Point
    waist_y: float
    hip_y: float
    hip_half: float
    hat: bool
    long_hair: float  # hair length below the neck base in person units, 0 for short hair
    skirt_len: float  # 0 for pants, else skirt hem below the hip line in person units
    garment: Garment
    colors: dict[str, RGB]
    cloth_scale: float  # garment unit in design pixels on the flat cloth image


def _color(rng: np.random.Generator, low: int = 15, high: int = _MAX_CHANNEL) -> RGB:
    return tuple(int(v) for v in rng.integers(low, high + 1, 3))  # type: ignore[return-value]


def _distinct_colors(rng: np.random.Generator) -> tuple[RGB, RGB]:
    base = _color(rng)
    while True:
        accent = _color(rng)
        if sum(abs(a - b) for a, b in zip(base, accent)) >= 150:
            return base, accent


def _make_texture(rng: np.random.Generator) -> Texture:
    base, accent = _distinct_colors(rng)
    return Texture(
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))], base=base, accent=accent,
        period=float(rng.uniform(6.0, 14.0)), horizontal=bool(rng.random() < 0.5),
    )


def _arm(rng: np.random.Generator, shoulder: Point, side: int, s: float) -> tuple[Point, Point]:
    """Elbow and wrist for one arm; ``side`` -1 = image left (person's right). Shrinks the pose until it fits."""
    spread, bend = rng.uniform(6.0, 42.0), rng.uniform(-15.0, 55.0)
    upper, fore, margin = 46.0 * s, 42.0 * s, 10.0 * s
    for _ in range(12):
        a_up, a_fore = math.radians(spread), math.radians(spread - bend)
        elbow = (shoulder[0] + side * upper * math.sin(a_up), shoulder[1] + upper * math.cos(a_up))
        wrist = (elbow[0] + side * fore * math.sin(a_fore), elbow[1] + fore * math.cos(a_fore))
        if all(margin <= p[0] <= FINE_WIDTH - 1 - margin for p in (elbow, wrist)):
            break
        spread, bend = spread * 0.7, bend * 0.7
    return elbow, wrist


def make_person(rng: np.random.Generator) -> Person:
    """Draw a random person: pose, build, clothes and colours all from ``rng``."""
    s = float(rng.uniform(0.85, 1.1))
    cx = float(rng.uniform(84.0, 108.0))
    top = float(rng.uniform(12.0, 24.0))
    head_w, head_h = 31.0 * s * rng.uniform(0.93, 1.07), 40.0 * s
    head_c = (cx + float(rng.uniform(-3.0, 3.0)) * s, top + head_h / 2)
    neck_y = top + head_h + 11.0 * s
    neck = (cx, neck_y)
    shoulder_half = 30.0 * s * rng.uniform(0.92, 1.08)
    sh_y = neck_y + 4.0 * s
    r_sh, l_sh = (cx - shoulder_half, sh_y), (cx + shoulder_half, sh_y)
    r_el, r_wr = _arm(rng, r_sh, -1, s)
    l_el, l_wr = _arm(rng, l_sh, +1, s)
    waist_y = neck_y + 72.0 * s
    hip_y = waist_y + 16.0 * s
    hip_half = 26.0 * s * rng.uniform(0.92, 1.08)
    stance = float(rng.uniform(0.0, 10.0)) * s
    r_hip, l_hip = (cx - 13.0 * s, hip_y), (cx + 13.0 * s, hip_y)
    r_knee, l_knee = (r_hip[0] - stance / 2, hip_y + 52.0 * s), (l_hip[0] + stance / 2, hip_y + 52.0 * s)
    r_ank, l_ank = (r_hip[0] - stance, hip_y + 104.0 * s), (l_hip[0] + stance, hip_y + 104.0 * s)
    yaw = float(rng.uniform(-1.0, 1.0))
    eye_y = head_c[1] - 0.05 * head_h
    nose = (head_c[0] + 0.2 * yaw * head_w, head_c[1] + 0.1 * head_h)
    r_eye = (head_c[0] + (0.15 * yaw - 0.2) * head_w, eye_y)
    l_eye = (head_c[0] + (0.15 * yaw + 0.2) * head_w, eye_y)
    r_ear, l_ear = (head_c[0] - 0.42 * head_w, head_c[1]), (head_c[0] + 0.42 * head_w, head_c[1])
    joints = (nose, neck, r_sh, r_el, r_wr, l_sh, l_el, l_wr, r_hip, r_knee, r_ank, l_hip, l_knee, l_ank,
              r_eye, l_eye, r_ear, l_ear)
    visible = [True] * NUM_JOINTS
    if yaw > 0.55:  # face turned to the person's left: the left ear hides
        visible[17] = False
    elif yaw < -0.55:
        visible[16] = False
    sleeve = SLEEVES[int(rng.choice(3, p=[0.15, 0.5, 0.35]))]
    waist_half = 22.0 * rng.uniform(0.9, 1.1)
    hem_drop = float(rng.uniform(4.0, 22.0))
    garment = Garment(
        shoulder=shoulder_half / s, waist=waist_half, hem=waist_half + hem_drop * 0.3 + 3.0,
        length=72.0 + hem_drop, neck_dip=float(rng.uniform(3.0, 14.0)), sleeve=sleeve,
        sleeve_frac=float(rng.uniform(0.45, 0.85)), texture=_make_texture(rng),
    )
    tones = ((241, 194, 160), (224, 172, 129), (198, 134, 96), (141, 85, 54), (92, 58, 40))
    skin = tones[int(rng.integers(len(tones)))]
    gray = int(rng.integers(226, 251))
    colors = {
        "background": (gray, gray, min(255, gray + int(rng.integers(0, 5)))),
        "skin": tuple(int(np.clip(c + rng.integers(-10, 11), 0, 255)) for c in skin),
        "hair": _color(rng, 10, 120), "hat": _color(rng), "bottom": _color(rng, 10, 200),
        "shoes": _color(rng, 10, 90), "features": (40, 25, 20),
    }
    return Person(
        scale=s, joints=joints, visible=tuple(visible),
        confidence=tuple(round(float(c), 6) for c in rng.uniform(0.3, 0.99, NUM_JOINTS)),
        head_center=head_c, head_size=(head_w, head_h), neck_base=neck, waist_y=waist_y, hip_y=hip_y,
        hip_half=hip_half, hat=bool(rng.random() < 0.25),
        long_hair=float(rng.uniform(5.0, 35.0)) if rng.random() < 0.5 else 0.0,
        skirt_len=float(rng.uniform(22.0, 55.0)) if rng.random() < 0.4 else 0.0,
        garment=garment, colors=colors,  # type: ignore[arg-type]
        cloth_scale=float(rng.uniform(1.35, 1.7)),
    )


class _Canvas:
    """A label canvas of any size addressed in design pixels (x and y scaled separately)."""

    def __init__(self, width: int, height: int) -> None:
        self.image = Image.new("L", (width, height), 0)
        self.draw = ImageDraw.Draw(self.image)
        self.sx, self.sy = width / FINE_WIDTH, height / FINE_HEIGHT

    def polygon(self, points: list[Point], label: int) -> None:
        self.draw.polygon([(x * self.sx, y * self.sy) for x, y in points], fill=label)

    def ellipse(self, c: Point, rx: float, ry: float, label: int) -> None:
        box = ((c[0] - rx) * self.sx, (c[1] - ry) * self.sy, (c[0] + rx) * self.sx, (c[1] + ry) * self.sy)
        self.draw.ellipse(box, fill=label)

    def limb(self, p0: Point, p1: Point, r0: float, r1: float, label: int) -> None:
        """A tapered segment with round ends: joints on it lie well inside the region."""
        dx, dy = p1[0] - p0[0], p1[1] - p0[1]
        norm = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / norm, dx / norm
        self.polygon([(p0[0] + nx * r0, p0[1] + ny * r0), (p1[0] + nx * r1, p1[1] + ny * r1),
                      (p1[0] - nx * r1, p1[1] - ny * r1), (p0[0] - nx * r0, p0[1] - ny * r0)], label)
        self.ellipse(p0, r0, r0, label)
        self.ellipse(p1, r1, r1, label)

    def array(self) -> np.ndarray:
        return np.asarray(self.image, dtype=np.uint8)


def _garment_body(g: Garment, origin: Point, unit: float) -> list[Point]:
    """Torso outline of the upper clothes (shared by the worn and the flat garment)."""
    half = [(9.0, -3.0), (g.shoulder + 1.0, 0.0), (g.shoulder + 6.0, 8.0), (g.shoulder - 2.0, 36.0),
            (g.waist, 72.0), (g.hem, g.length)]
    right = [(origin[0] - x * unit, origin[1] + y * unit) for x, y in half]
    left = [(origin[0] + x * unit, origin[1] + y * unit) for x, y in reversed(half)]
    return right + left + [(origin[0], origin[1] + g.neck_dip * unit * 0.3)]


def _lerp(p0: Point, p1: Point, t: float) -> Point:
    return (p0[0] + (p1[0] - p0[0]) * t, p0[1] + (p1[1] - p0[1]) * t)


def _above(points: list[Point], y_cut: float) -> list[Point]:
    """Clip a closed polygon to the half plane y <= y_cut (Sutherland-Hodgman with one edge)."""
    out: list[Point] = []
    for i, p in enumerate(points):
        q = points[(i + 1) % len(points)]
        if p[1] <= y_cut:
            out.append(p)
        if (p[1] <= y_cut) != (q[1] <= y_cut):
            out.append(_lerp(p, q, (y_cut - p[1]) / (q[1] - p[1])))
    return out


def _ellipse_points(c: Point, rx: float, ry: float, n: int = 48) -> list[Point]:
    return [(c[0] + rx * math.cos(2 * math.pi * k / n), c[1] + ry * math.sin(2 * math.pi * k / n)) for k in range(n)]


def draw_labels(p: Person, width: int = FINE_WIDTH, height: int = FINE_HEIGHT) -> np.ndarray:
    """The LIP label map of ``p`` at ``width`` x ``height`` (uint8, H x W), painted back to front."""
    cv, s, g = _Canvas(width, height), p.scale, p.garment
    j = p.joints
    hx, hy = p.head_center
    hw, hh = p.head_size
    for hip, knee, ankle, leg, shoe, side in ((j[8], j[9], j[10], "Right-leg", "Right-shoe", -1),
                                                (j[11], j[12], j[13], "Left-leg", "Left-shoe", 1)):
        cv.limb(hip, knee, 10.0 * s, 7.0 * s, LABEL[leg])
        cv.limb(knee, ankle, 7.0 * s, 5.0 * s, LABEL[leg])
        cv.ellipse((ankle[0] + side * 3.0 * s, ankle[1] + 5.0 * s), 8.0 * s, 5.5 * s, LABEL[shoe])
        if not p.skirt_len:
            cv.limb(hip, knee, 12.5 * s, 9.5 * s, LABEL["Pants"])
            cv.limb(knee, _lerp(knee, ankle, 0.92), 9.5 * s, 8.0 * s, LABEL["Pants"])
    cx, wy, hipy, hiph = p.neck_base[0], p.waist_y, p.hip_y, p.hip_half
    waist_half = g.waist * s
    if p.skirt_len:
        flare = hiph + 0.25 * p.skirt_len * s
        cv.polygon([(cx - waist_half, wy), (cx + waist_half, wy), (cx + hiph, hipy),
                    (cx + flare, hipy + p.skirt_len * s), (cx - flare, hipy + p.skirt_len * s), (cx - hiph, hipy)],
                   LABEL["Skirt"])
    else:
        cv.polygon([(cx - waist_half, wy), (cx + waist_half, wy), (cx + hiph, hipy), (cx + hiph - 2 * s, hipy + 14 * s),
                    (cx, hipy + 12 * s), (cx - hiph + 2 * s, hipy + 14 * s), (cx - hiph, hipy)], LABEL["Pants"])
    cv.polygon(_garment_body(g, p.neck_base, s), LABEL["UpperClothes"])
    if p.long_hair:
        for side in (-1, 1):
            inner, outer = hx + side * 0.35 * hw, hx + side * (0.5 * hw + 5.0 * s)
            bottom = p.neck_base[1] + p.long_hair * s
            cv.polygon([(inner, hy), (outer, hy - 0.1 * hh), (outer + side * 2 * s, bottom), (inner, bottom)],
                       LABEL["Hair"])
    for sh, el, wr, arm in ((j[2], j[3], j[4], "Right-arm"), (j[5], j[6], j[7], "Left-arm")):
        hand = _lerp(el, wr, 1.0 + 5.0 * s / math.dist(el, wr))
        cv.limb(sh, el, 7.0 * s, 6.0 * s, LABEL[arm])
        cv.limb(el, wr, 5.5 * s, 4.5 * s, LABEL[arm])
        cv.ellipse(hand, 5.0 * s, 5.0 * s, LABEL[arm])
        if g.sleeve == "short":
            cv.limb(sh, _lerp(sh, el, g.sleeve_frac), 9.0 * s, 8.5 * s, LABEL["UpperClothes"])
        elif g.sleeve == "long":
            cv.limb(sh, el, 9.0 * s, 7.5 * s, LABEL["UpperClothes"])
            cv.limb(el, wr, 7.5 * s, 6.0 * s, LABEL["UpperClothes"])
    nx = (hx + cx) / 2
    chin = hy + 0.4 * hh
    cv.polygon([(nx - 6 * s, chin), (nx + 6 * s, chin), (cx + 7 * s, p.neck_base[1] + 2 * s),
                (cx, p.neck_base[1] + g.neck_dip * s), (cx - 7 * s, p.neck_base[1] + 2 * s)], LABEL["Face"])
    hair = _ellipse_points((hx, hy - 0.1 * hh), hw / 2 + 2.5 * s, hh / 2 + 1.5 * s)
    cv.polygon(hair, LABEL["Hair"])
    cv.ellipse((hx, hy), hw / 2, hh / 2, LABEL["Face"])
    cv.polygon(_above(hair, hy - 0.28 * hh), LABEL["Hair"])  # the fringe over the forehead
    if p.hat:
        top = hy - hh / 2
        cv.ellipse((hx, top + 0.1 * hh), hw / 2 + 1.5 * s, 0.3 * hh, LABEL["Hat"])
        cv.ellipse((hx, top + 0.3 * hh), hw / 2 + 8 * s, 3 * s, LABEL["Hat"])
    return cv.array()


def design_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Design-pixel coordinates of the pixel centres of a ``width`` x ``height`` image."""
    xs = (np.arange(width, dtype=np.float32) + 0.5) * (FINE_WIDTH / width) - 0.5
    ys = (np.arange(height, dtype=np.float32) + 0.5) * (FINE_HEIGHT / height) - 0.5
    return np.meshgrid(xs, ys)


def texture_rgb(t: Texture, xd: np.ndarray, yd: np.ndarray, origin: Point, unit: float) -> np.ndarray:
    """Texture colours at design coordinates, for a garment whose neck base is ``origin`` at ``unit`` px/unit."""
    u, v = (xd - origin[0]) / unit, (yd - origin[1]) / unit
    half = t.period / 2
    if t.pattern == "stripes":
        accent = np.floor((v if t.horizontal else u) / half) % 2 == 1
    elif t.pattern == "checks":
        accent = (np.floor(u / half) + np.floor(v / half)) % 2 == 1
    elif t.pattern == "dots":
        du, dv = u - t.period * np.round(u / t.period), v - t.period * np.round(v / t.period)
        accent = du * du + dv * dv < (0.3 * t.period) ** 2
    elif t.pattern == "print":  # a ring motif on the chest
        d = np.hypot(u, v - 28.0)
        accent = (d < 13.0) & (d > 7.0)
    else:
        accent = np.zeros(u.shape, dtype=bool)
    return np.where(accent[..., None], np.array(t.accent, np.uint8), np.array(t.base, np.uint8))


def paint_person(p: Person, labels: np.ndarray) -> np.ndarray:
    """RGB person image (H x W x 3 uint8) painted from its label map: one colour per label, texture on clothes."""
    c = p.colors
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = c["background"]
    for name in ("Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg"):
        lut[LABEL[name]] = c["skin"]
    lut[LABEL["Hair"]], lut[LABEL["Hat"]] = c["hair"], c["hat"]
    lut[LABEL["Pants"]] = lut[LABEL["Skirt"]] = c["bottom"]
    lut[LABEL["Left-shoe"]] = lut[LABEL["Right-shoe"]] = c["shoes"]
    rgb = lut[labels]
    cloth = labels == LABEL["UpperClothes"]
    xd, yd = design_grid(labels.shape[1], labels.shape[0])
    rgb[cloth] = texture_rgb(p.garment.texture, xd[cloth], yd[cloth], p.neck_base, p.scale)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)  # eyes and mouth lie inside the Face label, as in real parses
    sx, sy = labels.shape[1] / FINE_WIDTH, labels.shape[0] / FINE_HEIGHT
    s, hy, hh = p.scale, p.head_center[1], p.head_size[1]
    for eye in (p.joints[14], p.joints[15]):
        draw.ellipse(((eye[0] - 1.6 * s) * sx, (eye[1] - 1.2 * s) * sy,
                      (eye[0] + 1.6 * s) * sx, (eye[1] + 1.2 * s) * sy), fill=c["features"])
    mouth_x, mouth_y = p.joints[0][0], hy + 0.27 * hh
    draw.line([((mouth_x - 4 * s) * sx, mouth_y * sy), ((mouth_x + 4 * s) * sx, mouth_y * sy)],
              fill=(150, 60, 60), width=max(1, round(s * sy)))
    return np.asarray(image)


def draw_cloth(p: Person, width: int = FINE_WIDTH, height: int = FINE_HEIGHT) -> np.ndarray:
    """The flat in-shop garment of ``p`` on white (H x W x 3 uint8), the same texture as worn."""
    g, unit = p.garment, p.cloth_scale
    angle = math.radians(20.0 if g.sleeve == "long" else 40.0)
    reach = 88.0 if g.sleeve == "long" else 46.0 * g.sleeve_frac
    shoulder = (g.shoulder + 2.0, 4.0)
    sleeve_end = (shoulder[0] + reach * math.sin(angle), shoulder[1] + reach * math.cos(angle))
    sleeved = g.sleeve != "sleeveless"
    half_width = max(g.shoulder + 11.0, sleeve_end[0] + 9.0) if sleeved else g.shoulder + 6.0
    top, bottom = 6.0, max(g.length, sleeve_end[1] + 9.0) if sleeved else g.length
    unit = min(unit, (FINE_WIDTH / 2 - 6.0) / half_width, (FINE_HEIGHT - 12.0) / (top + bottom))
    origin = (FINE_WIDTH / 2, (FINE_HEIGHT - (top + bottom) * unit) / 2 + top * unit)
    cv = _Canvas(width, height)
    cv.polygon(_garment_body(g, origin, unit), 1)
    if sleeved:
        for side in (-1, 1):
            p0 = (origin[0] + side * shoulder[0] * unit, origin[1] + shoulder[1] * unit)
            p1 = (origin[0] + side * sleeve_end[0] * unit, origin[1] + sleeve_end[1] * unit)
            cv.limb(p0, p1, 9.0 * unit, (6.5 if g.sleeve == "long" else 8.5) * unit, 1)
    mask = cv.array() > 0
    rgb = np.full((height, width, 3), 255, np.uint8)
    xd, yd = design_grid(width, height)
    rgb[mask] = texture_rgb(g.texture, xd[mask], yd[mask], origin, unit)
    return rgb


def keypoints(person: Person, labels: np.ndarray) -> np.ndarray:
    """(18, 3) x, y, confidence at 192x256, as convert_data.m derives them from integer raw-image positions.

    A joint outside the frame (ankles below the picture), hidden (a turned ear) or off the figure is ``0, 0, 0``.
    """
    sx, sy = RAW_WIDTH / FINE_WIDTH, RAW_HEIGHT / FINE_HEIGHT
    out = np.zeros((NUM_JOINTS, 3))
    for j, ((x, y), shown, conf) in enumerate(zip(person.joints, person.visible, person.confidence)):
        x, y = round(x * sx) / sx, round(y * sy) / sy
        inside = 1 < x < FINE_WIDTH - 1 and 1 < y < FINE_HEIGHT - 1
        if shown and inside and labels[int(y), int(x)] > 0:
            out[j] = (x, y, conf)
    return out
