"""Procedural colour fundus photographs: the retina plugin's embedded default dataset.

Each image is a 45-degree colour fundus photograph drawn from scratch: a circular field
of view on black, an orange-red retina with vignetting and low-frequency texture, the
optic disc with its paler cup, the darker macula about 2.5 disc diameters temporal to
the disc, and a branching vessel tree. Diabetic-retinopathy lesions are added according
to the grade (0 none, 1 mild, 2 moderate, 3 severe non-proliferative, 4 proliferative):
microaneurysms, dot and blot haemorrhages, hard exudates, cotton-wool spots and
neovascularisation. Exposure, colour tint, gamma and blur vary per image so that the
grade, not the camera, is the signal.

Geometry is sampled in units of the image side, so the same anatomy renders at any size
from 16 to 512 pixels; lesions keep a minimum size of about one pixel at small sizes.
Everything here is pure numpy and Pillow.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vfm.platform.errors import VfmError

NUM_GRADES = 5
"""Diabetic-retinopathy grades 0 (none) to 4 (proliferative)."""

MIN_IMAGE_SIZE = 16
"""The smallest side, in pixels, that still shows a fundus."""

_MIN_LESION_PX = 0.6
"""Lesion radii and line half-widths never shrink below this many output pixels."""

_STEP = 0.018
"""Vessel polyline step, in units of the image side."""


@dataclass(frozen=True)
class _Polyline:
    """A vessel or new-vessel path, in units of the image side.

    Attributes:
        points: float64 [K, 2], (x, y) along the path.
        widths: float64 [K], the vessel width at each point.
        strength: how strongly it absorbs light, 0..1.
    """

    points: np.ndarray
    widths: np.ndarray
    strength: float


@dataclass(frozen=True)
class _Blob:
    """A soft elliptical spot, in units of the image side.

    Attributes:
        x: centre column.
        y: centre row.
        rx: radius along the rotated x axis.
        ry: radius along the rotated y axis.
        theta: rotation in radians.
        strength: peak opacity, 0..1.
        sharpness: super-Gaussian order; 1 is a Gaussian, larger is flatter with a crisper edge.
    """

    x: float
    y: float
    rx: float
    ry: float
    theta: float
    strength: float
    sharpness: float


@dataclass(frozen=True)
class _Anatomy:
    """Everything about one eye and one exposure that does not depend on the grade.

    Positions and sizes are in units of the image side.

    Attributes:
        centre: (x, y) of the circular field of view.
        radius: radius of the field of view.
        nasal: +1 when the nasal side (the disc) is to the right, -1 to the left.
        disc: (x, y) of the optic disc.
        disc_radius: horizontal radius of the disc.
        disc_aspect: vertical over horizontal disc radius.
        cup: (x, y) of the optic cup.
        cup_radius: radius of the cup.
        macula: (x, y) of the fovea, 2.5 disc diameters temporal to the disc.
        retina_rgb: float32 [3], the fundus colour.
        disc_rgb: float32 [3], the neuroretinal rim colour.
        vignette: how much darker the edge of the field is than its centre.
        tilt: (x, y) linear illumination gradient.
        brightness: global exposure factor.
        tint: float32 [3], per-channel colour cast.
        gamma: tone-curve exponent.
        blur: defocus, in pixels at 256 px (scaled with the image size).
    """

    centre: tuple[float, float]
    radius: float
    nasal: float
    disc: tuple[float, float]
    disc_radius: float
    disc_aspect: float
    cup: tuple[float, float]
    cup_radius: float
    macula: tuple[float, float]
    retina_rgb: np.ndarray
    disc_rgb: np.ndarray
    vignette: float
    tilt: tuple[float, float]
    brightness: float
    tint: np.ndarray
    gamma: float
    blur: float


@dataclass(frozen=True)
class _Lesions:
    """The grade-dependent lesions of one image.

    Attributes:
        haemorrhages: microaneurysms, dot and blot haemorrhages (dark red).
        exudates: hard exudates (bright yellow).
        cotton_wool: cotton-wool spots (pale, fluffy).
        new_vessels: neovascular tufts (fine, tortuous, red).

    Haemorrhages also hold grade 4's occasional large pre-retinal haemorrhage.
    """

    haemorrhages: list[_Blob]
    exudates: list[_Blob]
    cotton_wool: list[_Blob]
    new_vessels: list[_Polyline]


@dataclass(frozen=True)
class _Sprouts:
    """A batch of vessels still to grow, in units of the image side.

    Attributes:
        start: float64 [B, 2], where each vessel leaves its parent.
        angle: float64 [B], starting direction, radians in image coordinates (y down).
        width: float64 [B], starting width.
        length: float64 [B], path length.
        curvature: float64 [B], initial turn, radians per unit length.
        decay: float64 [B], the path length over which the curvature fades.
        strength: float64 [B], light absorption 0..1.
        depth: int64 [B], branching depth; depth 3 does not branch.
    """

    start: np.ndarray
    angle: np.ndarray
    width: np.ndarray
    length: np.ndarray
    curvature: np.ndarray
    decay: np.ndarray
    strength: np.ndarray
    depth: np.ndarray


def generate(
    n: int,
    *,
    seed: int = 0,
    image_size: int = 64,
    grades: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` labelled synthetic fundus photographs.

    Sample ``i`` depends only on ``(seed, i)``, so a longer set extends a shorter one:
    ``generate(10)[0][:5]`` equals ``generate(5)[0]``.

    Args:
        n: number of images.
        seed: dataset seed.
        image_size: side S of the square images, at least 16.
        grades: the grade (0-4) of each image, length ``n``. When None, grades cycle
            through 0-4 in shuffled blocks of five, so the classes are balanced.

    Returns:
        images: uint8 [n, S, S, 3], RGB.
        labels: int64 [n], the diabetic-retinopathy grade of each image.

    Raises:
        VfmError: a negative ``n``, an ``image_size`` below 16, or invalid ``grades``.
    """
    if n < 0:
        raise VfmError(f"cannot generate {n} images", where="synthetic.generate", fix="pass n >= 0")
    if image_size < MIN_IMAGE_SIZE:
        raise VfmError(
            f"image_size {image_size} is too small for a synthetic fundus",
            where="synthetic.generate",
            fix=f"use image_size >= {MIN_IMAGE_SIZE}",
        )
    labels = balanced_grades(n, seed=seed) if grades is None else _check_grades(grades, n)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    for i in range(n):
        images[i] = render_fundus(np.random.default_rng([seed, i]), int(labels[i]), image_size)
    return images, labels


def balanced_grades(n: int, *, seed: int = 0) -> np.ndarray:
    """Balanced grades: 0-4 in blocks of five, each block shuffled by ``(seed, block)``.

    Args:
        n: number of labels.
        seed: dataset seed.

    Returns:
        int64 [n]; a prefix of a longer result for the same seed.
    """
    blocks = [
        np.random.default_rng([seed, block, NUM_GRADES]).permutation(NUM_GRADES) for block in range(-(-n // NUM_GRADES))
    ]
    return np.concatenate(blocks, dtype=np.int64)[:n] if blocks else np.zeros(0, dtype=np.int64)


def render_fundus(rng: np.random.Generator, grade: int, image_size: int) -> np.ndarray:
    """Render one fundus photograph of the given grade.

    The eye and the exposure are drawn from ``rng`` independently of ``grade``; the
    lesions come from a child generator split off first. Two calls with equally seeded
    generators and different grades therefore show the same eye with different lesions,
    and at grade 0 no lesion at all.

    Args:
        rng: the sample's random generator; it is advanced.
        grade: diabetic-retinopathy grade, 0-4.
        image_size: side S in pixels, at least 16.

    Returns:
        uint8 [S, S, 3], RGB, black outside the circular field of view.

    Raises:
        VfmError: a grade outside 0-4 or an ``image_size`` below 16.
    """
    if not 0 <= grade < NUM_GRADES:
        raise VfmError(
            f"grade {grade} is not a diabetic-retinopathy grade",
            where="synthetic.render_fundus",
            fix="use a grade from 0 to 4",
        )
    if image_size < MIN_IMAGE_SIZE:
        raise VfmError(
            f"image_size {image_size} is too small for a synthetic fundus",
            where="synthetic.render_fundus",
            fix=f"use image_size >= {MIN_IMAGE_SIZE}",
        )
    lesion_rng = np.random.default_rng(rng.integers(2**63))
    anatomy = _sample_anatomy(rng)
    vessels = _sample_vessel_tree(rng, anatomy)
    texture = _smooth_noise(rng, 5, image_size), _smooth_noise(rng, 22, image_size)
    noise = rng.standard_normal((image_size, image_size, 3), dtype=np.float32)
    lesions = _sample_lesions(lesion_rng, grade, anatomy, vessels)
    return _compose(image_size, anatomy, vessels, lesions, texture, noise)


def _check_grades(grades: Sequence[int], n: int) -> np.ndarray:
    """Validate explicit grades.

    Args:
        grades: one grade per image.
        n: the number of images.

    Returns:
        int64 [n].

    Raises:
        VfmError: wrong length or a grade outside 0-4.
    """
    labels = np.asarray(grades, dtype=np.int64).reshape(-1)
    if labels.shape[0] != n:
        raise VfmError(
            f"got {labels.shape[0]} grades for {n} images",
            where="synthetic.generate",
            fix="pass one grade per image, or grades=None",
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_GRADES):
        raise VfmError(
            "grades must lie in 0-4", where="synthetic.generate", fix="pass diabetic-retinopathy grades from 0 to 4"
        )
    return labels


def _sample_anatomy(rng: np.random.Generator) -> _Anatomy:
    """Sample the eye's geometry and colours and the camera's exposure.

    Args:
        rng: the base generator.

    Returns:
        The grade-independent anatomy.
    """
    centre = (0.5 + rng.uniform(-0.015, 0.015), 0.5 + rng.uniform(-0.015, 0.015))
    radius = rng.uniform(0.46, 0.49)
    nasal = float(rng.choice([-1.0, 1.0]))
    disc_radius = rng.uniform(0.056, 0.068)
    disc = (centre[0] + nasal * rng.uniform(0.14, 0.18), centre[1] + rng.uniform(-0.04, 0.02))
    fovea_offset = 5.0 * disc_radius * rng.uniform(0.95, 1.05)
    macula = (disc[0] - nasal * fovea_offset, disc[1] + rng.uniform(0.005, 0.03))
    cup_radius = disc_radius * rng.uniform(0.3, 0.5)
    cup = (disc[0] - nasal * disc_radius * rng.uniform(0.05, 0.2), disc[1] + disc_radius * rng.uniform(-0.1, 0.1))
    retina_rgb = np.array([rng.uniform(0.78, 0.95), rng.uniform(0.26, 0.40), rng.uniform(0.08, 0.18)], dtype=np.float32)
    disc_rgb = np.array([0.98, rng.uniform(0.6, 0.7), rng.uniform(0.34, 0.44)], dtype=np.float32)
    return _Anatomy(
        centre=centre,
        radius=radius,
        nasal=nasal,
        disc=disc,
        disc_radius=disc_radius,
        disc_aspect=rng.uniform(1.03, 1.15),
        cup=cup,
        cup_radius=cup_radius,
        macula=macula,
        retina_rgb=retina_rgb,
        disc_rgb=disc_rgb,
        vignette=rng.uniform(0.3, 0.55),
        tilt=(rng.uniform(-0.12, 0.12), rng.uniform(-0.12, 0.12)),
        brightness=rng.uniform(0.8, 1.15),
        tint=np.exp(rng.normal(0.0, 0.06, 3)).astype(np.float32),
        gamma=rng.uniform(0.85, 1.2),
        blur=rng.uniform(0.0, 1.0),
    )


def _sample_vessel_tree(rng: np.random.Generator, anatomy: _Anatomy) -> list[_Polyline]:
    """Sample the retinal vessels: four arcades (a vein and an artery each) and small macular branches.

    The temporal arcades leave the disc up and down and arch around the macula; the
    nasal ones run outwards more straightly. Every vessel branches recursively with
    decreasing width, grown one generation at a time.

    Args:
        rng: the base generator.
        anatomy: the eye.

    Returns:
        The vessel polylines; the first eight are the arcade trunks.
    """
    temporal = -anatomy.nasal
    # Elevation above the temporal horizontal and its rate of change, for the
    # superior temporal, inferior temporal, superior nasal and inferior nasal arcades.
    elevation = np.array([rng.uniform(1.0, 1.3), -rng.uniform(1.0, 1.3), rng.uniform(1.9, 2.3), -rng.uniform(1.9, 2.3)])
    bend = np.array([-rng.uniform(5.5, 7.0), rng.uniform(5.5, 7.0), rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8)])
    length = np.array([rng.uniform(0.7, 0.85), rng.uniform(0.7, 0.85), rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.55)])
    artery_offset = np.sign(elevation) * rng.uniform(0.12, 0.25, 4)
    trunk_elevation = np.concatenate([elevation, elevation + artery_offset])
    macular = int(rng.integers(2, 5))
    macular_elevation = rng.uniform(-0.35, 0.35, macular)
    all_elevation = np.concatenate([trunk_elevation, macular_elevation])
    sprouts = _Sprouts(
        start=np.tile(np.array(anatomy.cup), (8 + macular, 1)),
        angle=np.arctan2(-np.sin(all_elevation), temporal * np.cos(all_elevation)),
        width=np.concatenate([np.full(4, 0.013), np.full(4, 0.0095), np.full(macular, 0.0045)]),
        length=np.concatenate([length, length, rng.uniform(0.12, 0.2, macular)]),
        curvature=np.concatenate([-temporal * bend, -temporal * bend, rng.normal(0.0, 1.0, macular)]),
        decay=np.concatenate([np.full(8, 0.2), np.full(macular, 1e3)]),
        strength=np.concatenate([np.full(4, 0.8), np.full(4, 0.58), np.full(macular, 0.5)]),
        depth=np.concatenate([np.zeros(8, np.int64), np.full(macular, 2, np.int64)]),
    )
    lines: list[_Polyline] = []
    while len(sprouts.start):
        sprouts = _grow(rng, anatomy, sprouts, lines)
    return lines


def _grow(rng: np.random.Generator, anatomy: _Anatomy, sprouts: _Sprouts, lines: list[_Polyline]) -> _Sprouts:
    """Grow one generation of vessels and sample the next generation's branches.

    Each vessel turns by its fading curvature plus a little random wiggle, stops at
    the edge of the field of view, and tapers to 45% of its starting width.

    Args:
        rng: the base generator.
        anatomy: the eye (to stop at the field of view).
        sprouts: the vessels to grow.
        lines: output list; the grown vessels are appended.

    Returns:
        The branches that sprout from the grown vessels.
    """
    steps = np.maximum(2, (sprouts.length / _STEP).astype(np.int64))
    arc = _STEP * np.arange(1, steps.max() + 1)
    turns = sprouts.curvature[:, None] * _STEP * np.exp(-arc / sprouts.decay[:, None])
    angles = sprouts.angle[:, None] + np.cumsum(turns + rng.normal(0.0, 0.05, turns.shape), axis=1)
    moves = _STEP * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    points = np.concatenate([sprouts.start[:, None], sprouts.start[:, None] + np.cumsum(moves, axis=1)], axis=1)
    inside = np.hypot(points[..., 0] - anatomy.centre[0], points[..., 1] - anatomy.centre[1]) < anatomy.radius * 1.03
    valid = np.cumprod(inside & (np.arange(points.shape[1]) <= steps[:, None]), axis=1).astype(bool)
    keep = valid.sum(axis=1)
    for i in np.flatnonzero(keep >= 2):
        taper = 1.0 - 0.55 * np.arange(keep[i]) / (keep[i] - 1)
        lines.append(_Polyline(points[i, : keep[i]], sprouts.width[i] * taper, float(sprouts.strength[i])))

    fertile = (sprouts.depth < 3) & (keep >= 5)
    low, high = np.array([2, 1, 0])[np.minimum(sprouts.depth, 2)], np.array([4, 2, 1])[np.minimum(sprouts.depth, 2)]
    counts = np.where(fertile, rng.integers(low, high + 1), 0)
    parent = np.repeat(np.arange(len(counts)), counts)
    index = 2 + (rng.uniform(0.0, 1.0, len(parent)) * (keep[parent] - 4)).astype(np.int64)
    side = rng.choice([-1.0, 1.0], len(parent))
    width_here = sprouts.width[parent] * (1.0 - 0.55 * index / (keep[parent] - 1))
    return _Sprouts(
        start=points[parent, index],
        angle=angles[parent, index - 1] + side * rng.uniform(0.45, 1.1, len(parent)),
        width=width_here * rng.uniform(0.55, 0.8, len(parent)),
        length=np.maximum((keep[parent] - index) * _STEP * rng.uniform(0.35, 0.75, len(parent)), 2.5 * _STEP),
        curvature=rng.normal(0.0, 1.5, len(parent)),
        decay=np.full(len(parent), 1e3),
        strength=sprouts.strength[parent] * 0.92,
        depth=sprouts.depth[parent] + 1,
    )


def _sample_lesions(rng: np.random.Generator, grade: int, anatomy: _Anatomy, vessels: list[_Polyline]) -> _Lesions:
    """Sample the lesions for a grade, with counts typical of that grade.

    Args:
        rng: the lesion generator.
        grade: 0-4.
        anatomy: the eye.
        vessels: the vessel tree (new vessels sprout from the arcades).

    Returns:
        The lesions; all empty at grade 0.
    """
    lesions = _Lesions([], [], [], [])
    if grade == 0:
        return lesions
    microaneurysms = {1: (2, 6), 2: (5, 13), 3: (10, 21), 4: (10, 21)}[grade]
    for x, y in _posterior_points(rng, anatomy, int(rng.integers(*microaneurysms))):
        radius = rng.uniform(0.003, 0.005)
        lesions.haemorrhages.append(_Blob(x, y, radius, radius, 0.0, rng.uniform(0.75, 0.95), 2.0))
    if grade >= 2:
        dots, blots, clusters = {
            2: ((2, 7), (0, 2), (1, 3)),
            3: ((6, 13), (3, 8), (2, 5)),
            4: ((6, 13), (3, 8), (2, 5)),
        }[grade]
        for x, y in _posterior_points(rng, anatomy, int(rng.integers(*dots))):
            radius = rng.uniform(0.006, 0.012)
            lesions.haemorrhages.append(
                _Blob(x, y, radius, radius * rng.uniform(0.8, 1.2), rng.uniform(0, np.pi), rng.uniform(0.8, 0.95), 2.0)
            )
        for x, y in _posterior_points(rng, anatomy, int(rng.integers(*blots))):
            for _ in range(int(rng.integers(2, 5))):
                radius = rng.uniform(0.01, 0.022)
                lesions.haemorrhages.append(
                    _Blob(
                        x + rng.normal(0, 0.008),
                        y + rng.normal(0, 0.008),
                        radius,
                        radius * rng.uniform(0.6, 1.0),
                        rng.uniform(0, np.pi),
                        rng.uniform(0.75, 0.92),
                        1.5,
                    )
                )
        lesions.exudates.extend(_exudate_clusters(rng, anatomy, int(rng.integers(*clusters)), grade))
    if grade >= 3:
        for x, y in _posterior_points(rng, anatomy, int(rng.integers(2, 7))):
            radius = rng.uniform(0.0025, 0.005)
            lesions.exudates.append(_Blob(x, y, radius, radius, 0.0, rng.uniform(0.8, 0.95), 2.0))
        for x, y in _posterior_points(rng, anatomy, int(rng.integers(2, 5))):
            for _ in range(int(rng.integers(2, 4))):
                radius = rng.uniform(0.014, 0.024)
                lesions.cotton_wool.append(
                    _Blob(
                        x + rng.normal(0, 0.007),
                        y + rng.normal(0, 0.007),
                        radius,
                        radius * rng.uniform(1.2, 1.8),
                        rng.uniform(0, np.pi),
                        rng.uniform(0.45, 0.65),
                        1.0,
                    )
                )
    if grade == 4:
        for _ in range(int(rng.integers(2, 5))):
            lesions.new_vessels.extend(_new_vessel_tuft(rng, anatomy, vessels))
        if rng.uniform() < 0.5:
            for x, y in _posterior_points(rng, anatomy, 1):
                radius = rng.uniform(0.035, 0.06)
                lesions.haemorrhages.append(
                    _Blob(
                        x, y, radius, radius * rng.uniform(0.6, 0.85), rng.normal(0, 0.2), rng.uniform(0.85, 0.95), 3.0
                    )
                )
    return lesions


def _posterior_points(rng: np.random.Generator, anatomy: _Anatomy, count: int) -> list[tuple[float, float]]:
    """Sample lesion sites in the posterior pole, off the optic disc.

    Args:
        rng: the lesion generator.
        anatomy: the eye.
        count: number of sites.

    Returns:
        ``count`` (x, y) points, in units of the image side.
    """
    mid = np.array([(anatomy.disc[0] + anatomy.macula[0]) / 2, (anatomy.disc[1] + anatomy.macula[1]) / 2])
    candidates = mid + rng.normal(0.0, 1.0, (4 * count + 8, 2)) * np.array([0.17, 0.15])
    off_disc = np.hypot(*(candidates - np.array(anatomy.disc)).T) > 1.4 * anatomy.disc_radius
    inside = np.hypot(*(candidates - np.array(anatomy.centre)).T) < 0.9 * anatomy.radius
    chosen = candidates[off_disc & inside][:count]
    return [(float(x), float(y)) for x, y in chosen]


def _exudate_clusters(rng: np.random.Generator, anatomy: _Anatomy, clusters: int, grade: int) -> list[_Blob]:
    """Sample clusters of hard exudates, often in a partial ring near the macula.

    Args:
        rng: the lesion generator.
        anatomy: the eye.
        clusters: number of clusters.
        grade: 2-4; higher grades have larger clusters.

    Returns:
        The exudate spots.
    """
    spots: list[_Blob] = []
    for _ in range(clusters):
        bearing = rng.uniform(0, 2 * np.pi)
        distance = rng.uniform(0.6, 2.2) * 2 * anatomy.disc_radius
        cx = anatomy.macula[0] + distance * np.cos(bearing)
        cy = anatomy.macula[1] + distance * np.sin(bearing)
        ring = rng.uniform(0.015, 0.045)
        count = int(rng.integers(3, 9)) if grade == 2 else int(rng.integers(5, 14))
        arc = rng.uniform(0, 2 * np.pi) + rng.uniform(0, np.pi) * rng.uniform(0, 1, count)
        for phi in arc:
            spread = ring * rng.uniform(0.6, 1.2)
            radius = rng.uniform(0.0025, 0.0065)
            spots.append(
                _Blob(
                    cx + spread * np.cos(phi),
                    cy + spread * np.sin(phi),
                    radius,
                    radius * rng.uniform(0.7, 1.3),
                    rng.uniform(0, np.pi),
                    rng.uniform(0.75, 0.95),
                    2.0,
                )
            )
    return spots


def _new_vessel_tuft(rng: np.random.Generator, anatomy: _Anatomy, vessels: list[_Polyline]) -> list[_Polyline]:
    """Sample one tuft of new vessels, on the disc or along an arcade.

    Args:
        rng: the lesion generator.
        anatomy: the eye.
        vessels: the vessel tree; its first eight lines are the arcade trunks.

    Returns:
        Fine, tortuous polylines radiating from one root.
    """
    if rng.uniform() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        root = np.array(anatomy.disc) + 0.7 * anatomy.disc_radius * rng.uniform(0, 1) * np.array(
            [np.cos(angle), np.sin(angle)]
        )
    else:
        trunk = vessels[int(rng.integers(0, min(8, len(vessels))))].points
        root = trunk[int(rng.integers(len(trunk) // 4, max(len(trunk) // 4 + 1, 3 * len(trunk) // 4)))]
    tuft: list[_Polyline] = []
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(5, 10))):
        steps = int(rng.integers(8, 18))
        angles = heading + rng.normal(0, 0.8) + np.cumsum(rng.normal(0.0, 0.75, steps))
        step = rng.uniform(0.005, 0.008)
        moves = step * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        points = np.concatenate([root[None], root + np.cumsum(moves, axis=0)])
        tuft.append(_Polyline(points, np.full(len(points), 0.0025), rng.uniform(0.5, 0.7)))
    return tuft


def _smooth_noise(rng: np.random.Generator, cells: int, size: int) -> np.ndarray:
    """Smooth zero-mean noise: a random coarse grid upsampled bicubically.

    Args:
        rng: the base generator.
        cells: grid cells per side; fewer is smoother.
        size: output side S.

    Returns:
        float32 [S, S], roughly unit variance.
    """
    grid = rng.standard_normal((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)


def _draw_polylines(lines: list[_Polyline], size: int, min_width_px: float) -> np.ndarray:
    """Rasterise polylines as anti-aliased thick strokes, by supersampling with Pillow.

    Where strokes overlap, the strongest wins. The canvas is at least about 320 pixels
    wide, so even the thinnest vessels are anti-aliased.

    Args:
        lines: the polylines, in units of the image side.
        size: output side S.
        min_width_px: the narrowest stroke, in output pixels.

    Returns:
        float32 [S, S], the per-pixel strength 0..1.
    """
    scale = int(np.clip(round(320 / size), 2, 8))
    canvas = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(canvas)
    unit = size * scale
    for line in sorted(lines, key=lambda item: item.strength):
        points = line.points * unit
        widths = np.maximum(line.widths * size, min_width_px) * scale
        value = round(255 * line.strength)
        pieces = 3 if len(points) >= 9 else 1
        bounds = [piece * (len(points) - 1) // pieces for piece in range(pieces + 1)]
        for first, last in itertools.pairwise(bounds):
            width = float(widths[(first + last) // 2])
            draw.line(points[first : last + 1].ravel().tolist(), fill=value, width=max(1, round(width)))
            if width > 2:
                x, y = points[first]
                draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=value)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0


def _stamp_blobs(blobs: list[_Blob], size: int) -> np.ndarray:
    """Rasterise soft elliptical spots; where they overlap, the strongest wins.

    Args:
        blobs: the spots, in units of the image side.
        size: output side S.

    Returns:
        float32 [S, S], the per-pixel opacity 0..1.
    """
    mask = np.zeros((size, size), dtype=np.float32)
    for blob in blobs:
        rx = max(blob.rx * size, _MIN_LESION_PX)
        ry = max(blob.ry * size, _MIN_LESION_PX)
        cx, cy = blob.x * size, blob.y * size
        reach = 2.5 * max(rx, ry) + 1
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, size)
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, size)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
        dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
        cos, sin = np.cos(blob.theta), np.sin(blob.theta)
        d2 = ((dx * cos + dy * sin) / rx) ** 2 + ((dy * cos - dx * sin) / ry) ** 2
        value = blob.strength * np.exp(-0.5 * d2**blob.sharpness)
        np.maximum(mask[y0:y1, x0:x1], value, out=mask[y0:y1, x0:x1])
    return mask


def _compose(
    size: int,
    anatomy: _Anatomy,
    vessels: list[_Polyline],
    lesions: _Lesions,
    texture: tuple[np.ndarray, np.ndarray],
    noise: np.ndarray,
) -> np.ndarray:
    """Paint the layers into a photograph.

    Args:
        size: output side S.
        anatomy: the eye and the exposure.
        vessels: the vessel tree.
        lesions: the grade's lesions.
        texture: float32 [S, S] low-frequency and float32 [S, S] choroidal noise.
        noise: float32 [S, S, 3], unit sensor noise.

    Returns:
        uint8 [S, S, 3].
    """
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = coords[None, :], coords[:, None]
    low, choroid = texture

    r_fov = np.hypot(x - anatomy.centre[0], y - anatomy.centre[1])
    fov = np.clip((anatomy.radius - r_fov) * size + 0.5, 0.0, 1.0)[..., None]

    image = (
        anatomy.retina_rgb
        * (1 + 0.07 * low[..., None])
        * (1 + 0.05 * choroid[..., None] * np.array([1.0, 0.6, 0.3], np.float32))
    )

    d_mac = np.hypot(x - anatomy.macula[0], y - anatomy.macula[1])
    macula = 0.9 * np.exp(-0.5 * (d_mac / (1.3 * anatomy.disc_radius)) ** 2) + 0.35 * np.exp(
        -0.5 * (d_mac / (0.3 * anatomy.disc_radius)) ** 2
    )
    image = image * (1 - np.minimum(macula, 1.0)[..., None] * np.array([0.3, 0.5, 0.45], np.float32))

    d_disc = np.hypot(
        (x - anatomy.disc[0]) / anatomy.disc_radius, (y - anatomy.disc[1]) / (anatomy.disc_radius * anatomy.disc_aspect)
    )
    disc = np.exp(-0.5 * d_disc**10)[..., None]
    image = image * (1 - disc) + disc * anatomy.disc_rgb * (1 + 0.04 * choroid[..., None])
    d_cup = np.hypot(x - anatomy.cup[0], y - anatomy.cup[1]) / anatomy.cup_radius
    cup = 0.75 * np.exp(-0.5 * d_cup**4)[..., None]
    image = image * (1 - cup) + cup * np.array([1.0, 0.95, 0.82], np.float32)

    vessel = _draw_polylines(vessels, size, 0.0)
    if lesions.new_vessels:
        vessel = np.maximum(vessel, _draw_polylines(lesions.new_vessels, size, 2 * _MIN_LESION_PX))
    image = image * (1 - vessel[..., None] * np.array([0.5, 0.8, 0.7], np.float32))

    haem = _stamp_blobs(lesions.haemorrhages, size)[..., None]
    image = image * (1 - haem) + haem * anatomy.retina_rgb * np.array([0.45, 0.12, 0.2], np.float32)
    exudate = _stamp_blobs(lesions.exudates, size)[..., None]
    image = image * (1 - exudate) + exudate * np.array([1.0, 0.9, 0.42], np.float32) * 1.1
    cotton = _stamp_blobs(lesions.cotton_wool, size)[..., None]
    image = image * (1 - cotton) + cotton * np.array([0.97, 0.88, 0.74], np.float32)

    illumination = (
        1
        - anatomy.vignette * (r_fov / anatomy.radius) ** 2.5
        + anatomy.tilt[0] * (x - 0.5)
        + anatomy.tilt[1] * (y - 0.5)
    )
    image = image * illumination[..., None] * anatomy.brightness * anatomy.tint
    image = np.clip(image, 0.0, 1.0) ** anatomy.gamma + 0.012 * noise
    pixels = np.clip(image * fov * 255 + 0.5, 0, 255).astype(np.uint8)
    blur = anatomy.blur * size / 256
    if blur > 0.2:
        pixels = np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(blur)))
        pixels = (pixels * (fov > 0.5)).astype(np.uint8)
    return pixels
