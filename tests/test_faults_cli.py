"""Fault suite, newcomer side: every subcommand answers bad input with one clear line and the
documented exit code (host/errors.py, docs/host.md), never a traceback or a hang."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from opensteady.host import flash
from opensteady.host.errors import EXIT_BUG, EXIT_CODES, EXIT_FAILED, EXIT_USAGE
from tests.micropython import ROOT

SCRIPT = Path(sys.executable).parent / "opensteady"
GENEROUS_S = 120.0


def opensteady(*argv):
    return subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, timeout=GENEROUS_S)


def assert_error(result, command, code, *words):
    assert result.returncode == code, result.stderr
    assert ("\n" + result.stderr).count("\nopensteady %s: error: " % command) == 1, result.stderr  # after warnings
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_the_exit_code_table_is_the_one_in_docs_host_md():
    text = (ROOT / "docs" / "host.md").read_text()
    for code, meaning in EXIT_CODES.items():
        assert "| %d | %s |" % (code, meaning) in text


def test_replay_of_a_binary_file(tmp_path):
    path = tmp_path / "photo.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert_error(opensteady("replay", str(path)), "replay", EXIT_USAGE, "not a text file", "opensteady track --log")


def test_replay_of_a_text_file_that_is_no_session_log(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n[1, 2]\n" + '{"type": "frame"}\n')
    assert_error(opensteady("replay", str(path), "--plot", str(tmp_path / "x.png")), "replay", EXIT_USAGE,
                 "no frame records")


def test_replay_plot_into_a_missing_folder(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text('{"type": "frame", "t_s": 0.0}\n')
    out = tmp_path / "no" / "such" / "plot.png"
    assert_error(opensteady("replay", str(log), "--plot", str(out)), "replay", EXIT_USAGE, "does not exist", str(out))
    assert not out.parent.exists()


def test_replay_of_a_missing_file(tmp_path):
    assert_error(opensteady("replay", str(tmp_path / "none.jsonl")), "replay", EXIT_USAGE, "cannot read")


def test_bench_firmware_help_and_a_bad_tick_count():
    result = opensteady("bench", "firmware", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: opensteady bench firmware")
    result = opensteady("bench", "firmware", "many")
    assert result.returncode == EXIT_USAGE and "invalid int value: 'many'" in result.stderr
    assert "Traceback" not in result.stderr


def test_sim_set_needs_a_known_firmware_key_and_a_number_in_range():
    result = opensteady("sim", "--scenario", "stabilize-still", "--set", "torque_ff_mu", "--json", "--no-progress")
    assert_error(result, "sim", EXIT_USAGE, "--set 'torque_ff_mu'", "KEY=NUMBER")
    result = opensteady("sim", "--scenario", "stabilize-still", "--set", "est_kp=nan", "--json", "--no-progress")
    assert_error(result, "sim", EXIT_USAGE, "--set 'est_kp=nan'", "KEY=NUMBER")
    result = opensteady("sim", "--scenario", "stabilize-still", "--set", "torque_ff=0.005", "--json", "--no-progress")
    assert_error(result, "sim", EXIT_USAGE, "firmware.torque_ff: unknown firmware config key")
    result = opensteady("sim", "--scenario", "stabilize-still", "--set", "torque_ff_mu=1", "--json", "--no-progress")
    assert_error(result, "sim", EXIT_USAGE, "torque_ff_mu = 1", "range 0.0..0.05")


def test_verbose_works_before_and_after_the_subcommand():
    from opensteady.host.cli import build_parser

    parser, _ = build_parser()
    assert parser.parse_args(["-v", "sim", "--list"]).verbose == 1
    assert parser.parse_args(["sim", "-vv", "--list"]).verbose == 2
    assert parser.parse_args(["sim", "--list"]).verbose == 0
    assert opensteady("replay", "-v", "--help").returncode == 0


def test_every_subcommand_uses_the_same_error_prefix_and_codes(tmp_path):
    assert_error(opensteady("sim", "--scenario", "no-such-scenario"), "sim", EXIT_USAGE, "no-such-scenario")
    assert_error(opensteady("ping"), "ping", EXIT_USAGE, "--port")
    assert_error(opensteady("ping", "--port", "/dev/ttyNO_SUCH_BOARD"), "ping", EXIT_USAGE, "does not exist")
    assert_error(opensteady("flash", "--port", "/dev/ttyNO_SUCH_BOARD"), "flash", EXIT_USAGE, "does not exist")


def test_a_bug_is_one_line_with_how_to_report_it(monkeypatch, capsys):
    from opensteady.host import cli, replay

    def broken(args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(replay, "run", broken)
    assert cli.main(["replay", "x.jsonl"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert err.startswith("opensteady replay: error: internal error ZeroDivisionError: boom")
    assert "please report it" in err and "Traceback" not in err


# --- flash to a port that does not answer --------------------------------------------

@pytest.fixture
def pty_port():
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_flash_to_a_silent_port_times_out_and_says_it_saw_nothing(pty_port):
    master, port = pty_port
    result = opensteady("flash", "--port", port, "--timeout", "0.5")
    assert_error(result, "flash", EXIT_FAILED, "did not answer within 0.5 s", "no bytes at all", port)


def _responder(master, reply):
    """A device on the other end of the pty: answers the first Ctrl-C with ``reply``."""
    def run():
        got = b""
        while b"\x03" not in got:
            got += os.read(master, 64)
        os.write(master, reply)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_flash_to_a_device_that_is_not_micropython_says_what_it_saw(pty_port):
    master, port = pty_port
    _responder(master, b"AT+OK\r\nGPS $GPGGA,123519\r\n")
    result = opensteady("flash", "--port", port, "--timeout", "1.0")
    assert_error(result, "flash", EXIT_FAILED, "not with a MicroPython prompt", "AT+OK")


def test_flash_probe_accepts_a_micropython_prompt(pty_port):
    master, port = pty_port
    _responder(master, b"\r\nTraceback...\r\nKeyboardInterrupt: \r\n>>> ")
    assert flash.probe_board(port, timeout_s=GENEROUS_S).endswith(b">>> ")


# --- opensteady track ------------------------------------------------------------------

def test_track_log_into_a_missing_folder_is_refused_not_created(tmp_path):
    target = tmp_path / "no" / "such" / "run.jsonl"
    result = opensteady("track", "--video", str(tmp_path / "x.avi"), "--headless", "--gimbal", "none",
                        "--log", str(target))
    assert_error(result, "track", EXIT_USAGE, "does not exist", str(target.parent))
    assert not target.parent.exists()


def test_track_bad_settings_use_the_common_error_style(tmp_path):
    assert_error(opensteady("track", "--video", str(tmp_path / "none.avi"), "--headless"), "track", EXIT_USAGE,
                 "does not exist")
    config = tmp_path / "bad.toml"
    config.write_text("[framing]\nkp = -1\n")
    assert_error(opensteady("track", "--config", str(config), "--headless"), "track", EXIT_USAGE, "framing.kp")


def test_track_with_no_camera_gives_up_quietly_after_give_up_s(tmp_path):
    config = tmp_path / "cam.toml"
    config.write_text("[camera]\nretry_s = 0.05\ngive_up_s = 0.5\n")
    result = opensteady("track", "--camera", "97", "--config", str(config), "--headless", "--json", "--gimbal", "none",
                        "--no-log")
    assert_error(result, "track", EXIT_FAILED, "camera 97 could not be opened", "gave up after")
    assert "WARN" not in result.stderr and "global " not in result.stderr  # no OpenCV lines
    assert len(result.stderr.strip().splitlines()) <= 4, result.stderr  # one retry line, the give-up, the error
    summary = [line for line in result.stdout.splitlines() if '"summary"' in line][-1]
    assert '"exit":"camera_lost"' in summary


def test_a_failure_inside_the_run_is_reported_in_the_summary_exit(tmp_path, monkeypatch, capsys):
    """A bug in the pipeline: the summary must say so, not `end_of_stream`."""
    import json

    from opensteady.host import cli
    from opensteady.host.pipeline import TrackingPipeline
    from opensteady.host.track_bench import write_astronaut_video

    video = write_astronaut_video(tmp_path / "a.avi", 10)
    real_step = TrackingPipeline.step
    calls = []

    def failing_step(self, *a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected fault")
        return real_step(self, *a, **kw)

    monkeypatch.setattr(TrackingPipeline, "step", failing_step)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["track", "--video", str(video), "--no-pace", "--headless", "--json", "--gimbal", "none",
                     "--no-log"])
    out, err = capsys.readouterr()
    assert code == EXIT_BUG
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["exit"] == "error: RuntimeError: injected fault" and summary["frames"] == 2
    assert "opensteady track: error: internal error RuntimeError: injected fault" in err
