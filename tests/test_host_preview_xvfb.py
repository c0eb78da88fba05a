"""The OpenCV preview window on a real X server (Xvfb): it appears, a screenshot shows the HUD, a click moves the calibration point."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.micropython import ROOT

XVFB = shutil.which("Xvfb")
XDOTOOL = shutil.which("xdotool")
SCREENSHOT_TRIES = 50  # each try is one ffmpeg grab; the count bounds the test, not a wall-clock deadline
pytestmark = pytest.mark.skipif(not (XVFB and XDOTOOL),
                                reason="no Xvfb/xdotool on this machine (Debian: apt-get install -y xvfb xdotool)")


@pytest.fixture
def display():
    import random

    number = random.Random(os.getpid()).randint(200, 900)
    xvfb = subprocess.Popen([XVFB, ":%d" % number, "-screen", "0", "800x600x24", "-nolisten", "tcp", "-displayfd", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    got = xvfb.stdout.readline().strip()  # Xvfb writes the display number once it accepts clients
    assert got, "Xvfb did not start"
    yield ":" + got
    xvfb.terminate()
    xvfb.wait(10)


def test_preview_window_shows_the_hud_and_a_click_moves_the_calibration_point(display, tmp_path):
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="xcb")
    app = subprocess.Popen([sys.executable, "-m", "tests.preview_window_app"], cwd=str(ROOT), env=env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = app.stdout.readline()
        assert line.startswith("ready"), (line, app.stderr.read() if app.poll() is not None else "")
        win = subprocess.run([XDOTOOL, "search", "--sync", "--onlyvisible", "--name", "OpenSteady"], env=env,
                             capture_output=True, text=True, timeout=60).stdout.split()[0]
        geometry = subprocess.run([XDOTOOL, "getwindowgeometry", "--shell", win], env=env, capture_output=True,
                                  text=True, timeout=30).stdout
        geo = dict(kv.split("=") for kv in geometry.split())
        assert int(geo["WIDTH"]) >= 640 and int(geo["HEIGHT"]) >= 480, geo
        wx, wy, ww, wh = (int(geo[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))

        import cv2
        import imageio_ffmpeg
        from skimage import data

        def screenshot(path):
            """The window as it is on the (virtual) screen, taken by ffmpeg's X11 grabber."""
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "x11grab",
                            "-video_size", "%dx%d" % (ww, wh), "-i", "%s+%d,%d" % (display, wx, wy),
                            "-frames:v", "1", str(path)], check=True, timeout=60, env=env)
            return cv2.imread(str(path))

        # Where the picture sits inside the window (Qt adds a toolbar and a status bar):
        # find the photo's middle in a screenshot.
        # A window can be mapped before its first paint lands (a busy machine): look again, a bounded
        # number of times, until the picture is there.
        photo = cv2.cvtColor(cv2.resize(data.astronaut(), (640, 480)), cv2.COLOR_RGB2BGR)
        patch = photo[300:420, 400:560]  # suit and badge: no HUD text there
        for _ in range(SCREENSHOT_TRIES):
            before = screenshot(tmp_path / "before.png")
            score = cv2.matchTemplate(before, patch, cv2.TM_CCOEFF_NORMED)
            _, best, _, (px, py) = cv2.minMaxLoc(score)
            if best > 0.8:
                break
        assert best > 0.8, "the picture is not on the screen (match %.2f)" % best
        ox, oy = px - 400, py - 300

        # Click at (0.25, 0.75) of the picture.
        # A click that lands before the window takes input is lost: click again until the app answers.
        import select

        for _ in range(10):
            subprocess.run([XDOTOOL, "mousemove", "--window", win, str(ox + 160), str(oy + 360), "click", "1"],
                           env=env, check=True, timeout=30)
            if select.select([app.stdout], [], [], 10.0)[0]:
                break
        result = json.loads(app.stdout.readline())
        assert result["click"] == pytest.approx([0.25, 0.75], abs=0.01)
        assert result["calibration_point"] == pytest.approx([0.25, 0.75], abs=0.01)
        assert result["faces"] == 1

        def cyan_near(img):
            near = img[oy + 340:oy + 380, ox + 140:ox + 180].reshape(-1, 3).astype(int)
            return np.any((near[:, 0] > 200) & (near[:, 1] > 180) & (near[:, 2] < 80))

        for _ in range(SCREENSHOT_TRIES):  # the repaint with the new marker may land a little after the reply
            after = screenshot(tmp_path / "preview.png")
            if cyan_near(after):
                break
        keep = os.environ.get("OPENSTEADY_SCREENSHOTS")
        if keep:
            shutil.copy(tmp_path / "preview.png", os.path.join(keep, "preview.png"))
        # The calibration marker (cyan, BGR 255,220,0) is now drawn where the click landed, and was not before.
        assert cyan_near(after) and not cyan_near(before)
        app.stdin.write("quit\n")
        app.stdin.flush()
        app.wait(60)
    finally:
        if app.poll() is None:
            app.kill()
