"""Fixed inputs for the rotor-angle sensor drivers and commutation maths (runs on CPython and MicroPython).

Fake buses: a register file for the AS5600, and an SPI chip model for the
AS5048A that answers each frame with the reply to the previous command, with
parity. ``foc_vectors()`` returns plain ints and lists only.
"""

from opensteady.firmware import foc
from opensteady.firmware.angle_sensor import AS5048A, AS5600, _command_word, counts_to_udeg, parity16


class FakeI2C:
    """An AS5600's register file on a bus: readfrom_mem_into / writeto_mem, as machine.I2C."""

    def __init__(self, status=0x20):
        self.regs = bytearray(256)
        self.regs[0x0B] = status
        self.fail = False
        self.writes = []

    def set_angle(self, counts):
        self.regs[0x0C] = (counts >> 8) & 0x0F
        self.regs[0x0D] = counts & 0xFF

    def readfrom_mem_into(self, addr, reg, buf):
        if self.fail or addr != 0x36:
            raise OSError(19)
        for i in range(len(buf)):
            buf[i] = self.regs[reg + i]

    def writeto_mem(self, addr, reg, buf):
        if self.fail or addr != 0x36:
            raise OSError(19)
        self.writes.append([reg, buf[0]])
        self.regs[reg] = buf[0]


class FakeAS5048:
    """The chip behind an SPI bus: each 16-bit frame returns the answer to the previous command."""

    def __init__(self):
        self.angle = 0
        self.diag = 0x0100 | 0x80  # offset compensation finished, AGC 128
        self.error = 0
        self.reply = 0
        self.selected = False
        self.flip_in = 0  # flip one reply bit on the wire this many frames from now
        self.frames = 0

    def cs(self, v):
        self.selected = not v

    def _word(self, data, ef=0):
        w = (data & 0x3FFF) | (0x4000 if ef else 0)
        return w | (parity16(w) << 15)

    def write_readinto(self, tx, rx):
        assert self.selected and len(tx) == 2 and len(rx) == 2
        self.frames += 1
        out = self.reply
        if self.flip_in:
            self.flip_in -= 1
            if not self.flip_in:
                out ^= 0x0200
        rx[0] = out >> 8
        rx[1] = out & 0xFF
        cmd = (tx[0] << 8) | tx[1]
        if parity16(cmd):
            self.error = 4  # parity error in the command
            self.reply = self._word(0, 1)
            return
        reg = cmd & 0x3FFF
        if reg == 0x3FFF:
            self.reply = self._word(self.angle, self.error)
        elif reg == 0x0001:
            self.reply = self._word(self.error)
            self.error = 0
        elif reg == 0x3FFD:
            self.reply = self._word(self.diag, self.error)
        else:
            self.reply = self._word(0, self.error)


def foc_vectors():
    out = {}
    # AS5600 on a register file
    bus = FakeI2C()
    enc = AS5600(bus)
    out["as5600_init"] = [enc.init(), bus.writes]
    reads = []
    for c in (0, 1, 2047, 4095, 0xABC):
        bus.set_angle(c)
        reads.append(enc.read())
    bus.regs[0x0C] = 0xF5  # the unused top nibble must not leak into the angle
    reads.append(enc.read())
    bus.fail = True
    reads.append(enc.read())
    out["as5600_read"] = reads + [enc.errors]
    out["as5600_weak"] = AS5600(FakeI2C(status=0x30)).init()
    out["as5600_none"] = AS5600(FakeI2C(status=0x00)).init()
    # AS5048A on a chip model
    chip = FakeAS5048()
    enc2 = AS5048A(chip, chip.cs)
    out["as5048_init"] = enc2.init()
    reads = []
    for c in (0, 1, 8191, 16383, 0x1234):
        chip.angle = c
        reads.append(enc2.read())
    chip.flip_in = 2  # a data bit flipped on the wire in the angle's reply: parity catches it
    chip.angle = 77
    reads.append(enc2.read())
    reads.append(enc2.read())
    chip.error = 1  # the chip flags an error: EF set, then the driver clears it
    reads.append(enc2.read())
    reads.append(enc2.read())
    out["as5048_read"] = reads + [enc2.errors, chip.error, chip.frames]
    chip_bad = FakeAS5048()
    chip_bad.diag = 0x0100 | 0x0800  # magnet too weak
    out["as5048_weak"] = AS5048A(chip_bad, chip_bad.cs).init()
    out["cmd_words"] = [_command_word(0x3FFF, True), _command_word(0x0001, True), _command_word(0x3FFD, True)]
    out["udeg"] = [counts_to_udeg(c, b) for b in (12, 14) for c in (0, 1, 1000, (1 << b) - 1)]
    # commutation
    out["rotor_index"] = [foc.rotor_elec_index(c, b, pp, d, z) for b in (12, 14) for c in (0, 1000, 4095)
                          for pp, d, z in ((7, 1, 0), (7, -1, 100), (11, 1, 1500))]
    duties = [0, 0, 0]
    ft = []
    for e in (0, 100, 1535):
        for amp in (0, 20000, -20000):
            for sv in (0, 1):
                foc.foc_duties(e, amp, sv, duties)
                ft.append(list(duties))
    out["foc_duties"] = ft
    # the calibrator on an ideal rotor that follows the field with a lag
    out["calib"] = [calibrate_ideal(bits, pp, d, off, lag)
                    for bits, pp, d, off, lag in ((14, 7, 1, 3000, 40), (12, 7, -1, 777, -60), (14, 11, 1, 16000, 0))]
    return out


def calibrate_ideal(bits, pole_pairs, sensor_dir, offset_counts, lag_index):
    """Run FocCalibrator against a rotor that sits ``lag_index`` behind the field (1 ms ticks)."""
    cal = foc.FocCalibrator(bits, pole_pairs)
    cal.start()
    cpr = 1 << bits
    field = 0
    prev = 0
    ticks = 0
    while cal.phase < foc.CAL_DONE and ticks < 5000:
        # the rotor trails the field by lag_index in the direction it last moved
        unwrapped = prev + foc.wrap_index(field - prev)
        direction = 1 if unwrapped > prev else (-1 if unwrapped < prev else 0)
        prev = unwrapped
        rotor_e = unwrapped - direction * lag_index
        counts = (sensor_dir * (rotor_e * cpr // (1536 * pole_pairs)) + offset_counts) % cpr
        field = cal.step(counts, 1000)
        ticks += 1
    return [cal.phase, cal.reason, cal.sensor_dir, cal.elec_zero, ticks]
