"""Run metrics: pure functions of the traces a run records (arrays in, floats out).

    rms = tracking_rms_frac(face_px, in_view, calibration_point, (640, 480))
    jitter = jitter_rms_deg(t_s, camera_ypr_deg, commanded_ypr_deg)

Definitions (docs/sim.md repeats them):

- ``tracking_rms_frac``: RMS over the frames where the subject is in view of
  the distance between its true face centre (projected from the world) and
  the calibration point, in frame widths;
- ``tracking_lost_frac``: of those frames, the fraction where the tracker had
  no target;
- ``camera_jitter_rms_deg``: RMS of the norm of (camera attitude - commanded
  attitude), per axis high-passed above 0.5 Hz (2nd-order Butterworth, run
  forwards and backwards so it adds no lag);
- ``handle_motion_rms_deg``: RMS of the norm of the handle's attitude about
  its mean over the same samples.
"""

import math

import numpy as np

JITTER_CUTOFF_HZ = 0.5


def wrap_deg(a):
    return (np.asarray(a, dtype=float) + 180.0) % 360.0 - 180.0


def tracking_rms_frac(face_px, in_view, calibration_point, frame_size):
    """RMS distance (frame widths) of the face from the calibration point over in-view frames; None if none."""
    face = np.asarray(face_px, dtype=float).reshape(-1, 2)
    mask = np.asarray(in_view, dtype=bool)
    if not mask.any():
        return None
    w, h = frame_size
    target = np.array([calibration_point[0] * w, calibration_point[1] * h])
    d = np.linalg.norm(face[mask] - target, axis=1) / w
    return float(np.sqrt(np.mean(d * d)))


def lost_frac(in_view, locked):
    mask = np.asarray(in_view, dtype=bool)
    if not mask.any():
        return None
    return float(np.mean(~np.asarray(locked, dtype=bool)[mask]))


def _biquad_highpass(x, sample_hz, cutoff_hz):
    # 2nd-order Butterworth by the bilinear transform with pre-warping
    k = math.tan(math.pi * cutoff_hz / sample_hz)
    norm = 1.0 / (1.0 + math.sqrt(2.0) * k + k * k)
    b0, b1, b2 = norm, -2.0 * norm, norm
    a1 = 2.0 * (k * k - 1.0) * norm
    a2 = (1.0 - math.sqrt(2.0) * k + k * k) * norm
    # y[n] = b0 x[n] + b1 x[n-1] + b2 x[n-2] - a1 y[n-1] - a2 y[n-2] (zero history), summed left to right:
    # the input terms for every n at once in numpy (the same float operations in the same order), then the
    # recursion in plain floats (10x faster than numpy scalars)
    x1 = np.zeros_like(x)
    x1[1:] = x[:-1]
    x2 = np.zeros_like(x)
    x2[2:] = x[:-2]
    ff = b0 * x + b1 * x1 + b2 * x2
    out = np.empty_like(x)
    for col in range(x.shape[1]):
        ys = []
        append = ys.append
        y1 = y2 = 0.0
        for fn in ff[:, col].tolist():
            yn = fn - a1 * y1 - a2 * y2
            append(yn)
            y2 = y1
            y1 = yn
        out[:, col] = ys
    return out


def highpass(x, sample_hz, cutoff_hz=JITTER_CUTOFF_HZ):
    """Zero-phase 2nd-order Butterworth high-pass along axis 0 (forwards, then backwards).

    The ends are padded with an odd reflection (as scipy's filtfilt does) so
    the filter's start-up transient falls outside the data.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        return highpass(x[:, None], sample_hz, cutoff_hz)[:, 0]
    if len(x) < 16:
        return x - x.mean(axis=0)
    pad = min(len(x) - 1, int(3 * sample_hz / cutoff_hz))
    head = 2 * x[0] - x[pad:0:-1]
    tail = 2 * x[-1] - x[-2:-pad - 2:-1]
    ext = np.concatenate([head, x, tail])
    y = _biquad_highpass(ext, sample_hz, cutoff_hz)
    y = _biquad_highpass(y[::-1], sample_hz, cutoff_hz)[::-1]
    return y[pad:pad + len(x)]


def jitter_rms_deg(t_s, camera_ypr_deg, commanded_ypr_deg):
    t = np.asarray(t_s, dtype=float)
    if len(t) < 2:
        return None
    err = wrap_deg(np.asarray(camera_ypr_deg) - np.asarray(commanded_ypr_deg))
    sample_hz = (len(t) - 1) / (t[-1] - t[0])
    hp = highpass(err, sample_hz)
    return float(np.sqrt(np.mean(np.sum(hp * hp, axis=1))))


def motion_rms_deg(ypr_deg):
    a = np.asarray(ypr_deg, dtype=float)
    if len(a) == 0:
        return None
    # unwrap yaw so a pan through +-180 is not a jump
    a = a.copy()
    a[:, 0] = np.degrees(np.unwrap(np.radians(a[:, 0])))
    dev = a - a.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(dev * dev, axis=1))))


def round_or_none(x, digits=5):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), digits)
