"""Magnetic rotor-angle sensor drivers: AS5600 (I2C, 12-bit) and AS5048A (SPI, 14-bit).

A diametric magnet on the motor shaft over the chip gives the rotor's
absolute mechanical angle, which field-oriented commutation (firmware/foc.py)
needs every tick. Both drivers take their bus as an argument (and the
AS5048A its chip-select pin), so tests run them on fake buses; only board
modules build a real ``machine.I2C`` / ``machine.SPI``. Buffers are made in
``__init__``; ``read()`` allocates nothing and returns a small int.

    enc = AS5600(i2c)              # validates, touches nothing
    enc.init()                     # True if a chip answered with a magnet in range
    counts = enc.read()            # 0..4095, or -1 on a bus error (enc.errors counts them)

    enc = AS5048A(spi, cs_pin)     # SPI mode 1 (polarity 0, phase 1), MSB first, <= 10 MHz
    enc.init()
    counts = enc.read()            # 0..16383, or -1 on a bus, parity or chip error flag

``bits`` is 12 or 14, ``cpr = 1 << bits``. Cost on a 400 kHz bus: an AS5600
read is about 45 bit times (0.11 ms; 50 us at 1 MHz); an AS5048A read is two
16-bit frames (3.2 us at 10 MHz). The AS5600 has one fixed address (0x36),
so three of them need three buses or an I2C multiplexer; three AS5048A share
one SPI bus with a chip select each (docs/firmware.md, "Rotor-angle sensors").
"""

try:
    import micropython
    from micropython import const
except ImportError:  # CPython
    from .mpcompat import const, micropython  # type: ignore[assignment,no-redef]

# AS5600 registers (datasheet v1.06)
_AS5600_ADDR = const(0x36)
_AS5600_CONF_H = const(0x07)  # [5] watchdog, [4:2] fast filter threshold, [1:0] slow filter
_AS5600_STATUS = const(0x0B)  # [5] MD magnet detected, [4] ML too weak, [3] MH too strong
_AS5600_RAW_ANGLE = const(0x0C)  # 12 bits, big-endian, no ZPOS/MPOS scaling or output hysteresis
_AS5600_MD = const(0x20)
_AS5600_ML = const(0x10)
_AS5600_MH = const(0x08)
# slow filter 2x (0.286 ms settling, the fastest), fast filter off, watchdog off; CONF_L = 0
# keeps the power mode nominal and the output hysteresis off (a gimbal holds still on purpose)
_AS5600_CONF_FAST = const(0x03)

# AS5048A SPI commands: [15] even parity, [14] 1 = read, [13:0] address
_AS5048_READ_ANGLE = const(0xFFFF)  # read 0x3FFF (angle); parity bit set: 15 ones in [14:0]
_AS5048_CLEAR_ERROR = const(0x4001)  # read 0x0001 (error register): reading it clears it
_AS5048_READ_DIAG = const(0x7FFD)  # read 0x3FFD (diagnostics + AGC); 14 ones + parity 0
_AS5048_NOP = const(0x0000)
_AS5048_EF = const(0x4000)  # reply bit 14: the previous command failed
_AS5048_DATA = const(0x3FFF)
_AS5048_OCF = const(0x0100)  # diagnostics: offset compensation finished
_AS5048_COMP_LOW = const(0x0400)  # magnet too strong
_AS5048_COMP_HIGH = const(0x0800)  # magnet too weak


@micropython.viper
def parity16(v: int) -> int:
    """Even-parity bit of the 16-bit word ``v``: 0 when it has an even number of ones."""
    v &= 0xFFFF
    v ^= v >> 8
    v ^= v >> 4
    v ^= v >> 2
    v ^= v >> 1
    return v & 1


def _command_word(reg, read):
    """The AS5048A command frame for ``reg`` (0..0x3FFF): parity, read bit, address."""
    w = (reg & _AS5048_DATA) | (0x4000 if read else 0)
    return w | (parity16(w) << 15)


class AS5600:
    """ams AS5600 12-bit magnetic encoder on I2C, read from RAW ANGLE into a preallocated buffer."""

    bits = 12

    def __init__(self, i2c, addr=_AS5600_ADDR):
        if addr != _AS5600_ADDR:
            raise ValueError("AS5600 addr must be 0x36 (it is fixed), got %r; use one bus or mux port per sensor"
                             % (addr,))
        self.i2c = i2c
        self.addr = addr
        self.cpr = 1 << self.bits
        self.errors = 0
        self.status = 0
        self._buf = bytearray(2)
        self._one = bytearray(1)

    def init(self):
        """Set the fastest filter and check the magnet. True if the chip answered with a usable field."""
        try:
            self._one[0] = _AS5600_CONF_FAST
            self.i2c.writeto_mem(self.addr, _AS5600_CONF_H, self._one)
            self.i2c.readfrom_mem_into(self.addr, _AS5600_STATUS, self._one)
        except OSError:
            return False
        self.status = self._one[0]
        return bool(self.status & _AS5600_MD) and not self.status & (_AS5600_ML | _AS5600_MH)

    @micropython.native
    def read(self):
        """Rotor angle in counts (0..4095), or -1 on a bus error."""
        buf = self._buf
        try:
            self.i2c.readfrom_mem_into(self.addr, _AS5600_RAW_ANGLE, buf)
        except OSError:
            self.errors += 1
            return -1
        return ((buf[0] & 0x0F) << 8) | buf[1]


class AS5048A:
    """ams AS5048A 14-bit magnetic encoder on SPI (mode 1), with the parity and error flag checked.

    A reply answers the previous command, so ``read()`` sends READ ANGLE and
    then a NOP, and takes the angle from the NOP's reply: two frames, no
    stale sample. A reply with bad parity, or with the error flag (EF) set,
    returns -1 and the next ``read()`` first clears the chip's error register.
    """

    bits = 14

    def __init__(self, spi, cs):
        if not hasattr(spi, "write_readinto"):
            raise ValueError("AS5048A needs an SPI bus (an object with write_readinto), got %r" % (spi,))
        if not callable(cs):
            raise ValueError("AS5048A cs must be a Pin (callable: cs(0) selects), got %r" % (cs,))
        self.spi = spi
        self.cs = cs
        self.cpr = 1 << self.bits
        self.errors = 0
        self.diag = 0
        self._clear = False
        self._tx_angle = bytearray((_AS5048_READ_ANGLE >> 8, _AS5048_READ_ANGLE & 0xFF))
        self._tx_nop = bytearray(2)
        self._tx_clear = bytearray((_AS5048_CLEAR_ERROR >> 8, _AS5048_CLEAR_ERROR & 0xFF))
        self._tx_diag = bytearray((_AS5048_READ_DIAG >> 8, _AS5048_READ_DIAG & 0xFF))
        self._rx = bytearray(2)

    def _frame(self, tx):
        cs = self.cs
        cs(0)
        try:
            self.spi.write_readinto(tx, self._rx)
        finally:
            cs(1)
        return (self._rx[0] << 8) | self._rx[1]

    def init(self):
        """Clear any error, read the diagnostics. True if the chip answered with a usable field."""
        self.cs(1)
        try:
            self._frame(self._tx_clear)
            self._frame(self._tx_diag)
            d = self._frame(self._tx_nop)
        except OSError:
            return False
        if parity16(d) or d & _AS5048_EF:
            return False
        self.diag = d & _AS5048_DATA
        return bool(self.diag & _AS5048_OCF) and not self.diag & (_AS5048_COMP_LOW | _AS5048_COMP_HIGH)

    @micropython.native
    def read(self):
        """Rotor angle in counts (0..16383), or -1 on a bus error, bad parity or the chip's error flag."""
        try:
            if self._clear:
                self._frame(self._tx_clear)
                self._clear = False
            self._frame(self._tx_angle)
            w = self._frame(self._tx_nop)
        except OSError:
            self.errors += 1
            return -1
        if parity16(w) or w & _AS5048_EF:
            self.errors += 1
            self._clear = True
            return -1
        return w & _AS5048_DATA


@micropython.viper
def counts_to_udeg(counts: int, bits: int) -> int:
    """A sensor reading (0 .. 2**bits - 1, bits 9..16) as micro-degrees, floor; products within +-2**30.

    360e6 udeg = 703125 * 2**9, so udeg = counts * 703125 >> (bits - 9), with
    703125 split into its quotient and remainder by 2**(bits - 9).
    """
    k = bits - 9
    q = 703125 >> k
    r = 703125 - (q << k)
    return counts * q + ((counts * r) >> k)
