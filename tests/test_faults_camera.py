"""Fault suite, camera side: a missing camera retries quietly and gives up after camera.give_up_s.

Real OpenCV on a camera index that does not exist; the give-up time runs on a simulated
clock (each reading is one second later), so no test waits for it.
"""

import itertools
import logging

from opensteady.host.capture import CameraSource, FrameGrabber

GENEROUS_S = 60.0


def test_a_missing_camera_retries_quietly_with_one_line_and_gives_up(capfd, caplog):
    caplog.set_level(logging.INFO, logger="opensteady.host.capture")
    seconds = itertools.count()
    grabber = FrameGrabber(CameraSource(97), retry_s=0.001, give_up_s=5.0, clock=lambda: float(next(seconds)))
    grabber.start()
    grabber._thread.join(GENEROUS_S)
    assert grabber.ended and grabber.gave_up and grabber.errors >= 2
    assert "camera 97 could not be opened" in str(grabber.error) and "gave up after" in str(grabber.error)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # "retrying every ... for up to 5 s", then "gave up"
    assert "for up to 5 s" in lines[0] and "gave up after" in lines[1]
    err = capfd.readouterr().err
    assert "WARN" not in err and "global " not in err, err  # OpenCV's own lines are silenced
    grabber.stop()


def test_without_a_limit_a_missing_camera_keeps_retrying():
    seconds = itertools.count()
    grabber = FrameGrabber(CameraSource(97), retry_s=0.001, clock=lambda: float(next(seconds))).start()
    while grabber.errors < 20:
        grabber.latest(timeout_s=0.01)
    assert grabber.status == "retrying" and not grabber.gave_up
    grabber.stop()
