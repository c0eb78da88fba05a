"""Appearance signatures on real photos: the same person matches, another does not."""

import pytest

from opensteady.vision.appearance import face_signature, similarity
from opensteady.vision.scenes import Placement, compose, degrade
from opensteady.vision.types import Box


def signature_of(placement, gain=1.0, noise=0.0):
    frame, (box,) = compose([placement])
    return face_signature(degrade(frame, gain, noise), box)


def test_same_person_under_changes_matches_and_another_person_does_not():
    ref = signature_of(Placement("astronaut", 0.5, 0.4, 0.16))
    assert len(ref) == 48 and sum(ref) == pytest.approx(1.0)
    same = [
        signature_of(Placement("astronaut", 0.3, 0.6, 0.09)),
        signature_of(Placement("astronaut", 0.5, 0.4, 0.3, angle_deg=20)),
        signature_of(Placement("astronaut", 0.5, 0.4, 0.16), gain=0.3),
        signature_of(Placement("astronaut", 0.5, 0.4, 0.16), noise=15.0),
    ]
    other = signature_of(Placement("cameraman", 0.5, 0.4, 0.16))
    worst_same = min(similarity(ref, s) for s in same)
    assert worst_same > 0.85
    assert similarity(ref, other) < 0.7 < worst_same


def test_similarity_edge_cases():
    assert similarity((), (0.5, 0.5)) == 1.0  # no evidence either way
    assert similarity((1.0, 0.0), (0.0, 1.0)) == 0.0
    with pytest.raises(ValueError, match="length"):
        similarity((1.0,), (0.5, 0.5))
    frame, _ = compose([])
    assert face_signature(frame, Box(1.2, 0.1, 0.1, 0.1)) == ()  # outside the frame
