"""Session log: one JSON object per line, flushed as it is written.

Records (``"type"``): ``start`` (settings), ``frame`` (detections, target,
setpoint, telemetry, per-stage latency, events), ``error``, ``summary``.
Every line is flushed at once and fsync'd at least once a second and at
close, so a crash or Ctrl-C loses at most the line being written; the
reader skips a truncated last line and says so.

    with SessionLog("run.jsonl") as log:
        log.write({"type": "frame", ...})
    records, problems = read_log("run.jsonl")
"""

import json
import math
import os
import time


def _clean(value):
    """JSON-safe copy: NaN/inf become None, tuples lists, numpy scalars floats."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _clean(value.item())
    return value


class SessionLog:
    def __init__(self, path, fsync_interval_s=1.0, clock=time.monotonic):
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self._f = open(path, "w", encoding="utf-8", buffering=1)
        self._clock = clock  # paces the fsyncs only
        self._last_sync = clock()
        self.records = 0

    def write(self, record):
        self._f.write(json.dumps(_clean(record), separators=(",", ":")) + "\n")
        self._f.flush()
        self.records += 1
        now = self._clock()
        if now - self._last_sync >= self.fsync_interval_s:
            os.fsync(self._f.fileno())
            self._last_sync = now

    def close(self):
        if self._f is not None and not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_log(path):
    """(records, problems): every parseable line, and a message per line that was not.

    Raises OSError when the file cannot be read and ValueError when it is not text at all.
    """
    records, problems = [], []
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("%s is not a text file (byte 0x%02x at offset %d is not UTF-8): a session log is the JSON "
                         "lines file `opensteady track --log` writes" % (path, data[exc.start], exc.start)) from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append("%s:%d: not a JSON line (%s), skipped" % (path, number, exc.msg))
            continue
        if not isinstance(record, dict) or "type" not in record:
            problems.append("%s:%d: no \"type\" field, skipped" % (path, number))
            continue
        records.append(record)
    return records, problems


def frame_record(out, frame_index, e2e_ms=None):
    """The ``frame`` record for one PipelineOutput."""
    det = out.detections
    target = out.target
    sp = out.setpoint
    return {
        "type": "frame",
        "t_s": out.t_s,
        "frame": frame_index,
        "faces": [[f.box.x, f.box.y, f.box.w, f.box.h, f.score] for f in det.faces],
        "hands": [[h.box.x, h.box.y, h.box.w, h.box.h, h.gesture] for h in det.hands],
        "bodies": [[b.box.x, b.box.y, b.box.w, b.box.h, b.score] for b in det.bodies],
        "target": {"locked": target.locked, "track_id": target.track_id, "x": target.x, "y": target.y,
                   "source": target.source, "lost_s": target.lost_s},
        "calibration_point": list(out.calibration_point),
        "setpoint": {"state": sp.state, "yaw_rate_dps": sp.yaw_rate_dps, "pitch_rate_dps": sp.pitch_rate_dps,
                     "roll_deg": sp.roll_deg, "yaw_deg": sp.yaw_deg, "pitch_deg": sp.pitch_deg,
                     "yaw_error_deg": sp.yaw_error_deg, "pitch_error_deg": sp.pitch_error_deg},
        "telemetry": out.telemetry,
        "latency_ms": out.latency_ms,
        "e2e_ms": e2e_ms,
        "events": [[e.kind, e.detail] for e in out.events],
        "paused": out.paused,
        "recording": out.recording,
    }
