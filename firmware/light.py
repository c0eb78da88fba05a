"""The fill light: off and three brightness levels on one PWM pin (MSG_LIGHT).

A pure core: ``FillLight`` turns a level (0 off, 1..3) and the config
(``light_pwm_hz``, ``light_level_1..3_permille``, ``light_pin``) into one
``hal.light_write(pin, freq_hz, duty_u16)`` call. It writes only when the
level or the config changes, never per control tick, so the tick stays at 0
bytes allocated. ``light_pin`` -1 means the pin in the board's pin map
(firmware/boards/); a board or simulator without a light returns False from
``light_write`` and MSG_LIGHT is answered NACK not_fitted.

    light = FillLight(hal)
    light.configure(cfg)         # at boot (drives the pin low) and after a CONFIG_SET
    status = light.set_level(2)  # ACK_OK, NACK_OUT_OF_RANGE or NACK_NOT_FITTED
"""

from .protocol import ACK_OK, LIGHT_LEVELS, NACK_NOT_FITTED, NACK_OUT_OF_RANGE


def permille_to_u16(permille):
    """A duty in 1/1000 (0..1000) as a 16-bit PWM duty (0..65535)."""
    return (int(permille) * 65535 + 500) // 1000


class FillLight:
    def __init__(self, hal):
        self.hal = hal
        self.level = 0  # 0 off, 1..LIGHT_LEVELS
        self.pin = -1  # -1: the board's pin map
        self.freq_hz = 0
        self.duty_u16 = [0, 0, 0, 0]  # per level; level 0 is off
        self.fitted = False  # the board drove the pin the last time we asked

    def configure(self, cfg):
        """Take the light's settings from ``cfg`` and drive the pin at the current level."""
        g = cfg.get
        pin = g("light_pin")
        if pin != self.pin and self.fitted:
            self.hal.light_write(self.pin, self.freq_hz, 0)  # moving to another pin: leave the old one dark
        self.pin = pin
        self.freq_hz = g("light_pwm_hz")
        d = self.duty_u16
        d[1] = permille_to_u16(g("light_level_1_permille"))
        d[2] = permille_to_u16(g("light_level_2_permille"))
        d[3] = permille_to_u16(g("light_level_3_permille"))
        self._write()

    def set_level(self, level):
        """MSG_LIGHT: 0 off, 1..3 the configured brightness; an ACK status."""
        if not 0 <= level <= LIGHT_LEVELS:
            return NACK_OUT_OF_RANGE
        previous = self.level
        self.level = level
        if not self._write():
            self.level = previous
            return NACK_NOT_FITTED
        return ACK_OK

    def _write(self):
        self.fitted = bool(self.hal.light_write(self.pin, self.freq_hz, self.duty_u16[self.level]))
        return self.fitted
