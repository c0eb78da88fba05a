"""The gimbal modes: per-axis angle targets and rate feed-forward for the three axis controllers.

- off: motors off (the application stops them); lock: the targets stay
  where they are, in the earth frame.
- pan-follow / follow: the yaw (and pitch) target trails the handle outside
  a deadband (``follow_deadband_deg``), smoothed with time constant
  ``follow_tc_s``.
- track: the host's SETPOINT, per axis: an angle (earth frame, or relative
  to the handle) is the target; a rate is integrated into the target (earth
  frame) or into the offset from the handle, and fed forward. A rate is
  valid for ``rate_deadman_ms`` (0.5 s, DJI R SDK's rule) unless a new
  SETPOINT renews it; after that the axis stops where it is (heartbeats keep
  the link alive, not the motion). While the link failsafe is on the targets
  hold, and a new SETPOINT is needed after it.
- recentre: the targets move to the handle (joint angle 0) at
  ``recentre_dps``, then the mode becomes lock.

Mode changes are bumpless: the targets continue from where they are.

    modes = Modes(est, axes)     # the AttitudeEstimator and the three AxisControllers it reads
    modes.configure(cfg)
    modes.enter(MODE_TRACK)
    modes.setpoint(flags, yaw, pitch, roll)     # a SETPOINT's fields (cdeg or cdps)
    modes.update(dt_us, failsafe)               # each tick while the motors run
    modes.target_udeg, modes.ff_mdps            # what the controllers follow

Pure: time comes in as ``dt_us``; integers only (nothing allocates per tick).
"""

from .fixmath import wrap_udeg
from .protocol import MODE_OFF

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython, ptr32  # type: ignore[assignment,no-redef]

_FF_MAX = const(1048575)  # follow feed-forward clamp, mdps
_SP_RATE = const(0x01)  # protocol.SP_YAW_IS_RATE (imported names are not constants to viper)
_SP_EARTH = const(0x08)  # protocol.SP_YAW_IN_EARTH_FRAME
# the modes update() tells apart each tick: imported names are global lookups in native code, these fold
_LOCK = const(1)  # protocol.MODE_LOCK
_PAN_FOLLOW = const(2)  # protocol.MODE_PAN_FOLLOW
_FOLLOW = const(3)  # protocol.MODE_FOLLOW
_TRACK = const(4)  # protocol.MODE_TRACK
_RECENTRE = const(5)  # protocol.MODE_RECENTRE
# AxisController.packed (firmware/control.py): the commanded joint's word, stored + OFF
_S_JOINT = const(11)  # control.S_JOINT
_OFF = const(0x20000000)  # control.OFF


class Modes:
    def __init__(self, est, axes):
        self.est = est
        self.axes = axes
        self.mode = MODE_OFF
        self.target_udeg = [0, 0, 0]
        self.ff_mdps = [0, 0, 0]
        self.track_udeg = [0, 0, 0]  # integrated rate setpoint: target (earth) or offset from the handle
        self.track_frac = [0, 0, 0]  # ndeg below track_udeg, 0..999
        self.sp_flags = 0
        self.sp_value = [0, 0, 0]  # last SETPOINT, cdeg or cdps
        self.sp_valid = False  # a SETPOINT arrived since track mode began or the link came back
        self.sp_age_us = 0  # time since the last SETPOINT, counted up to deadman_us
        self.deadman_us = 500000
        self._track_kind = [0, 0, 0]  # per axis: 0 angle, 1 handle-frame rate, 2 earth-frame rate
        self.follow_q12 = 0
        self.recentre_mdps = 0
        self.deadband_udeg = [0, 0, 0]

    def configure(self, cfg):
        follow_tc_us = int(cfg.get("follow_tc_s") * 1e6)
        self.follow_q12 = int(4096e6 / follow_tc_us)  # mdps per mdeg of error, Q12
        self.recentre_mdps = int(cfg.get("recentre_dps") * 1000)
        self.deadman_us = cfg.get("rate_deadman_ms") * 1000
        for i in range(3):
            self.deadband_udeg[i] = int(cfg.axis(i, "follow_deadband_deg") * 1e6)

    def enter(self, mode):
        """Switch to ``mode`` (already validated): no feed-forward, and the host's setpoint is forgotten."""
        self.mode = mode
        for i in range(3):
            self.ff_mdps[i] = 0
        self.hold_track()

    def hold_track(self):
        # forget the host's setpoint until a new one arrives
        self.sp_valid = False
        for i in range(3):
            self._track_kind[i] = 0

    def hold_attitude(self):
        """Target the attitude the camera has now, with no feed-forward (motor start, link loss)."""
        ang = self.est.angle_udeg
        for i in range(3):
            self.target_udeg[i] = ang[i]
            self.ff_mdps[i] = 0

    def setpoint(self, flags, yaw, pitch, roll):
        """A SETPOINT from the host: SP_* flags, then cdeg or cdps per axis."""
        self.sp_flags = flags
        v = self.sp_value
        v[0] = yaw
        v[1] = pitch
        v[2] = roll
        self.sp_valid = True
        self.sp_age_us = 0

    @micropython.viper
    def handle_udeg(self, i: int) -> int:
        """The handle's angle about axis i, seen from the camera: camera angle minus joint angle."""
        return int(wrap_udeg(int(self.est.angle_udeg[i]) - (ptr32(self.axes[i].packed)[_S_JOINT] - _OFF)))

    @micropython.native
    def update(self, dt, failsafe):
        """Per-mode targets and feed-forward for one tick of ``dt`` us; track holds while ``failsafe``."""
        mode = self.mode
        if mode == _LOCK:
            return
        ff = self.ff_mdps
        ff[0] = 0
        ff[1] = 0
        ff[2] = 0
        if mode == _TRACK:
            age = self.sp_age_us
            deadman = self.deadman_us
            if age < deadman:
                self.sp_age_us = age + dt
            if not failsafe:
                self._track(dt, 1 if age >= deadman else 0)
        elif mode == _PAN_FOLLOW:
            self._follow(0, dt)
        elif mode == _FOLLOW:
            self._follow(0, dt)
            self._follow(1, dt)
        elif mode == _RECENTRE:
            done = True
            for i in range(3):
                if not self._recentre(i, dt):
                    done = False
            if done:
                self.mode = _LOCK
                ff[0] = 0
                ff[1] = 0
                ff[2] = 0

    @micropython.native
    def _follow(self, i, dt):
        # the target trails the handle outside a deadband, smoothed with time constant follow_tc
        err = wrap_udeg(self.handle_udeg(i) - self.target_udeg[i])
        db = self.deadband_udeg[i]
        if err > db:
            err -= db
        elif err < -db:
            err += db
        else:
            return
        # ff = err / follow_tc (mdps), from the error in mdeg split at 2**8; the
        # target moves ff * dt, split in deg/s and mdps (no product leaves 2**30)
        err //= 1000
        g = self.follow_q12
        ff = ((err >> 8) * g + (((err & 255) * g) >> 8)) >> 4
        if ff > _FF_MAX:
            ff = _FF_MAX
        elif ff < -_FF_MAX:
            ff = -_FF_MAX
        x = ff // 1000
        self.target_udeg[i] = wrap_udeg(self.target_udeg[i] + x * dt + ((ff - x * 1000) * dt) // 1000)
        self.ff_mdps[i] = ff

    @micropython.native
    def _recentre(self, i, dt):
        # move the target to the handle (joint angle 0) at recentre_dps; True when there
        err = wrap_udeg(self.handle_udeg(i) - self.target_udeg[i])
        v = self.recentre_mdps
        step = (v // 1000) * dt + ((v % 1000) * dt) // 1000  # v * dt // 1000, split
        if -step <= err <= step:
            self.target_udeg[i] = wrap_udeg(self.target_udeg[i] + err)
            joint = self.axes[i].packed[_S_JOINT] - _OFF
            return -500000 <= joint <= 500000
        if err > 0:
            self.target_udeg[i] = wrap_udeg(self.target_udeg[i] + step)
            self.ff_mdps[i] = v
        else:
            self.target_udeg[i] = wrap_udeg(self.target_udeg[i] - step)
            self.ff_mdps[i] = -v
        return False

    @micropython.viper
    def _track(self, dt: int, expired: int):
        # Viper: every value within +-2**30. ``expired``: the last rate setpoint is older than the deadman.
        if not self.sp_valid:
            return
        flags = int(self.sp_flags)
        spv = self.sp_value
        kinds = self._track_kind
        tu = self.track_udeg
        tf = self.track_frac
        tgt = self.target_udeg
        ff = self.ff_mdps
        wrap = wrap_udeg  # one global lookup instead of one a call
        for i in range(3):
            v = int(spv[i])
            earth = flags & (_SP_EARTH << i)
            handle = 0 if earth else int(self.handle_udeg(i))
            if flags & (_SP_RATE << i):
                kind = 2 if earth else 1
                if int(kinds[i]) != kind:
                    # start integrating from where the target is now: bumpless
                    kinds[i] = kind
                    start = int(tgt[i])
                    if not earth:
                        start = int(wrap(start - handle))
                    tu[i] = start
                    tf[i] = 0
                rate = 0 if expired else v * 10  # cdps -> mdps; a stale rate stops the axis
                # += rate * dt ndeg, as udeg + ndeg remainder (exact, small ints)
                x = rate // 1000
                f = int(tf[i]) + (rate - x * 1000) * dt
                t = int(wrap(int(tu[i]) + x * dt + f // 1000))
                tf[i] = f % 1000
                tu[i] = t
                ff[i] = rate
                if earth:
                    tgt[i] = t
                else:
                    tgt[i] = wrap(handle + t)
            else:
                kinds[i] = 0
                tgt[i] = wrap(handle + v * 10000)  # cdeg -> udeg
