"""An MP4 of what the gimbal's camera saw, with the HUD drawn on (the `opensteady sim` demo writes one).

    video = HudVideo("opensteady-sim.mp4", fps=30)
    video.write(frame.rgb, out, {"gimbal": "sim"})    # per frame: the picture and its PipelineOutput
    video.close()

MPEG-4 through OpenCV (plays in VLC, mpv, QuickTime with a codec pack, and
ffmpeg); a frame of another size is scaled to the first frame's size.
"""

import cv2

from opensteady.host.hud import draw_hud


class HudVideo:
    def __init__(self, path, fps):
        self.path = path
        self.fps = float(fps)
        self.frames = 0
        self._writer = None
        self._size = None

    def write(self, rgb, out, status=None):
        bgr = draw_hud(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), out, dict(status or {}))
        if self._writer is None:
            self._size = (bgr.shape[1], bgr.shape[0])
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise OSError("cannot write the video %s (folder missing, or no MPEG-4 encoder in OpenCV)" % self.path)
        elif (bgr.shape[1], bgr.shape[0]) != self._size:
            bgr = cv2.resize(bgr, self._size)
        self._writer.write(bgr)
        self.frames += 1

    def close(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        return self.path
