"""The preview window as `opensteady track` shows it, for the Xvfb test (run as a script).

Real MediaPipe on the astronaut photo, the real HUD and PreviewWindow. Prints
"ready W H" once the window is up, then keeps it alive until a left click:
the click sets the calibration point through the pipeline, exactly as
track.py does; prints the result as JSON and keeps showing the new frame
until a line arrives on stdin.
"""

import json
import select
import sys

import cv2


def main():
    from skimage import data

    from opensteady.host.hud import PreviewWindow, draw_hud
    from opensteady.host.pipeline import PipelineConfig, TrackingPipeline

    rgb = cv2.resize(data.astronaut(), (640, 480))
    pipeline = TrackingPipeline(PipelineConfig(vision={"hands": False}))
    window = PreviewWindow()
    t = 0.0

    def frame():
        nonlocal t
        t += 1 / 30
        out = pipeline.step(rgb, t)
        bgr = draw_hud(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), out, {"fps": 30.0, "gimbal": "none"})
        window.show(bgr)
        return out

    out = frame()
    print("ready %d %d" % (640, 480), flush=True)
    for _ in range(30000):  # bounded: a click comes within a few hundred frames
        out = frame()
        click = window.take_click()
        if click is not None:
            pipeline.set_calibration_point(*click)
            out = frame()
            print(json.dumps({"click": click, "calibration_point": out.calibration_point,
                              "faces": len(out.detections.faces)}), flush=True)
            break
    for _ in range(30000):
        frame()
        if select.select([sys.stdin], [], [], 0)[0]:
            break
    window.close()
    pipeline.close()


if __name__ == "__main__":
    main()
