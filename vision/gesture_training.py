"""Train the gesture network that ``vision.gestures.classify`` ships, and evaluate it leave-one-group-out.

    python -m opensteady.vision.gesture_training --csv devset.csv            # writes vision/gesture_model.npz
    opensteady bench gestures --csv devset.csv --loro                        # held-out figures (retrains per source)

Training data is any CSV in the ``vision.gesture_data`` format; the shipped
weights come from the real hands described in NOTICE. Plain numpy: features
from ``hand_features``, standardised, one tanh layer, softmax, mini-batch Adam
with weight decay.

Choices that matter for hands the model never saw:

* Every recorder (``source_repo``) weighs the same within a class, and every
  class the same, so one prolific person does not define a gesture. Each
  (recorder, class) group is capped at ``cap`` rows: they are consecutive
  webcam frames, and more of the same frame teaches little.
* Thumbs-down rows (``other`` whose hand is a fist with the thumb out and
  pointing down) are taught as the direction-blind class ``thumb``, like
  thumbs-ups: the features cannot see direction, the decision does.
* Augmentation squashes each hand along a random axis (a hand turned away
  from the camera) and adds landmark noise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from opensteady.vision.gesture_data import LabelledHands, read_csv_or_report
from opensteady.vision.gestures import (
    MODEL_CLASSES,
    MODEL_PATH,
    PATTERN_VETO,
    PATTERNS,
    GestureModel,
    decide,
    extension_scores,
    hand_features,
)


def thumb_up_angles_deg(points: np.ndarray) -> np.ndarray:
    """Per hand, the thumb's angle from the image's up (MCP to tip), 0-180 degrees."""
    v = points[:, 4, :2] - points[:, 2, :2]
    return np.degrees(np.arctan2(np.abs(v[:, 0]), -v[:, 1]))


def model_targets(hands: LabelledHands) -> np.ndarray:
    """Index into MODEL_CLASSES per row (thumbs-down ``other`` rows become ``thumb``)."""
    names = np.where(hands.gesture == "thumbs_up", "thumb", hands.gesture)
    scores = extension_scores(hands.points)
    thumb_pattern = np.ones(len(names), dtype=bool)
    for want, s in zip(PATTERNS["thumb"], scores.T):
        thumb_pattern &= (s >= 1.0 - PATTERN_VETO) if want else (s <= PATTERN_VETO)
    down = (hands.gesture == "other") & thumb_pattern & (thumb_up_angles_deg(hands.points) > 110.0)
    names = np.where(down, "thumb", names)
    return np.array([MODEL_CLASSES.index(n) for n in names])


def _squash(points: np.ndarray, rng: np.random.Generator, noise: float = 0.015) -> np.ndarray:
    """Each hand shortened to 60-100 % along a random image axis, plus noise (in wrist-relative units)."""
    n = len(points)
    theta = rng.uniform(0.0, np.pi, n)
    c, s = np.cos(theta), np.sin(theta)
    k = rng.uniform(0.6, 1.0, n)
    # R diag(k, 1) R^T applied to x, y
    a11, a12, a22 = c * c * k + s * s, c * s * (k - 1.0), s * s * k + c * c
    out = points.copy()
    x, y = points[..., 0], points[..., 1]
    out[..., 0] = a11[:, None] * x + a12[:, None] * y
    out[..., 1] = a12[:, None] * x + a22[:, None] * y
    scale = np.max(np.abs(points[..., :2] - points[:, :1, :2]), axis=(1, 2))
    return out + rng.normal(0.0, noise, out.shape) * scale[:, None, None]


def _palm_frames(points: np.ndarray):
    """Per hand (2-D): origin, axes (rows: across the palm towards the index, wrist to middle knuckle), size."""
    xy = points[..., :2]
    origin = xy[:, 0]
    up = xy[:, 9] - origin
    size = np.maximum(np.linalg.norm(up, axis=1), 1e-9)
    up = up / size[:, None]
    across = np.stack([-up[:, 1], up[:, 0]], axis=1)
    # Mirror so the index knuckle is on +across for left and right hands alike.
    side = np.sign(np.sum((xy[:, 5] - xy[:, 17]) * across, axis=1))
    across = across * np.where(side == 0.0, 1.0, side)[:, None]
    return origin, np.stack([across, up], axis=1), size


def _transplant_thumbs(points: np.ndarray, donors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give each hand the thumb (landmarks 1-4) of a random donor hand, placed in its own palm frame.

    Open palm, pointing and victory leave the thumb free; real sets hold few
    such hands with the thumb out (an "L"), so the model would otherwise
    learn that a thumb out means "other".
    """
    pts = points[..., :2].copy()
    donor = donors[rng.integers(len(donors), size=len(pts))][..., :2]
    o_d, axes_d, size_d = _palm_frames(donor)
    local = np.einsum("nkd,ned->nke", donor[:, 1:5] - o_d[:, None], axes_d) / size_d[:, None, None]
    o, axes, size = _palm_frames(pts)
    pts[:, 1:5] = o[:, None] + np.einsum("nke,ned->nkd", local * size[:, None, None], axes)
    return pts


def _group_weights(targets: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each class sums to 1; within a class each group weighs the same."""
    w = np.zeros(len(targets))
    for c in np.unique(targets):
        in_class = targets == c
        members = np.unique(groups[in_class])
        for g in members:
            m = in_class & (groups == g)
            w[m] = 1.0 / m.sum() / len(members)
    return w / w.sum()


def _capped(targets: np.ndarray, groups: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    keep = np.zeros(len(targets), dtype=bool)
    for c in np.unique(targets):
        for g in np.unique(groups[targets == c]):
            idx = np.flatnonzero((targets == c) & (groups == g))
            keep[rng.choice(idx, min(len(idx), cap), replace=False)] = True
    return keep


def train(
    hands: LabelledHands,
    *,
    hidden: int = 32,
    epochs: int = 40,
    batch: int = 256,
    learning_rate: float = 0.005,
    weight_decay: float = 1e-4,
    augment: int = 1,
    cap: int = 100,
    seed: int = 0,
) -> Dict[str, np.ndarray]:
    """Fit the network on labelled hands; returns the weights ``GestureModel`` takes."""
    rng = np.random.default_rng(seed)
    targets = model_targets(hands)
    keep = _capped(targets, hands.source_repo, cap, rng)
    pts, y, groups = hands.points[keep][..., :2], targets[keep], hands.source_repo[keep]
    w0 = _group_weights(y, groups)
    free = np.isin(y, [MODEL_CLASSES.index(c) for c in ("open_palm", "pointing", "victory")])
    copies, ys, ws = [pts], [y], [w0]
    for _ in range(augment):
        copies += [_squash(pts, rng), _transplant_thumbs(pts[free], pts, rng)]
        ys += [y, y[free]]
        ws += [w0, w0[free]]
    x = np.concatenate([hand_features(p) for p in copies])
    y = np.concatenate(ys)
    w = np.concatenate(ws)
    w = w / w.mean()
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = ((x - mean) / std).astype(np.float32)
    onehot = np.eye(len(MODEL_CLASSES), dtype=np.float32)[y]
    params = [
        rng.normal(0.0, 1.0 / np.sqrt(z.shape[1]), (z.shape[1], hidden)).astype(np.float32),
        np.zeros(hidden, np.float32),
        rng.normal(0.0, 1.0 / np.sqrt(hidden), (hidden, len(MODEL_CLASSES))).astype(np.float32),
        np.zeros(len(MODEL_CLASSES), np.float32),
    ]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    step = 0
    for _ in range(epochs):  # mini-batch Adam on the weighted cross-entropy
        order = rng.permutation(len(z))
        for start in range(0, len(z), batch):
            idx = order[start : start + batch]
            zb, wb = z[idx], (w[idx] / len(idx)).astype(np.float32)[:, None]
            w1, b1, w2, b2 = params
            h = np.tanh(zb @ w1 + b1)
            logits = h @ w2 + b2
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            g_out = (p - onehot[idx]) * wb
            g_h = (g_out @ w2.T) * (1.0 - h * h)
            grads = [zb.T @ g_h + weight_decay * w1, g_h.sum(0), h.T @ g_out + weight_decay * w2, g_out.sum(0)]
            step += 1
            for i, g in enumerate(grads):
                m1[i] = 0.9 * m1[i] + 0.1 * g
                m2[i] = 0.999 * m2[i] + 0.001 * g * g
                params[i] -= learning_rate * (m1[i] / (1 - 0.9**step)) / (np.sqrt(m2[i] / (1 - 0.999**step)) + 1e-8)
    w1, b1, w2, b2 = (p.astype(np.float64) for p in params)
    return {"classes": np.array(MODEL_CLASSES), "mean": mean, "std": std, "w1": w1, "b1": b1, "w2": w2, "b2": b2}


def predict(model: GestureModel, hands: LabelledHands) -> np.ndarray:
    """``classify``'s answer for every row (vectorised: same features, same decision)."""
    features = hand_features(hands.points)
    probs = model.probabilities(features)
    angles = thumb_up_angles_deg(hands.points)
    return np.array([decide(p, f[-5:], a) for p, f, a in zip(probs, features, angles)])


def leave_one_group_out(hands: LabelledHands, log=None, **train_args) -> np.ndarray:
    """Predictions for every row by a model trained without that row's ``source_repo``."""
    out = np.empty(len(hands.gesture), dtype=object)
    groups = np.unique(hands.source_repo)
    for k, group in enumerate(groups):
        held = hands.source_repo == group
        model = GestureModel(train(hands.subset(~held), **train_args))
        out[held] = predict(model, hands.subset(held))
        if log:
            log(f"  [{k + 1}/{len(groups)}] held out {group}: {np.mean(out[held] == hands.expected[held]):.3f} right")
    return out.astype(str)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opensteady.vision.gesture_training", description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True, help="labelled landmark CSV (vision/gesture_data.py format)")
    parser.add_argument("--out", default=str(MODEL_PATH), help="where to write the weights (default: the shipped model)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    hands = read_csv_or_report(args.csv)
    if hands is None:
        return 2
    weights = train(hands, seed=args.seed)
    np.savez(Path(args.out), **weights)
    print(f"wrote {args.out} ({len(hands.gesture)} rows, {len(np.unique(hands.source_repo))} sources)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
