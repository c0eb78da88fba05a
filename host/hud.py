"""Preview window and its heads-up display (OpenCV).

``draw_hud(bgr, out, status)`` draws onto a BGR image and does no other I/O,
so it is testable headless. :class:`PreviewWindow` owns the window: a left
click sets the calibration point, keys map to actions:

====== =========================================
key    action
====== =========================================
q, Esc quit
space  pause / resume tracking
p      photo (with countdown)
r      start / stop recording
c      calibration point to the centre
t      cycle the calibration presets
0      recentre the gimbal
====== =========================================
"""

import cv2

from opensteady.host.calibration import PRESETS

GREEN = (80, 220, 80)
YELLOW = (0, 220, 255)
RED = (40, 40, 240)
CYAN = (255, 220, 0)
WHITE = (255, 255, 255)
GREY = (160, 160, 160)

KEY_ACTIONS = {
    ord("q"): "quit", 27: "quit", ord(" "): "pause_toggle", ord("p"): "photo", ord("r"): "record_toggle",
    ord("c"): "calibration_centre", ord("t"): "calibration_next", ord("0"): "recentre", ord("l"): "light_cycle",
}
PRESET_CYCLE = list(PRESETS)  # the order the t key steps through


def _px(x, y, w, h):
    return int(round(x * w)), int(round(y * h))


def put_text(img, text, org, color=WHITE, scale=0.5, thickness=1):
    """Outlined text, readable on any background."""
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def _box(img, box, color, label=None, thickness=1):
    h, w = img.shape[:2]
    p0 = _px(box.x, box.y, w, h)
    p1 = _px(box.x + box.w, box.y + box.h, w, h)
    cv2.rectangle(img, p0, p1, color, thickness)
    if label:
        put_text(img, label, (p0[0], max(12, p0[1] - 4)), color, 0.45)


def draw_hud(img, out, status):
    """Draw detections, target, calibration point and status lines onto ``img`` (BGR, in place)."""
    h, w = img.shape[:2]
    det = out.detections
    for face in det.faces:
        _box(img, face.box, GREEN, "%.2f" % face.score)
    for hand in det.hands:
        _box(img, hand.box, YELLOW, hand.gesture if hand.gesture != "unknown" else None)
    for body in det.bodies:
        _box(img, body.box, GREY)
    target = out.target
    if target.locked:
        seen = target.source in ("face", "body")
        color = RED if seen else GREY
        if target.box is not None:
            _box(img, target.box, color, "target %d (%s)" % (target.track_id, target.source), 2)
        cv2.drawMarker(img, _px(target.x, target.y, w, h), color, cv2.MARKER_CROSS, 18, 2)
    cx, cy = out.calibration_point
    cv2.drawMarker(img, _px(cx, cy, w, h), CYAN, cv2.MARKER_TILTED_CROSS, 16, 1)
    cv2.circle(img, _px(cx, cy, w, h), 10, CYAN, 1)

    sp = out.setpoint
    mode = "PAUSED" if out.paused else sp.state.upper()
    lines = [
        "%s  yaw %+6.1f deg/s  pitch %+6.1f deg/s  roll %.0f" % (mode, sp.yaw_rate_dps, sp.pitch_rate_dps, sp.roll_deg),
        "%.1f fps  pipeline %.1f ms  e2e %s" % (
            status.get("fps", 0.0), out.latency_ms["total"],
            "%.1f ms" % status["e2e_ms"] if status.get("e2e_ms") is not None else "-"),
    ]
    tel = out.telemetry
    gimbal = status.get("gimbal", "none")
    if tel:
        lines.append("%s: yaw %+.1f pitch %+.1f roll %+.1f deg" % (
            gimbal, tel.get("yaw_deg", 0.0), tel.get("pitch_deg", 0.0), tel.get("roll_deg", 0.0)))
    else:
        lines.append("%s: %s" % (gimbal, "connected" if status.get("connected", True) else "DISCONNECTED, retrying"))
    if status.get("camera_error"):
        lines.append("CAMERA: %s" % status["camera_error"])
    if status.get("message"):
        lines.append(status["message"])
    for i, line in enumerate(lines):
        put_text(img, line, (8, 18 + 18 * i), RED if line.startswith(("CAMERA", "PAUSED")) else WHITE)
    if out.recording:
        cv2.circle(img, (w - 20, 20), 8, RED, -1)
        put_text(img, "REC", (w - 60, 25), RED)
    if out.photo_countdown_s is not None:
        n = str(int(out.photo_countdown_s) + 1)
        put_text(img, n, (w // 2 - 20, h // 2 + 20), WHITE, 3.0, 4)
    if status.get("gesture"):
        put_text(img, "gesture: %s" % status["gesture"], (8, h - 12), YELLOW, 0.6)
    return img


class ClickToPoint:
    """Turns mouse events on an image of a known size into normalised click points."""

    def __init__(self):
        self.size = (1, 1)  # (width, height) of the image shown
        self.clicked = None  # normalised (x, y) of the last left click, until taken

    def on_mouse(self, event, x, y, flags=0, param=None):
        if event == cv2.EVENT_LBUTTONDOWN:
            w, h = self.size
            self.clicked = (min(1.0, max(0.0, x / w)), min(1.0, max(0.0, y / h)))

    def take(self):
        click, self.clicked = self.clicked, None
        return click


class PreviewWindow:
    """The OpenCV window: shows frames, reports clicks and key actions."""

    def __init__(self, title="OpenSteady"):
        self.title = title
        self.clicks = ClickToPoint()
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
        cv2.setMouseCallback(title, self.clicks.on_mouse)

    def show(self, img):
        """Show ``img`` and return the action of a key pressed, or None."""
        self.clicks.size = (img.shape[1], img.shape[0])
        cv2.imshow(self.title, img)
        key = cv2.waitKey(1) & 0xFF
        return KEY_ACTIONS.get(key)

    def take_click(self):
        return self.clicks.take()

    def close(self):
        cv2.destroyWindow(self.title)
