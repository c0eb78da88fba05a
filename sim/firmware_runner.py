"""The co-simulation modes behind one interface: ``tick(now_us)`` on a SimHal.

(a) :class:`InProcessFirmware` imports ``firmware.app.Gimbal`` on CPython and
    hands it the :class:`sim.hal.SimHal` directly.
(b) :class:`MicroPythonFirmware` runs the same firmware in the real
    ``micropython`` unix-port binary with ``firmware/offboard/simpipe.py`` as
    its board, and exchanges one lockstep frame per tick over the process's
    stdin/stdout: the SimHal's IMU counts and received serial bytes go in,
    motor outputs and sent serial bytes come back.
(c) :class:`CompiledFirmware` is (a) with the same firmware files compiled
    by Cython the way MicroPython's viper and native emitters compile them
    (sim/compiled_firmware.py): its tick about 4x faster than (a), a
    simulated second about 2x.

    fw = make_firmware("micropython", hal)
    fw.tick(t_us)          # the HAL's outputs are up to date afterwards
    fw.close()

All are deterministic: the firmware's control path is integer maths, so the
modes agree to the bit as long as they see the same inputs.
"""

import collections
import importlib
import os
import select
import signal
import struct
import subprocess
import threading
import time

from opensteady.firmware.offboard import simpipe
from opensteady.sim import micropython_vm

MODES = ("inprocess", "micropython", "compiled")


STDERR_TAIL_LINES = 12  # how much of a failed child's stderr goes into the error message
EXIT_GRACE_S = 2.0  # a child that closed its pipes gets this long to exit before it is killed


class FirmwareError(RuntimeError):
    """The firmware process failed, froze or broke the lockstep exchange; ``str()`` names the cause."""


def _vm_binary():
    try:
        return micropython_vm.binary()
    except micropython_vm.MicroPythonError as exc:
        raise FirmwareError(str(exc)) from None


class InProcessFirmware:
    mode = "inprocess"

    def __init__(self, hal):
        from opensteady.firmware.app import Gimbal

        self._start(hal, Gimbal)

    def _start(self, hal, Gimbal):  # noqa: N803 - the class
        self.hal = hal
        self.gimbal = Gimbal(hal)
        self.period_us = self.gimbal.period_us
        self.tick = self.gimbal.tick  # tick(now_us) without a wrapper call, 1000 times per simulated second

    def close(self):
        pass


class CompiledFirmware(InProcessFirmware):
    """The same firmware files compiled with Cython (sim/compiled_firmware.py), in this process."""

    mode = "compiled"

    def __init__(self, hal):
        from opensteady.sim.compiled_firmware import CompileError, load_package

        try:
            package = load_package()
        except CompileError as exc:
            raise FirmwareError(str(exc)) from None
        self._start(hal, package.app.Gimbal)


class MicroPythonFirmware:
    """The firmware in a ``micropython`` child process, one lockstep exchange per tick.

    Every read from the child has a deadline (``start_timeout_s`` for the boot
    reply, ``reply_timeout_s`` for each tick), so a child that froze (SIGSTOP,
    a deadlock) or died ends the run with a :class:`FirmwareError` that names
    the cause (exit code or signal, or "stopped") and the last lines of the
    child's stderr, instead of hanging the simulator.
    """

    mode = "micropython"

    def __init__(self, hal, heap="4M", reply_timeout_s=5.0, start_timeout_s=10.0):
        self.hal = hal
        self.reply_timeout_s = reply_timeout_s
        env = dict(os.environ)
        env["MICROPYPATH"] = str(micropython_vm.VM_PATH) + ":.frozen"
        self.proc = subprocess.Popen(
            [_vm_binary(), "-X", "heapsize=" + heap, "-c",
             "from firmware.offboard import simpipe; simpipe.main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(micropython_vm.VM_PATH),
        )
        self._fd_in = self.proc.stdout.fileno()
        self._fd_out = self.proc.stdin.fileno()
        os.set_blocking(self._fd_in, False)
        os.set_blocking(self._fd_out, False)
        self._buf = bytearray()
        self._pos = 0
        # Drain stderr on a thread: a chatty child must never block on a full pipe.
        self._stderr_tail = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name="micropython-stderr", daemon=True)
        self._stderr_thread.start()
        self.console = bytearray()  # anything the firmware printed
        self._arm(start_timeout_s, "its start-up reply", "its configuration")
        cfg = hal.config_load()
        head = struct.pack("<HH", hal.imu_delay_us, simpipe.NO_CONFIG if cfg is None else len(cfg))
        self._send(simpipe.SYNC + b"I" + head + (cfg or b""))
        if self._expect() != b"i":
            raise self._failure("did not start (unexpected reply)")
        self.period_us = struct.unpack("<I", self._read(4))[0]
        self._head = struct.Struct(simpipe._TICK_HEAD)
        self._reply = struct.Struct(simpipe._REPLY_HEAD)
        self._raw = [0] * 6
        self._handle_raw = [0] * 6

    def _arm(self, timeout_s, waiting_for, sending):
        """Start the deadline for the next exchange; the two phrases name it in error messages."""
        self._timeout_s = timeout_s
        self._deadline_s = time.monotonic() + timeout_s
        self._waiting_for = waiting_for
        self._sending = sending

    def _drain_stderr(self):
        for line in iter(self.proc.stderr.readline, b""):
            self._stderr_tail.append(line.decode(errors="replace").rstrip())

    def _failure(self, what, closed=False):
        """A FirmwareError naming what went wrong, why the child is gone or stuck, and its last stderr lines.

        ``closed``: the child closed its end of a pipe, so it is exiting; give it a moment to finish.
        """
        if closed:
            try:
                self.proc.wait(timeout=EXIT_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        state = _process_state(self.proc.pid) if self.proc.poll() is None else None
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self._stderr_thread.join(timeout=2)
        if state == "T":
            cause = "the process was stopped (SIGSTOP or a debugger) and has been killed"
        elif state is not None:
            cause = "the process was still running (state %s) and has been killed" % state
        else:
            cause = _describe_exit(code)
        message = "micropython firmware %s: %s" % (what, cause)
        tail = list(self._stderr_tail)
        message += (";\nlast lines of its stderr:\n  " + "\n  ".join(tail)) if tail else "; it wrote nothing to stderr"
        printed = self._console_tail()
        if printed:
            message += "\nlast lines it printed:\n  " + "\n  ".join(printed)
        return FirmwareError(message)

    def _console_tail(self):
        """The last lines of what the child printed outside the lockstep frames (MicroPython prints
        uncaught exceptions to stdout), including anything still unread in the pipe."""
        text = bytes(self.console) + bytes(self._buf[self._pos:])
        try:
            while True:
                chunk = os.read(self._fd_in, 65536)
                if not chunk:
                    break
                text += chunk
        except OSError:  # BlockingIOError: nothing more; a closed pipe: nothing either
            pass
        lines = [line.rstrip() for line in text.decode(errors="replace").splitlines()]
        return [line for line in lines if line.strip()][-STDERR_TAIL_LINES:]

    def _send(self, data):
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd_out, view)
            except BlockingIOError:
                self._wait(self._fd_out, write=True)
                continue
            except (BrokenPipeError, OSError):
                raise self._failure("exited while the simulator sent it %s" % self._sending, closed=True) from None
            view = view[n:]

    def _wait(self, fd, write=False):
        remaining = self._deadline_s - time.monotonic()
        if remaining > 0:
            r, w, _ = select.select([] if write else [fd], [fd] if write else [], [], remaining)
            if r or w:
                return
        if self.proc.poll() is not None:
            raise self._failure("exited while the simulator waited for %s" % self._waiting_for)
        raise self._failure("did not answer within %.1f s (waiting for %s)" % (self._timeout_s, self._waiting_for))

    def _fill(self, n):
        """Make at least n unread bytes available in the buffer, within the current deadline."""
        buf = self._buf
        if self._pos:
            del buf[:self._pos]
            self._pos = 0
        while len(buf) < n:
            try:
                chunk = os.read(self._fd_in, 65536)
            except BlockingIOError:
                self._wait(self._fd_in)
                continue
            if not chunk:
                raise self._failure("exited while the simulator waited for %s" % self._waiting_for, closed=True)
            buf += chunk

    def _read(self, n):
        if len(self._buf) - self._pos < n:
            self._fill(n)
        p = self._pos
        self._pos = p + n
        return bytes(self._buf[p:p + n])

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
        self._arm(self.reply_timeout_s, "the reply to the tick at t = %d us" % now_us, "the tick at t = %d us" % now_us)
        a = hal.angle_counts
        self._send(simpipe.SYNC + b"T" + self._head.pack(now_us & 0xFFFFFFFF, now_us >> 32, 1 if hal.imu_ok else 0,
                                                         raw[0], raw[1], raw[2], raw[3], raw[4], raw[5],
                                                         1 if handle_ok else 0, h[0], h[1], h[2], h[3], h[4], h[5],
                                                         a[0], a[1], a[2], len(rx)) + rx)
        if self._expect() != b"R":
            raise self._failure("broke the lockstep exchange")
        r = self._reply.unpack(self._read(self._reply.size))
        hal.motors_on = bool(r[0])
        for axis in range(3):
            d = hal.duties[axis]
            d[0], d[1], d[2] = r[1 + 3 * axis], r[2 + 3 * axis], r[3 + 3 * axis]
            hal.servo_us[axis] = r[10 + axis]
        hal.light_duty_u16 = r[13]
        n = r[14]
        if n:
            hal.tx += self._read(n)
        n_cfg = struct.unpack("<H", self._read(2))[0]
        if n_cfg != simpipe.NO_CONFIG:
            hal.config_save(self._read(n_cfg))

    def close(self):
        if self.proc.poll() is None:
            try:
                os.set_blocking(self._fd_out, True)
                self.proc.stdin.write(simpipe.SYNC + b"Q")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr_thread.join(timeout=2)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (BrokenPipeError, OSError):
                pass


def _process_state(pid):
    """The one-letter state from /proc (R, S, T stopped, Z zombie ...), or None where there is no /proc."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _describe_exit(code):
    if code is None:
        return "it could not be stopped"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal %d" % -code
        return "killed by %s" % name
    return "exit code %d" % code


def load_code(mode):
    """Import the code that firmware ``mode`` runs in this process, building it first if need be.

    ``compiled`` builds the firmware and the simulator's models with Cython
    the first time (about a minute; cached after), then imports both;
    ``inprocess`` imports the firmware's modules; ``micropython`` loads
    nothing here (its VM is a child process each run starts). Idempotent:
    a second call costs nothing. The scenario runner calls it before it
    starts timing, so a run's realtime factor measures simulating, not
    building or importing (as it never counted importing numpy or MuJoCo).
    """
    if mode == "inprocess":
        importlib.import_module("opensteady.firmware.app")
    elif mode == "compiled":
        from opensteady.sim import compiled_sim
        from opensteady.sim.compiled_firmware import CompileError, load_package

        try:
            load_package()
            compiled_sim.load_package()
        except CompileError as exc:
            raise FirmwareError(str(exc)) from None


def make_firmware(mode, hal, **options):
    """``options`` go to the MicroPython runner (``reply_timeout_s``, ``start_timeout_s``)."""
    if mode == "inprocess":
        return InProcessFirmware(hal)
    if mode == "micropython":
        return MicroPythonFirmware(hal, **options)
    if mode == "compiled":
        return CompiledFirmware(hal)
    raise ValueError("firmware mode %r: expected one of %s" % (mode, ", ".join(MODES)))
