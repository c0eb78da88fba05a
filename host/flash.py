"""Compile the firmware with mpy-cross, copy it to a board with mpremote, and reset it.

    opensteady flash --port /dev/ttyACM0                 # Raspberry Pi Pico
    opensteady flash --port /dev/ttyUSB0 --board esp32   # ESP32 DevKit
    opensteady flash --port /dev/ttyACM0 --dry-run       # print the commands only

Steps: (1) ``mpy-cross -march=<arch>`` turns every firmware module the board
needs into .mpy (native code for ``@micropython.native`` functions, so the
architecture must match the board); (2) three 0x03 bytes stop an OpenSteady
firmware that is already running (it disables Ctrl-C while it owns the
console); (3) ``mpremote connect PORT cp -r ... + cp main.py :main.py +
reset`` copies the package and the entry point and resets the board.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from opensteady.sim.micropython_vm import FIRMWARE_DIR as FIRMWARE

# board -> (mpy-cross architecture, board module)
BOARDS = {
    "rp2": ("armv6m", "rp2"),
    "esp32": ("xtensawin", "esp32"),
}

# firmware modules every board needs (the CPython shim, the test plant, the
# benchmark and the simulator's pipe board stay on the host)
CORE_MODULES = (
    "__init__.py", "protocol.py", "hal.py", "fixmath.py", "config.py", "imu.py", "estimator.py",
    "control.py", "motor.py", "angle_sensor.py", "foc.py", "app.py", "boards/__init__.py", "boards/base.py",
)
ENTRY = FIRMWARE / "main.py"


class FlashError(Exception):
    """A problem the user can fix: a missing tool, port or file."""


def find_tool(name):
    """Path of a command installed beside this Python or on PATH; FlashError if missing."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise FlashError(
            "%s not found: install the flashing tools with `pip install 'opensteady[flash]'`" % name
        )
    return found


def modules_for(board):
    if board not in BOARDS:
        raise FlashError("unknown board %r: choose one of %s" % (board, ", ".join(sorted(BOARDS))))
    return CORE_MODULES + ("boards/%s.py" % BOARDS[board][1],)


def compile_commands(board, out_dir, mpy_cross="mpy-cross", march=None):
    """The mpy-cross command for each module, writing to out_dir/firmware/... ."""
    arch = march or BOARDS[board][0]
    cmds = []
    for rel in modules_for(board):
        src = FIRMWARE / rel
        dst = Path(out_dir) / "firmware" / (rel[:-3] + ".mpy")
        cmds.append([mpy_cross, "-march=" + arch, "-o", str(dst), str(src)])
    return cmds


def build(board, out_dir, march=None, mpy_cross=None):
    """Compile the board's firmware into out_dir/firmware/*.mpy; return that directory."""
    tool = mpy_cross or find_tool("mpy-cross")
    for cmd in compile_commands(board, out_dir, tool, march):
        Path(cmd[3]).parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise FlashError("mpy-cross failed on %s:\n%s" % (cmd[-1], proc.stderr.strip()))
    return Path(out_dir) / "firmware"


def build_root(board):
    """Where the .mpy files are built: the same place for a dry run and a real one."""
    return Path(tempfile.gettempdir()) / ("opensteady-flash-" + board)


def copy_command(port, build_dir, mpremote="mpremote"):
    """One mpremote invocation: copy the package, the entry point, then reset."""
    return [
        mpremote, "connect", port,
        "cp", "-r", str(build_dir), ":",
        "+", "cp", str(ENTRY), ":main.py",
        "+", "reset",
    ]


def stop_running_firmware(port):
    """Send three 0x03 bytes: a running OpenSteady firmware hands the console back."""
    import serial  # pyserial, a core dependency

    try:
        with serial.Serial(port, 115200, timeout=0.2) as s:
            for _ in range(3):
                s.write(b"\x03\x03\x03")
                s.flush()
                s.read(256)  # let it stop; discard telemetry
    except serial.SerialException as exc:
        raise FlashError("cannot open serial port %s: %s" % (port, exc)) from exc


def add_arguments(parser):
    parser.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyACM0 or COM5")
    parser.add_argument("--board", choices=sorted(BOARDS), default="rp2", help="target board (default rp2)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")


def run(args):
    try:
        return _run(args)
    except FlashError as exc:
        print("opensteady flash: error: %s" % exc, file=sys.stderr)
        return 2


def _run(args):
    port = args.port
    if not port:
        raise FlashError("no serial port given (--port)")
    out = build_root(args.board)
    if args.dry_run:
        for cmd in compile_commands(args.board, out, "mpy-cross"):
            print(shlex.join(cmd))
        print("# stop a running OpenSteady firmware: send bytes 03 03 03 to %s" % port)
        print(shlex.join(copy_command(port, out / "firmware")))
        return 0
    mpy_cross = find_tool("mpy-cross")
    mpremote = find_tool("mpremote")
    if port.startswith("/dev/") and not os.path.exists(port):
        raise FlashError("serial port %s does not exist (is the board plugged in?)" % port)
    shutil.rmtree(out, ignore_errors=True)
    build_dir = build(args.board, out, mpy_cross=mpy_cross)
    print("compiled %d modules for %s into %s" % (len(modules_for(args.board)), args.board, build_dir))
    stop_running_firmware(port)
    cmd = copy_command(port, build_dir, mpremote)
    print(shlex.join(cmd))
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise FlashError("mpremote failed (exit %d)" % proc.returncode)
    print("flashed %s on %s; the gimbal calibrates for 1 s after reset: keep it still" % (args.board, port))
    return 0
