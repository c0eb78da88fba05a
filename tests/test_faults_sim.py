"""Fault suite, simulator side: a frozen or dead MicroPython firmware child never hangs a run.

Timeouts are injected and generous; the assertions are on the message (the cause), never on how
long something took, so a slow machine changes nothing but the wall time.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opensteady.sim.firmware_runner import FirmwareError, MicroPythonFirmware
from opensteady.sim.scenario import load_scenario
from opensteady.sim.world import SimGimbal

SCRIPT = Path(sys.executable).parent / "opensteady"
GENEROUS_S = 60.0  # an upper bound for things that normally take a second


@pytest.fixture
def gimbal():
    g = SimGimbal(load_scenario("stabilize-still"), firmware="micropython")
    g.step_to(0.05)  # booted and ticking
    yield g
    g.close()


def test_a_stopped_child_ends_the_run_with_a_message_naming_the_cause(gimbal):
    gimbal.firmware.reply_timeout_s = 1.0
    os.kill(gimbal.firmware.proc.pid, signal.SIGSTOP)
    with pytest.raises(FirmwareError) as err:
        gimbal.step_to(0.1)
    message = str(err.value)
    assert "did not answer within 1.0 s" in message
    assert "stopped (SIGSTOP" in message
    assert gimbal.firmware.proc.poll() is not None  # killed, not left behind


def test_a_killed_child_names_the_signal(gimbal):
    os.kill(gimbal.firmware.proc.pid, signal.SIGKILL)
    with pytest.raises(FirmwareError, match="killed by SIGKILL"):
        gimbal.step_to(0.1)


def test_a_child_that_crashes_at_start_shows_its_exit_code_and_last_output(gimbal):
    # A 2 KiB heap cannot even import the firmware: MicroPython prints a MemoryError and exits 1.
    with pytest.raises(FirmwareError) as err:
        MicroPythonFirmware(gimbal.hal, heap="2k", start_timeout_s=GENEROUS_S)
    message = str(err.value)
    assert "exit code 1" in message and "MemoryError" in message


def _firmware_children(pid, min_cpu_ticks=50):
    """Pids of the lockstep firmware processes (micropython running simpipe) started by ``pid`` that
    have used ``min_cpu_ticks`` of CPU time (so they are past start-up and ticking)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"simpipe.main()" in cmdline and int(fields[11]) + int(fields[12]) >= min_cpu_ticks:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the child through /proc")
def test_opensteady_sim_with_a_frozen_child_exits_non_zero_with_the_cause():
    proc = subprocess.Popen([str(SCRIPT), "sim", "--scenario", "stabilize-still", "--firmware", "micropython",
                             "--seconds", "100000", "--json", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + GENEROUS_S
        kids = []
        while not kids and time.monotonic() < deadline and proc.poll() is None:
            kids = _firmware_children(proc.pid)
            time.sleep(0.05)
        assert kids, "the micropython child never started"
        for pid in kids:
            os.kill(pid, signal.SIGSTOP)
        out, err = proc.communicate(timeout=GENEROUS_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    assert "opensteady sim: error: micropython firmware did not answer within" in err
    assert "stopped (SIGSTOP" in err
    assert "Traceback" not in err
