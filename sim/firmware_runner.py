"""The two co-simulation modes behind one interface: ``tick(now_us)`` on a SimHal.

(a) :class:`InProcessFirmware` imports ``firmware.app.Gimbal`` on CPython and
    hands it the :class:`sim.hal.SimHal` directly.
(b) :class:`MicroPythonFirmware` runs the same firmware in the real
    ``micropython`` unix-port binary with ``firmware/offboard/simpipe.py`` as
    its board, and exchanges one lockstep frame per tick over the process's
    stdin/stdout: the SimHal's IMU counts and received serial bytes go in,
    motor outputs and sent serial bytes come back.

    fw = make_firmware("micropython", hal)
    fw.tick(t_us)          # the HAL's outputs are up to date afterwards
    fw.close()

Both are deterministic: the firmware's control path is integer maths, so the
two modes agree to the bit as long as they see the same inputs.
"""

import os
import struct
import subprocess

from opensteady.firmware.offboard import simpipe
from opensteady.sim import micropython_vm

MODES = ("inprocess", "micropython")


class FirmwareError(RuntimeError):
    """The firmware process failed or broke the lockstep exchange."""




def _vm_binary():
    try:
        return micropython_vm.binary()
    except micropython_vm.MicroPythonError as exc:
        raise FirmwareError(str(exc)) from None


class InProcessFirmware:
    mode = "inprocess"

    def __init__(self, hal):
        from opensteady.firmware.app import Gimbal

        self.hal = hal
        self.gimbal = Gimbal(hal)
        self.period_us = self.gimbal.period_us
        self.tick = self.gimbal.tick  # tick(now_us) without a wrapper call, 1000 times per simulated second

    def close(self):
        pass


class MicroPythonFirmware:
    mode = "micropython"

    def __init__(self, hal, heap="4M"):
        self.hal = hal
        env = dict(os.environ)
        env["MICROPYPATH"] = str(micropython_vm.VM_PATH) + ":.frozen"
        self.proc = subprocess.Popen(
            [_vm_binary(), "-X", "heapsize=" + heap, "-c",
             "from firmware.offboard import simpipe; simpipe.main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(micropython_vm.VM_PATH),
        )
        self._in = self.proc.stdout
        self._out = self.proc.stdin
        self.console = bytearray()  # anything the firmware printed
        cfg = hal.config_load()
        head = struct.pack("<H", simpipe.NO_CONFIG if cfg is None else len(cfg))
        self._send(simpipe.SYNC + b"I" + head + (cfg or b""))
        if self._expect() != b"i":
            raise FirmwareError("micropython firmware did not start")
        self.period_us = struct.unpack("<I", self._read(4))[0]
        self._head = struct.Struct(simpipe._TICK_HEAD)
        self._reply = struct.Struct(simpipe._REPLY_HEAD)
        self._raw = [0] * 6
        self._handle_raw = [0] * 6

    def _send(self, data):
        try:
            self._out.write(data)
            self._out.flush()
        except BrokenPipeError:
            raise FirmwareError("micropython firmware exited: %s" % self._stderr()) from None

    def _stderr(self):
        self.proc.kill()
        return self.proc.stderr.read().decode(errors="replace")[-3000:]

    def _read(self, n):
        data = self._in.read(n)
        if len(data) != n:
            raise FirmwareError("micropython firmware exited: %s" % self._stderr())
        return data

    def _expect(self):
        # resynchronise on SYNC; bytes before it are console output from the firmware
        while True:
            b = self._read(1)
            if b != simpipe.SYNC[0:1]:
                self.console += b
                continue
            b2 = self._read(1)
            if b2 == simpipe.SYNC[1:2]:
                return self._read(1)
            self.console += b + b2

    def tick(self, now_us):
        hal = self.hal
        raw = self._raw
        hal.imu.read_into(raw)
        h = self._handle_raw
        handle_ok = hal.handle_imu_read(h)
        rx = bytes(hal.rx)
        hal.rx.clear()
        self._send(simpipe.SYNC + b"T" + self._head.pack(now_us & 0xFFFFFFFF, now_us >> 32, 1 if hal.imu_ok else 0,
                                                         raw[0], raw[1], raw[2], raw[3], raw[4], raw[5],
                                                         1 if handle_ok else 0, h[0], h[1], h[2], h[3], h[4], h[5],
                                                         len(rx)) + rx)
        if self._expect() != b"R":
            raise FirmwareError("micropython firmware broke the lockstep exchange")
        r = self._reply.unpack(self._read(self._reply.size))
        hal.motors_on = bool(r[0])
        for axis in range(3):
            d = hal.duties[axis]
            d[0], d[1], d[2] = r[1 + 3 * axis], r[2 + 3 * axis], r[3 + 3 * axis]
            hal.servo_us[axis] = r[10 + axis]
        n = r[13]
        if n:
            hal.tx += self._read(n)
        n_cfg = struct.unpack("<H", self._read(2))[0]
        if n_cfg != simpipe.NO_CONFIG:
            hal.config_save(self._read(n_cfg))

    def close(self):
        if self.proc.poll() is None:
            try:
                self._out.write(simpipe.SYNC + b"Q")
                self._out.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


def make_firmware(mode, hal):
    if mode == "inprocess":
        return InProcessFirmware(hal)
    if mode == "micropython":
        return MicroPythonFirmware(hal)
    raise ValueError("firmware mode %r: expected one of %s" % (mode, ", ".join(MODES)))
