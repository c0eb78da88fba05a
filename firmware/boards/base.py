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

from ..hal import HAL

BLDC_PWM_HZ = 25000  # above hearing; DRV8313 handles up to 250 kHz
SERVO_PWM_HZ = 50
HANDLE_IMU_ADDR = 0x69  # the optional handle MPU-6050, AD0 tied to 3V3 (the camera's is at 0x68)
HANDLE_IMU_RETRY_TICKS = 1000  # an unanswered handle IMU is probed again after this many reads


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

    ``make_bldc(axis)`` returns three PWM objects (``duty_u16``) for the axis'
    phases and ``make_servo(axis)`` one 50 Hz PWM (``duty_ns``); they are
    called on the first write of each kind, so the config's per-axis driver
    choice decides which pins come alive.
    """

    def __init__(self, imu, make_bldc, make_servo, enable_pin, link, store, handle_imu=None):
        self.imu = imu
        self.imu_ready = False
        # optional second MPU-6050 on the handle (0x69 on the same bus); None: not wired
        self.handle_imu = handle_imu
        self.handle_imu_ready = False
        self._handle_retry = 0
        self._make_bldc = make_bldc
        self._make_servo = make_servo
        self._bldc = [None, None, None]
        self._servo = [None, None, None]
        self.enable_pin = enable_pin
        self.link = link
        self.store = store

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

    def motors_enable(self, on):
        if self.enable_pin is not None:
            self.enable_pin.value(1 if on else 0)

    def bldc_write(self, axis, duty_a_u16, duty_b_u16, duty_c_u16):
        p = self._bldc[axis]
        if p is None:
            p = self._bldc[axis] = self._make_bldc(axis)
        p[0].duty_u16(duty_a_u16)
        p[1].duty_u16(duty_b_u16)
        p[2].duty_u16(duty_c_u16)

    def servo_write(self, axis, pulse_us):
        p = self._servo[axis]
        if p is None:
            p = self._servo[axis] = self._make_servo(axis)
        p.duty_ns(pulse_us * 1000)

    def serial_read_into(self, buf):
        return self.link.read_into(buf)

    def serial_write(self, data):
        self.link.write(data)

    def config_load(self):
        return self.store.load()

    def config_save(self, data):
        return self.store.save(data)
