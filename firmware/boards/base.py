"""Pieces shared by the board modules; this module itself imports no ``machine``.

``PwmBoard`` implements the HAL on objects a board module builds with
``machine`` (an MPU6050 on an I2C bus, PWM outputs, an enable pin) and hands
in, so the logic here runs unchanged on a Pico and an ESP32 and can be
tested with fakes. Links: ``StdioLink`` (USB serial / REPL console) and
``UartLink`` (a hardware UART). ``FileStore`` keeps the config file on the
board's flash filesystem, replaced atomically.
"""

import os
import sys

from ..angle_sensor import AS5048A, AS5600
from ..hal import HAL

BLDC_PWM_HZ = 25000  # above hearing; DRV8313 handles up to 250 kHz
SERVO_PWM_HZ = 50
HANDLE_IMU_ADDR = 0x69  # the optional handle MPU-6050, AD0 tied to 3V3 (the camera's is at 0x68)
HANDLE_IMU_RETRY_TICKS = 1000  # an unanswered handle IMU is probed again after this many reads
SENSOR_KINDS = ("none", "as5600", "as5048a")  # the config's <axis>_sensor values 0, 1, 2
AS5048A_SPI_HZ = 10000000  # the chip's maximum; drop it for leads longer than about 20 cm
AS5600_I2C_HZ = 400000


def sensor_kinds(sensors):
    """Per-axis sensor kinds (0 none, 1 AS5600, 2 AS5048A) from a kind name for every axis or three config values.

    A board wires one kind only (the AS5600 buses and the AS5048A's SPI share pins), so a mix is refused.
    """
    if isinstance(sensors, str):
        if sensors not in SENSOR_KINDS:
            raise ValueError("sensors must be one of %s, got %r" % (", ".join(SENSOR_KINDS), sensors))
        k = SENSOR_KINDS.index(sensors)
        return (k, k, k)
    kinds = tuple(sensors)
    if len(kinds) != 3 or any(k not in (0, 1, 2) for k in kinds):
        raise ValueError("sensors: give a name (%s) or three <axis>_sensor values 0..2, got %r"
                         % (", ".join(SENSOR_KINDS), sensors))
    used = [k for k in kinds if k]
    if used and min(used) != max(used):
        raise ValueError("sensors %r: one kind per board (the AS5600 buses and the AS5048A's SPI share pins)"
                         % (kinds,))
    return kinds


def config_sensor_kinds(cfg):
    """The ``<axis>_sensor`` values of a Config, made wireable: with a mix, the yaw-most kind is kept."""
    kinds = [cfg.axis(i, "sensor") for i in range(3)]
    first = 0
    for k in kinds:
        if k and not first:
            first = k
    return tuple(k if k == first else 0 for k in kinds)


def angle_sensors(machine, kinds, spi_id, spi_pins, cs_pins, i2c_buses):
    """A rotor-sensor driver per axis (None where ``kinds`` says 0) on the board's buses; nothing is read yet.

    ``machine`` is the board module's (this module imports none); ``spi_pins``
    = (SCK, MOSI, MISO) of the AS5048A bus, ``cs_pins`` one per axis;
    ``i2c_buses`` = (I2C id or -1 for SoftI2C, SDA, SCL) per axis, since every
    AS5600 answers at 0x36.
    """
    out = [None, None, None]  # type: list
    spi = None
    for axis in range(3):
        if kinds[axis] == 2:
            if spi is None:
                spi = machine.SPI(spi_id, baudrate=AS5048A_SPI_HZ, polarity=0, phase=1, sck=machine.Pin(spi_pins[0]),
                                  mosi=machine.Pin(spi_pins[1]), miso=machine.Pin(spi_pins[2]))
            out[axis] = AS5048A(spi, machine.Pin(cs_pins[axis], machine.Pin.OUT, value=1))
        elif kinds[axis] == 1:
            bus_id, sda, scl = i2c_buses[axis]
            if bus_id >= 0:
                bus = machine.I2C(bus_id, sda=machine.Pin(sda), scl=machine.Pin(scl), freq=AS5600_I2C_HZ)
            else:
                bus = machine.SoftI2C(sda=machine.Pin(sda), scl=machine.Pin(scl), freq=AS5600_I2C_HZ)
            out[axis] = AS5600(bus)
    return out


class StdioLink:
    """The USB serial console as a binary link (non-blocking reads via select.poll).

    Ctrl-C is disabled while the firmware runs, since 0x03 is a normal byte
    in frames; ``Gimbal`` drops back to the REPL when it sees three 0x03
    bytes while no host is talking (see docs/firmware.md).
    """

    def __init__(self):
        import select

        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._one = bytearray(1)

    def read_into(self, buf):
        n = 0
        size = len(buf)
        one = self._one
        while n < size and self._poll.poll(0):
            if not self._in.readinto(one):
                break
            buf[n] = one[0]
            n += 1
        return n

    def write(self, data):
        self._out.write(data)


class UartLink:
    """A hardware UART (``machine.UART``, built by the board module) as the link."""

    def __init__(self, uart):
        self.uart = uart

    def read_into(self, buf):
        if not self.uart.any():
            return 0
        n = self.uart.readinto(buf)
        return n or 0

    def write(self, data):
        self.uart.write(data)


class FileStore:
    """The config file on flash, written to a temporary name and renamed into place."""

    def __init__(self, path="/opensteady.cfg"):
        self.path = path

    def load(self):
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def save(self, data):
        tmp = self.path + ".new"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, self.path)
        except OSError:
            return False
        return True


class PwmBoard(HAL):
    """HAL over an IMU driver, per-axis PWM factories, an enable pin, a link and a store.

    Ticks and sleeping come from the base HAL (``time.ticks_us``/``sleep_us``).

    ``handle_imu`` is an optional second MPU6050 on the handle
    (``HAL.handle_imu_read``); without one the board behaves as before.
    ``angle_sensors`` is None or three rotor-angle sensor drivers (or None
    per axis) from firmware/angle_sensor.py, read by ``HAL.angle_read``
    for the closed-loop drive; a sensor that does not answer at start is
    probed again every HANDLE_IMU_RETRY_TICKS reads.

    ``light_pin`` is the fill light's pin in the board's pin map (None: no
    light) and ``make_light(pin)`` builds its PWM object (``freq``,
    ``duty_u16``); the config's ``light_pin`` may name another pin.

    ``make_bldc(axis)`` returns three PWM objects (``duty_u16``) for the axis'
    phases and ``make_servo(axis)`` one 50 Hz PWM (``duty_ns``); they are
    called on the first write of each kind, so the config's per-axis driver
    choice decides which pins come alive.
    """

    def __init__(self, imu, make_bldc, make_servo, enable_pin, link, store, handle_imu=None, angle_sensors=None,
                 light_pin=None, make_light=None):
        self.imu = imu
        self.imu_delay_us = getattr(imu, "delay_us", 0)  # the chip's filter delay (HAL.imu_delay_us)
        self.imu_ready = False
        # optional second MPU-6050 on the handle (0x69 on the same bus); None: not wired
        self.handle_imu = handle_imu
        self.handle_imu_ready = False
        self._handle_retry = 0
        self.angle_sensors = list(angle_sensors) if angle_sensors is not None else [None, None, None]
        if len(self.angle_sensors) != 3:
            raise ValueError("angle_sensors: give three drivers (yaw, pitch, roll; None where none is fitted)")
        self.angle_ready = [False, False, False]
        self._angle_retry = [0, 0, 0]
        self._make_bldc = make_bldc
        self._make_servo = make_servo
        self._bldc = [None, None, None]
        self._servo = [None, None, None]
        self.enable_pin = enable_pin
        self.link = link
        self.store = store
        # the fill light: the pin map's pin (None: none wired) and a factory pin -> PWM (``freq``, ``duty_u16``)
        self.light_pin = light_pin
        self._make_light = make_light
        self._light = None  # the PWM object of the pin in use
        self._light_at = -1  # its pin
        self._light_hz = 0

    def imu_read(self, raw):
        if not self.imu_ready:
            self.imu_ready = self.imu.init()
            if not self.imu_ready:
                return False
        ok = self.imu.read_into(raw)
        if not ok:
            self.imu_ready = False  # re-initialise after a bus error (chip may have reset)
        return ok

    def handle_imu_read(self, raw):
        imu = self.handle_imu
        if imu is None:
            return False
        if not self.handle_imu_ready:
            # an absent chip NACKs: probe again only every HANDLE_IMU_RETRY_TICKS calls, not every tick
            if self._handle_retry > 0:
                self._handle_retry -= 1
                return False
            self.handle_imu_ready = imu.init()
            if not self.handle_imu_ready:
                self._handle_retry = HANDLE_IMU_RETRY_TICKS
                return False
        ok = imu.read_into(raw)
        if not ok:
            self.handle_imu_ready = False
        return ok

    def angle_read(self, axis):
        s = self.angle_sensors[axis]
        if s is None:
            return -1
        if not self.angle_ready[axis]:
            # an absent chip, or a magnet out of range: probe again only now and then, not every tick
            if self._angle_retry[axis] > 0:
                self._angle_retry[axis] -= 1
                return -1
            if not s.init():
                self._angle_retry[axis] = HANDLE_IMU_RETRY_TICKS
                return -1
            self.angle_ready[axis] = True
        return s.read()  # -1 on a failed read; the driver counts it (and the AS5048A clears its error flag)

    def motors_enable(self, on):
        if self.enable_pin is not None:
            self.enable_pin.value(1 if on else 0)

    def _phases(self, axis):
        p = self._bldc[axis]
        if p is None:
            p = self._bldc[axis] = self._make_bldc(axis)
        return p

    def bldc_write(self, axis, duty_a_u16, duty_b_u16, duty_c_u16):
        p = self._phases(axis)
        p[0].duty_u16(duty_a_u16)
        p[1].duty_u16(duty_b_u16)
        p[2].duty_u16(duty_c_u16)

    def bldc_write_axes(self, mask, duties):
        # the nine PWM channels back to back, no per-axis HAL call in between
        for i in range(3):
            if (mask >> i) & 1:
                p = self._phases(i)
                k = 3 * i
                p[0].duty_u16(duties[k])
                p[1].duty_u16(duties[k + 1])
                p[2].duty_u16(duties[k + 2])

    def servo_write(self, axis, pulse_us):
        p = self._servo[axis]
        if p is None:
            if self._make_servo is None:  # no servo outputs on this board (their pins carry sensor buses)
                return
            p = self._servo[axis] = self._make_servo(axis)
        p.duty_ns(pulse_us * 1000)

    def light_write(self, pin, freq_hz, duty_u16):
        if pin < 0:
            pin = self.light_pin  # the pin map's
        if pin is None or pin < 0 or self._make_light is None:
            return False
        try:
            p = self._light
            if p is None or self._light_at != pin:
                if p is not None:
                    p.duty_u16(0)  # the config moved the light to another pin: leave the old one dark
                p = self._light = self._make_light(pin)
                self._light_at = pin
                self._light_hz = 0
            if self._light_hz != freq_hz:
                p.freq(freq_hz)
                self._light_hz = freq_hz
            p.duty_u16(duty_u16)
        except (ValueError, OSError):  # a pin this chip cannot drive with PWM
            self._light = None
            self._light_at = -1
            return False
        return True

    def serial_read_into(self, buf):
        return self.link.read_into(buf)

    def serial_write(self, data):
        self.link.write(data)

    def config_load(self):
        return self.store.load()

    def config_save(self, data):
        return self.store.save(data)
