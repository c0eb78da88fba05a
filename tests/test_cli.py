"""The one console script, `opensteady`, and its subcommands."""

import subprocess
import sys
from pathlib import Path

from opensteady.host import __version__
from opensteady.host.cli import SUBCOMMANDS, build_parser

SCRIPT = Path(sys.executable).parent / "opensteady"


def test_version_from_the_installed_script():
    out = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "opensteady " + __version__


def test_every_subcommand_is_registered_with_help():
    parser, modules = build_parser()
    assert set(modules) == set(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        help_text = subprocess.run([str(SCRIPT), name, "--help"], capture_output=True, text=True, check=True).stdout
        assert help_text.startswith("usage: opensteady " + name)


def test_ping_without_a_board_names_the_missing_port():
    proc = subprocess.run([str(SCRIPT), "ping", "--port", "/dev/ttyNO_SUCH_BOARD"], capture_output=True, text=True)
    assert proc.returncode == 2  # a port that cannot be opened: bad usage (docs/host.md)
    assert proc.stderr.startswith("opensteady ping: error: ")
    assert "/dev/ttyNO_SUCH_BOARD" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
