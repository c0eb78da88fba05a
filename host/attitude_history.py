"""Gimbal telemetry on the host's clock: fresh or not, and the attitude at a frame's capture time.

A frame shows the scene at the moment it was captured, and the gimbal moved
since. So the pipeline needs the gimbal's attitude *at the frame's capture
time*, not whatever telemetry came last: over a lossy link the last sample
can be 100 ms old, and a frame that has none discounts the wrong camera
motion.

:class:`AttitudeHistory` keeps the last ``history_s`` of samples, each with
its arrival time on the host's clock and, where the device sends one, its
own measurement time (OpenSteady TELEMETRY ``t_us``: the device's ticks_us,
wrapping at 2**30 µs). Device time is mapped to host time by
:class:`DeviceClock`: host ≈ device + offset, where the offset is the
smallest (arrival − device time) seen in the last ``offset_window_s`` (the
minimum one-way delay filter of NTP and PTP): a sample held back by the
link, a lost byte or a slow poll only arrives later, never earlier, so the
fastest one bounds the true offset. The window follows crystal drift and a
rebooted device. A device without a clock is placed at arrival time.
The arrival should be when the frame's first byte came (host.link stamps it
so, less the bytes' time on the wire), so the offset is the link's fixed
latency, not that plus the frame's wire time and the wait for a poll. A
sample whose attitude is older than its device time (the IMU filter's delay,
which the OpenSteady firmware reports in VERSION) is placed ``delay_s``
before it; the offset is still learnt from the device time, when it was sent.

    history = AttitudeHistory(max_age_s=0.25)
    history.add(telemetry, arrival_s=rx_s, device_us=telemetry.get("t_us"), wrap_us=2**30, delay_s=0.0048)
    history.at(frame_capture_s, now)   # the attitude then (interpolated), or None when stale

``at`` interpolates every ``*_deg`` (across ±180°) and ``*_dps`` value
between the samples around ``t_s``; after the newest sample it extrapolates
at the rate between the last two for at most ``max_extrapolate_s``, then
holds. Its ``attitude_span_s`` says how far apart the samples it came from
were (interpolated: their spacing; extrapolated: twice the distance from
the older of the two; inf from a single sample): 20 ms at 50 Hz, more where
frames were lost, and a gimbal that rings moves off a straight line between
samples that far apart (host.framing weighs a bearing by it). Telemetry is *fresh* while the newest sample arrived at most
``max_age_s`` ago; after that ``at`` returns None and the pipeline acts as
if there were no telemetry. Pure: time comes in as arguments.
"""

from collections import deque

REBOOT_JUMP_S = 1.0  # device time that moves back, or this far off the mapping: the device restarted


class DeviceClock:
    """Maps a device's wrapping microsecond counter onto the host's clock (seconds)."""

    def __init__(self, wrap_us, window_s=10.0):
        self.wrap_us = wrap_us
        self.window_s = window_s
        self.resets = 0
        self._last_raw = None
        self._device_us = 0  # unwrapped device time of the last sample
        self._offsets = deque()  # (arrival_s, offset_s), offsets increasing: a sliding-window minimum

    @property
    def offset_s(self):
        """host − device time, from the fastest sample in the window; None before the first sample."""
        return self._offsets[0][1] if self._offsets else None

    def observe(self, raw_us, arrival_s):
        """Note a sample stamped ``raw_us`` that arrived at ``arrival_s``; returns its unwrapped device time in
        seconds (host time = that + ``offset_s``). A reboot (``resets`` goes up) starts a new mapping."""
        if self._last_raw is None:
            self._device_us = raw_us
        else:
            step = (raw_us - self._last_raw) % self.wrap_us
            if step >= self.wrap_us // 2:
                step -= self.wrap_us  # older than the last sample (reordered), or a reboot
            self._device_us += step
        self._last_raw = raw_us
        device_s = self._device_us * 1e-6
        offset = arrival_s - device_s
        best = self.offset_s
        if best is not None and (offset < best - REBOOT_JUMP_S or offset > best + REBOOT_JUMP_S):
            self.resets += 1  # the device restarted (its clock jumped): forget the old mapping
            self._offsets.clear()
            self._device_us = raw_us
            device_s = raw_us * 1e-6
            offset = arrival_s - device_s
        window = self._offsets
        while window and window[-1][1] >= offset:
            window.pop()
        window.append((arrival_s, offset))
        while window[0][0] < arrival_s - self.window_s:
            window.popleft()
        return device_s


def _blend(a, b, w):
    """Sample ``a`` moved a fraction ``w`` of the way to ``b`` (angles the short way round)."""
    out = dict(b)
    for key, va in a.items():
        vb = b.get(key)
        if not isinstance(va, (int, float)) or not isinstance(vb, (int, float)) or isinstance(va, bool):
            continue
        if key.endswith("_deg"):
            out[key] = va + ((vb - va + 180.0) % 360.0 - 180.0) * w
        elif key.endswith("_dps"):
            out[key] = va + (vb - va) * w
    return out


class AttitudeHistory:
    """Recent telemetry samples on the host's clock; see the module docstring."""

    def __init__(self, max_age_s=0.25, history_s=1.0, offset_window_s=10.0, max_extrapolate_s=0.1):
        if max_age_s <= 0:
            raise ValueError("telemetry max_age_s must be > 0, got %r" % (max_age_s,))
        self.max_age_s = max_age_s
        self.history_s = history_s
        self.offset_window_s = offset_window_s
        self.max_extrapolate_s = max_extrapolate_s
        self.clock = None  # DeviceClock, once a sample with device time arrived
        # (measured, telemetry) in order: measured on the device's unwrapped clock (s) when it sends its time,
        # else the arrival time. Device times are mapped to host time when asked (the offset keeps improving).
        self._samples = deque()
        self._arrived_s = None  # arrival time of the newest sample

    def clear(self):
        self._samples.clear()
        self._arrived_s = None

    def add(self, telemetry, arrival_s, device_us=None, wrap_us=None, delay_s=0.0):
        """Keep one accepted sample that arrived at ``arrival_s`` (host clock), sent at ``device_us``, whose
        attitude was true ``delay_s`` before that (the device's IMU filter delay)."""
        measured_s = arrival_s
        if device_us is not None and wrap_us:
            if self.clock is None or self.clock.wrap_us != wrap_us:
                self.clock = DeviceClock(wrap_us, self.offset_window_s)
                self._samples.clear()
            resets = self.clock.resets
            measured_s = self.clock.observe(device_us, arrival_s) - delay_s
            if self.clock.resets != resets:
                self._samples.clear()
        samples = self._samples
        if samples and measured_s <= samples[-1][0]:
            if measured_s < samples[-1][0] - REBOOT_JUMP_S:
                samples.clear()
            else:
                return  # a duplicate or an older sample than one we have: nothing new
        samples.append((measured_s, telemetry))
        self._arrived_s = arrival_s
        while samples[0][0] < measured_s - self.history_s:
            samples.popleft()

    def age_s(self, now_s):
        """Seconds since the newest sample arrived, or None without one."""
        return None if self._arrived_s is None else now_s - self._arrived_s

    def fresh(self, now_s):
        age = self.age_s(now_s)
        return age is not None and age <= self.max_age_s

    def latest(self, now_s):
        """The newest sample while fresh, else None."""
        return self._samples[-1][1] if self.fresh(now_s) else None

    def at(self, t_s, now_s):
        """The attitude at host time ``t_s`` (None: the newest), from fresh telemetry only; else None."""
        if not self.fresh(now_s):
            return None
        samples = self._samples
        if t_s is None:
            return samples[-1][1]
        if self.clock is not None:
            t_s -= self.clock.offset_s  # host time -> the device clock the samples are kept on
        t_last, last = samples[-1]
        if t_s >= t_last:
            ahead = t_s - t_last
            if ahead > self.max_extrapolate_s:
                return None  # the camera may have turned any way since: unknown, not the old attitude
            if len(samples) < 2:
                return dict(last, attitude_span_s=float("inf"))
            t_prev, prev = samples[-2]
            return dict(_blend(prev, last, 1.0 + ahead / (t_last - t_prev)), attitude_span_s=2.0 * (t_s - t_prev))
        if t_s <= samples[0][0]:
            return dict(samples[0][1], attitude_span_s=float("inf"))
        hi = len(samples) - 1
        lo = 0
        while hi - lo > 1:  # samples[lo] < t_s <= samples[hi]
            mid = (lo + hi) // 2
            if samples[mid][0] < t_s:
                lo = mid
            else:
                hi = mid
        (ta, a), (tb, b) = samples[lo], samples[hi]
        return dict(_blend(a, b, (t_s - ta) / (tb - ta)), attitude_span_s=tb - ta)
