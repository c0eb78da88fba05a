"""Gesture classification on landmark sets built from hand geometry.

No photos or videos of hands ship offline (see docs/vision.md), so these tests
build MediaPipe-ordered landmarks from a 3D kinematic hand: typical adult bone
lengths (each varied by +-10 % per hand), joint flexion angles drawn from ranges for each gesture (fingers a
little bent when "straight", thumbs resting in different places on a fist),
then viewed with in-plane rotation, out-of-plane tilt, mirroring, scale,
translation and landmark noise, and written in different units.
"""

from __future__ import annotations

import math
import zlib
from typing import Dict, Optional, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensteady.vision.gestures import (
    GESTURES,
    THUMB_UP_CONE_DEG,
    GestureDebouncer,
    GestureModel,
    HandednessSmoother,
    classify,
    thumb_up_angle_deg,
)

# Palm frame: wrist at the origin, +Y towards the middle knuckle (length 1),
# +X towards the thumb side, +Z out of the palm (the palm faces +Z).
_MCP = {"index": (0.28, 0.93), "middle": (0.04, 1.0), "ring": (-0.17, 0.95), "pinky": (-0.35, 0.84)}
_BONES = {  # proximal, middle, distal phalanx (palm lengths)
    "index": (0.42, 0.25, 0.21),
    "middle": (0.47, 0.30, 0.22),
    "ring": (0.44, 0.28, 0.22),
    "pinky": (0.34, 0.20, 0.20),
}
_SPLAY_DEG = {"index": 8.0, "middle": 0.0, "ring": -7.0, "pinky": -15.0}
_THUMB_CMC = (0.24, 0.16)
_THUMB_BONES = (0.42, 0.32, 0.27)  # metacarpal, proximal, distal

Range = Tuple[float, float]
_STRAIGHT = ((0, 25), (0, 30), (0, 20))  # MCP, PIP, DIP flexion in degrees: straight to relaxed
_CURLED = ((45, 95), (70, 110), (25, 75))  # tight fist to loosely curled
# Thumb: metacarpal abduction from the palm axis towards +X and elevation out of
# the palm (+Z), then MCP and IP flexion across the palm.
_THUMB_OUT = {"abduct": (35, 65), "elevate": (5, 25), "flex": ((0, 15), (0, 20))}
_THUMB_UP = {"abduct": (45, 85), "elevate": (0, 25), "flex": ((0, 12), (0, 15))}  # the "L" of a fist
_THUMB_WRAPPED = {"abduct": (20, 35), "elevate": (25, 40), "flex": ((30, 50), (40, 60))}  # over the fingers
_THUMB_SIDE = {"abduct": (8, 20), "elevate": (15, 30), "flex": ((10, 25), (15, 35))}  # along the index

_POSES: Dict[str, Tuple[dict, Tuple[str, ...]]] = {
    # gesture: (thumb pose choices, extended fingers)
    "open_palm": ((_THUMB_OUT,), ("index", "middle", "ring", "pinky")),
    "fist": ((_THUMB_WRAPPED, _THUMB_SIDE), ()),
    "pointing": ((_THUMB_WRAPPED, _THUMB_SIDE, _THUMB_OUT), ("index",)),
    "victory": ((_THUMB_WRAPPED, _THUMB_SIDE), ("index", "middle")),
    "thumbs_up": ((_THUMB_UP,), ()),
}


def _u(rng: np.random.Generator, r: Range) -> float:
    return math.radians(rng.uniform(*r))


def hand_3d(gesture: str, rng: np.random.Generator, pose: Optional[Tuple[tuple, Tuple[str, ...]]] = None) -> np.ndarray:
    """21 landmarks (palm frame) for ``gesture`` (or for ``pose``: thumb choices, extended fingers) with natural variation."""
    thumb_choices, extended = pose or _POSES[gesture]
    pts = np.zeros((21, 3))
    spread = rng.uniform(0.5, 1.5) if gesture != "victory" else rng.uniform(1.5, 3.0)
    for f, base in zip(("index", "middle", "ring", "pinky"), (5, 9, 13, 17)):
        mcp = np.array([*_MCP[f], 0.0]) + np.array([*rng.normal(0.0, 0.02, 2), 0.0])  # people differ
        splay = math.radians(_SPLAY_DEG[f] * spread) if f in extended else math.radians(_SPLAY_DEG[f] * 0.3)
        flex = [_u(rng, r) for r in (_STRAIGHT if f in extended else _CURLED)]
        along, normal = np.array([-math.sin(splay), math.cos(splay), 0.0]), np.array([0.0, 0.0, 1.0])
        pts[base], angle, p = mcp, 0.0, mcp
        for j, (bone, bend) in enumerate(zip(_BONES[f], flex)):
            bone *= rng.uniform(0.9, 1.1)
            angle += bend
            p = p + bone * (along * math.cos(angle) + normal * math.sin(angle))
            pts[base + 1 + j] = p
    thumb = thumb_choices[rng.integers(len(thumb_choices))]
    a, e = _u(rng, thumb["abduct"]), _u(rng, thumb["elevate"])
    meta = np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)])
    # The thumb flexes across the palm: towards -X and out of the palm (+Z).
    across = np.array([-1.0, 0.0, 0.2])
    across -= meta * np.dot(across, meta)
    across /= np.linalg.norm(across)
    pts[1] = [*_THUMB_CMC, 0.0]
    pts[2] = pts[1] + _THUMB_BONES[0] * rng.uniform(0.9, 1.1) * meta
    angle = 0.0
    for j, (bone, r) in enumerate(zip(_THUMB_BONES[1:], thumb["flex"])):
        angle += _u(rng, r)
        pts[3 + j] = pts[2 + j] + bone * rng.uniform(0.9, 1.1) * (meta * math.cos(angle) + across * math.sin(angle))
    return pts


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def view(
    pts: np.ndarray,
    rng: np.random.Generator,
    *,
    roll_deg: float,
    tilt_deg: float = 25.0,
    twist_deg: float = 40.0,
    mirror: bool = False,
    noise: float = 0.02,
) -> np.ndarray:
    """Camera view of a palm-frame hand: image (x right, y down, z away), palm length 1.

    ``twist`` turns the hand about its own long axis (palm towards a side),
    ``tilt`` leans it towards or away from the camera, ``roll`` is in-plane.
    """
    r = _rotation(np.array([0.0, 1.0, 0.0]), math.radians(rng.uniform(-twist_deg, twist_deg)))
    r = _rotation(np.array([1.0, 0.0, 0.0]), math.radians(rng.uniform(-tilt_deg, tilt_deg))) @ r
    r = _rotation(np.array([0.0, 0.0, 1.0]), math.radians(roll_deg)) @ r
    p = pts @ r.T
    img = np.stack([p[:, 0], -p[:, 1], -p[:, 2]], axis=1)  # camera looks along -Z of the palm frame
    if mirror:
        img[:, 0] = -img[:, 0]
    return img + rng.normal(0.0, noise, img.shape)


def as_units(img: np.ndarray, rng: np.random.Generator, units: str, dims: int) -> np.ndarray:
    """Express a palm-length-1 hand in normalised, pixel or wrist-relative coordinates."""
    if units == "pixels":
        scale, offset = rng.uniform(40, 300), rng.uniform(200, 900, 3)
    elif units == "normalised":  # divided by frame width and height: squashed unless the frame is square
        scale, offset = rng.uniform(0.05, 0.3), np.array([*rng.uniform(0.3, 0.7, 2), 0.0])
        img = img * np.array([1.0 / rng.choice([1.0, 4 / 3, 16 / 9, 9 / 16]), 1.0, 1.0])
    else:  # wrist-relative
        scale, offset = rng.uniform(0.5, 50), np.zeros(3)
        img = img - img[0]
    out = img * scale + offset
    if units != "wrist":
        out[:, 2] = img[:, 2] * scale  # MediaPipe's z is relative to the wrist
    return out[:, :dims]


def roll_image(img: np.ndarray, roll_deg: float) -> np.ndarray:
    """Rotate image points in-plane about the origin (x right, y down; z untouched)."""
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    out = img.copy()
    out[:, 0], out[:, 1] = c * img[:, 0] - s * img[:, 1], s * img[:, 0] + c * img[:, 1]
    return out


def thumb_towards(img: np.ndarray, angle_deg: float) -> np.ndarray:
    """Roll a hand in-plane so its thumb (MCP to tip) points ``angle_deg`` from the image's up (+ = right)."""
    v = img[4, :2] - img[2, :2]
    now = math.degrees(math.atan2(v[0], -v[1]))
    return roll_image(img, angle_deg - now)


def shown(gesture: str, img: np.ndarray, rng: np.random.Generator, roll_deg: float) -> np.ndarray:
    """The hand as a user shows it: any in-plane roll, but a thumbs-up has its thumb up (within 35 degrees)."""
    if gesture == "thumbs_up":
        return thumb_towards(img, rng.uniform(-35.0, 35.0))
    return roll_image(img, roll_deg)


LABELS = [g for g in GESTURES if g != "unknown"]
# "Rock" (index and pinky out), "three", "call" (thumb and pinky): not in the vocabulary.
OTHER_SHAPES = [("index", "pinky"), ("index", "middle", "ring"), ("pinky",)]


@pytest.mark.parametrize("gesture", LABELS)
def test_canonical_palm_facing_hand(gesture):
    rng = np.random.default_rng(1)
    for _ in range(20):
        img = view(hand_3d(gesture, rng), rng, roll_deg=0.0, tilt_deg=0.0, twist_deg=0.0, noise=0.0)
        img = shown(gesture, img, rng, 0.0)
        assert classify(img[:, :2]) == gesture
        assert classify(img) == gesture


@pytest.mark.parametrize("gesture", LABELS)
@pytest.mark.parametrize("units", ["pixels", "normalised", "wrist"])
@pytest.mark.parametrize("dims", [2, 3])
def test_varied_views_units_and_noise(gesture, units, dims):
    rng = np.random.default_rng(zlib.crc32(f"{gesture}/{units}/{dims}".encode()))
    n, right = 60, 0
    for i in range(n):
        img = view(hand_3d(gesture, rng), rng, roll_deg=0.0, mirror=bool(i % 2), noise=0.025)
        img = shown(gesture, img, rng, rng.uniform(-180, 180))
        right += classify(as_units(img, rng, units, dims)) == gesture
    # Random out-of-plane views of up to 25 degrees tilt and 40 degrees twist plus noise: nearly all right.
    assert right >= 0.9 * n, f"{gesture} in {units}/{dims}D: {right}/{n}"


@pytest.mark.parametrize("z_scale", [0.5, 1.5])
def test_depth_on_a_different_scale_from_x_and_y(z_scale):
    # MediaPipe's z is only "roughly" on the scale of x; depth off by half must not matter much.
    rng = np.random.default_rng(int(z_scale * 10))
    for gesture in LABELS:
        n = 40
        right = sum(
            classify(
                shown(gesture, view(hand_3d(gesture, rng), rng, roll_deg=0.0, noise=0.02), rng, rng.uniform(-180, 180))
                * [1, 1, z_scale]
            )
            == gesture
            for _ in range(n)
        )
        assert right >= 0.85 * n, f"{gesture} with z x{z_scale}: {right}/{n}"


@pytest.mark.parametrize("gesture", LABELS)
def test_extreme_tilt_is_resolved_with_depth(gesture):
    # Fingers pointing at the camera: 2D landmarks cannot tell, MediaPipe's z can.
    rng = np.random.default_rng(11)
    n = 60
    right = sum(
        classify(
            shown(gesture, view(hand_3d(gesture, rng), rng, roll_deg=0.0, tilt_deg=80.0, noise=0.02), rng, rng.uniform(-180, 180))
        )
        == gesture
        for _ in range(n)
    )
    assert right >= 0.9 * n, f"{gesture}: {right}/{n}"


@given(
    seed=st.integers(0, 2**31),
    gesture=st.sampled_from(LABELS),
    roll=st.floats(-180, 180),
    scale=st.floats(0.01, 1e4),
    dx=st.floats(-1e3, 1e3),
    dy=st.floats(-1e3, 1e3),
)
@settings(max_examples=150, deadline=None)
def test_invariant_to_rotation_scale_translation_and_mirroring(seed, gesture, roll, scale, dx, dy):
    rng = np.random.default_rng(seed)
    img = shown(gesture, view(hand_3d(gesture, rng), rng, roll_deg=0.0, noise=0.01), rng, 0.0)
    base = classify(img)
    moved = roll_image(img, roll) * scale + np.array([dx, dy, 0.0])
    mirrored = moved * np.array([-1.0, 1.0, 1.0])
    if base == "thumbs_up":
        # The finger pattern is rotation invariant; the thumb's direction is judged against the image's up.
        base = "thumbs_up" if thumb_up_angle_deg(moved) <= THUMB_UP_CONE_DEG else "unknown"
    assert classify(moved) == base
    assert classify(mirrored) == base


@pytest.mark.parametrize("dims", [2, 3])
def test_thumbs_down_is_not_thumbs_up(dims):
    rng = np.random.default_rng(21 + dims)
    n = 60
    answers = [
        classify(thumb_towards(view(hand_3d("thumbs_up", rng), rng, roll_deg=0.0, mirror=bool(i % 2)), rng.uniform(140, 220))[:, :dims])
        for i in range(n)
    ]
    assert "thumbs_up" not in answers
    assert answers.count("unknown") >= 0.9 * n, answers


def test_a_thumb_held_out_sideways_is_never_thumbs_up():
    # A real fist with the thumb out to the side, or a thumbs-up lying on its side: not an "up".
    rng = np.random.default_rng(5)
    for i in range(60):
        img = view(hand_3d("thumbs_up", rng), rng, roll_deg=0.0, mirror=bool(i % 2))
        side = rng.choice([-1.0, 1.0]) * rng.uniform(THUMB_UP_CONE_DEG + 5.0, 130.0)
        assert classify(thumb_towards(img, side)) != "thumbs_up"


def test_the_model_ships_inside_the_package():
    model = GestureModel.load()  # vision/gesture_model.npz, no download, no shared data
    assert model.w1.shape[1] == model.w2.shape[0]


def test_other_hand_shapes_are_unknown():
    rng = np.random.default_rng(7)
    for extended in OTHER_SHAPES:
        for _ in range(10):
            img = view(hand_3d("", rng, pose=((_THUMB_WRAPPED,), extended)), rng, roll_deg=rng.uniform(-180, 180), noise=0.01)
            assert classify(img) == "unknown", extended


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((20, 2)), "shape"),
        (np.zeros((21, 4)), "shape"),
        ([[0.0, "a"]] * 21, "numeric"),
        (np.full((21, 2), np.nan), "NaN"),
        (np.zeros((21, 2)), "degenerate"),
    ],
)
def test_bad_landmarks_raise_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        classify(bad)


def test_flat_sequences_are_accepted():
    rng = np.random.default_rng(3)
    img = view(hand_3d("victory", rng), rng, roll_deg=30.0, noise=0.0)
    assert classify(img.ravel().tolist()) == classify(img) == "victory"


def test_debouncer_fires_once_after_the_hold_time():
    deb = GestureDebouncer(hold_ms=300)
    out = [deb.update("fist", i * 0.05) for i in range(12)]  # 0 .. 0.55 s
    assert out.count("fist") == 1 and out.index("fist") == 6  # first frame at >= 0.3 s
    assert deb.update("victory", 0.6) is None


def test_debouncer_is_reset_by_other_labels_and_gaps():
    deb = GestureDebouncer(hold_ms=200, max_gap_ms=100)
    seq = [("fist", 0.0), ("unknown", 0.05), ("fist", 0.1), ("fist", 0.2), ("fist", 0.3)]
    assert [deb.update(g, t) for g, t in seq] == [None, None, None, None, "fist"]  # held 0.1 .. 0.3
    # A 0.2 s gap (hand not seen) breaks the hold; it must be held 0.2 s again.
    assert [deb.update("fist", t) for t in (0.5, 0.6, 0.7)] == [None, None, "fist"]


def test_debouncer_rejects_unknown_labels():
    with pytest.raises(ValueError, match="wave"):
        GestureDebouncer().update("wave", 0.0)
    with pytest.raises(ValueError, match="hold_ms"):
        GestureDebouncer(hold_ms=-1)


def test_handedness_smoother_follows_the_weighted_majority():
    smoother = HandednessSmoother(window=5)
    labels = [smoother.update(h, s) for h, s in [("left", 0.9), ("right", 0.6), ("left", 0.8), ("right", 0.55)]]
    assert labels == ["left", "left", "left", "left"]  # a flicker to "right" does not flip it
    for _ in range(4):
        last = smoother.update("right", 0.9)
    assert last == "right"  # a sustained change does
    with pytest.raises(ValueError, match="handedness"):
        smoother.update("Left", 1.0)
