"""Virtual camera: a pinhole model rendering photo billboards before a panorama.

No GPU or OpenGL: each frame is an OpenCV ``remap`` of a cylindrical
background panorama (a brick room with two posters, all from scikit-image's
bundled photos) plus one ``warpPerspective`` per billboard, drawn far to near
so nearer billboards occlude farther ones. A billboard is a real photo on a
vertical rectangle that faces the gimbal and moves along a scripted path.

Frames (all positions in the MuJoCo world: x forward, y left, z up, metres).
The camera's optical axis is the camera site's +x, image right its -y, image
down its -z. Pixel coordinates are OpenCV's (origin top-left, x right, y down).

    cam = PinholeCamera(CameraParams(hfov_deg=70, width=640, height=480))
    scene = Scene(cam, [Billboard(photo_rgb, width_m=0.8, face_uv=(0.45, 0.26))])
    frame_rgb = scene.render(cam_pos_m, cam_rot_flu, positions_m)
    uv_px, depth_m = cam.project(points_world, cam_pos_m, cam_rot_flu)
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

NEAR_M = 0.05
BACKGROUND_RADIUS_M = 5.0
_PANO_PX_PER_M = 130.0
_GRID = 8  # background rays are traced on a grid 8x coarser than the frame


@dataclass(frozen=True)
class CameraParams:
    hfov_deg: float = 70.0
    width: int = 640
    height: int = 480

    def validate(self):
        if not 1.0 <= self.hfov_deg <= 150.0:
            raise ValueError("camera.hfov_deg = %r: must be between 1 and 150" % self.hfov_deg)
        for key in ("width", "height"):
            v = getattr(self, key)
            if not (isinstance(v, int) and 32 <= v <= 4096 and v % _GRID == 0):
                raise ValueError("camera.%s = %r: must be an integer 32..4096 divisible by %d" % (key, v, _GRID))
        return self

    @property
    def focal_px(self):
        return 0.5 * self.width / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def vfov_deg(self):
        return math.degrees(2 * math.atan(0.5 * self.height / self.focal_px))


@dataclass(frozen=True)
class LightParams:
    """The room's light, the gimbal's fill light and the sensor's noise, as the virtual camera sees them.

    A pixel is the photo's pixel times ``ambient + fill_at_1m * duty / d**2``
    (d: the subject's distance from the camera in metres, the fill light sits
    beside the lens; duty: the light's PWM duty, 0..1, from the firmware),
    plus Gaussian read noise of ``noise_dn`` levels, rounded to 8 bits. 1.0 is
    the photos as they were taken. ``level`` is the fill light level the host
    asks for when the scenario starts (0 off, 1..3).
    """

    ambient: float = 1.0
    fill_at_1m: float = 1.0
    noise_dn: float = 0.0
    level: int = 0

    def validate(self):
        if not 0.0 <= self.ambient <= 4.0:
            raise ValueError("light.ambient = %r: must be between 0 and 4 (1 = the photos as taken)" % self.ambient)
        if not 0.0 <= self.fill_at_1m <= 10.0:
            raise ValueError("light.fill_at_1m = %r: must be between 0 and 10" % self.fill_at_1m)
        if not 0.0 <= self.noise_dn <= 64.0:
            raise ValueError("light.noise_dn = %r: must be between 0 and 64 (8-bit levels)" % self.noise_dn)
        if self.level not in (0, 1, 2, 3):
            raise ValueError("light.level = %r: the fill light has levels 0 (off) to 3" % self.level)
        return self

    def gain(self, duty, distance_m):
        """How bright something ``distance_m`` away looks, relative to the photo, with the light at ``duty``."""
        return self.ambient + self.fill_at_1m * duty / max(distance_m, NEAR_M) ** 2


class PinholeCamera:
    def __init__(self, params=None):
        self.params = (params or CameraParams()).validate()
        p = self.params
        self.focal_px = p.focal_px
        self.cx = (p.width - 1) / 2.0
        self.cy = (p.height - 1) / 2.0

    def to_camera(self, points_world, cam_pos_m, cam_rot_flu):
        """World points -> optical frame (x right, y down, z forward)."""
        local = (np.asarray(points_world, dtype=float).reshape(-1, 3) - cam_pos_m) @ cam_rot_flu
        return np.stack([-local[:, 1], -local[:, 2], local[:, 0]], axis=1)

    def project(self, points_world, cam_pos_m, cam_rot_flu):
        """(uv_px (N, 2), depth_m (N,)); points behind the camera get depth <= 0."""
        c = self.to_camera(points_world, cam_pos_m, cam_rot_flu)
        z = c[:, 2]
        safe = np.where(z > 1e-9, z, 1e-9)
        u = self.focal_px * c[:, 0] / safe + self.cx
        v = self.focal_px * c[:, 1] / safe + self.cy
        return np.stack([u, v], axis=1), z


class Billboard:
    """A photo on an upright rectangle ``width_m`` wide, facing the gimbal.

    ``face_uv`` is the face centre in the photo, as fractions of its width and
    height; metrics project it to know where the subject's face is.
    """

    def __init__(self, image_rgb, width_m, face_uv=None, name="subject"):
        img = np.ascontiguousarray(image_rgb, dtype=np.uint8)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError("billboard %s: image must be H x W x 3 RGB, got shape %r" % (name, img.shape))
        self.image = img
        self.name = name
        self.width_m = float(width_m)
        self.height_m = self.width_m * img.shape[0] / img.shape[1]
        self.face_uv = face_uv
        h, w = img.shape[:2]
        self._src_px = np.float32([[0, 0], [w, 0], [w, h], [0, h]])

    def corners_world(self, centre_m, look_at_m):
        """The four corners (top-left, top-right, bottom-right, bottom-left) as seen from ``look_at_m``."""
        c = np.asarray(centre_m, dtype=float)
        normal = np.asarray(look_at_m, dtype=float) - c
        normal[2] = 0.0
        n = np.linalg.norm(normal)
        normal = normal / n if n > 1e-9 else np.array([-1.0, 0.0, 0.0])
        # seen from look_at, image right is normal x up
        right = np.cross(normal, [0.0, 0.0, 1.0])
        up = np.array([0.0, 0.0, 1.0])
        hw, hh = self.width_m / 2, self.height_m / 2
        return np.array([c - hw * right + hh * up, c + hw * right + hh * up,
                         c + hw * right - hh * up, c - hw * right - hh * up])

    def face_world(self, centre_m, look_at_m):
        """World position of the face centre, or None if the photo has no face box."""
        if self.face_uv is None:
            return None
        tl, tr, _br, bl = self.corners_world(centre_m, look_at_m)
        fu, fv = self.face_uv
        return tl + fu * (tr - tl) + fv * (bl - tl)


def _poster(img, height_px):
    scale = height_px / img.shape[0]
    return cv2.resize(img, (int(img.shape[1] * scale), height_px), interpolation=cv2.INTER_AREA)


def default_panorama():
    """A brick room 360 deg around the gimbal with two posters (no faces in it)."""
    from skimage import data

    brick = cv2.resize(data.brick(), (160, 160), interpolation=cv2.INTER_AREA)  # 512 px of grey brick -> 1.2 m
    tint = np.array([1.0, 0.78, 0.62])
    tile = np.clip(brick[:, :, None] * tint[None, None, :] * 0.9 + 20, 0, 255).astype(np.uint8)
    circumference_px = int(2 * math.pi * BACKGROUND_RADIUS_M * _PANO_PX_PER_M)
    height_px = int(5.0 * _PANO_PX_PER_M)
    reps_x = circumference_px // tile.shape[1] + 1
    reps_y = height_px // tile.shape[0] + 1
    pano = np.tile(tile, (reps_y, reps_x, 1))[:height_px, :circumference_px].copy()
    # a floor below eye height - 1.3 m
    floor_row = int(height_px / 2 + 1.3 * _PANO_PX_PER_M)
    pano[floor_row:] = (pano[floor_row:] * 0.35 + np.array([60, 55, 50]) * 0.65).astype(np.uint8)
    for img, az_deg in ((data.coffee(), 25.0), (data.rocket(), -40.0)):
        p = _poster(img, int(0.9 * _PANO_PX_PER_M))
        col = int((0.5 - az_deg / 360.0) * circumference_px) - p.shape[1] // 2
        row = int(height_px / 2 - 0.3 * _PANO_PX_PER_M) - p.shape[0] // 2
        pano[row:row + p.shape[0], col:col + p.shape[1]] = p
    return pano


class Scene:
    """What the camera sees: a panorama background and billboards in front of it."""

    def __init__(self, camera, billboards=(), panorama_rgb=None):
        self.camera = camera
        self.billboards = list(billboards)
        pano = default_panorama() if panorama_rgb is None else panorama_rgb
        # pad with a wrapped copy on both sides so a view never runs off either end
        self._pano_w = pano.shape[1]
        self._pad = self._pano_w // 2
        self.panorama = np.ascontiguousarray(np.concatenate([pano[:, -self._pad:], pano, pano[:, :self._pad]], axis=1))
        p = camera.params
        # the background is traced at half resolution and scaled up (it is out of focus anyway)
        self._bg_size = (p.width // 2, p.height // 2)
        gw, gh = p.width // _GRID + 1, p.height // _GRID + 1
        us = np.linspace(0, p.width - 1, gw)
        vs = np.linspace(0, p.height - 1, gh)
        uu, vv = np.meshgrid(us, vs)
        # coarse rays in the camera's FLU frame: forward, left, up
        self._rays = np.stack([np.ones_like(uu), -(uu - camera.cx) / camera.focal_px,
                               -(vv - camera.cy) / camera.focal_px], axis=-1).reshape(-1, 3)
        self._grid_shape = (gh, gw)
        self._bg = np.zeros((self._bg_size[1], self._bg_size[0], 3), dtype=np.uint8)
        self._frame = np.zeros((p.height, p.width, 3), dtype=np.uint8)

    def _background(self, cam_rot_flu):
        p = self.camera.params
        ph = self.panorama.shape[0]
        pw = self._pano_w
        rot = np.asarray(cam_rot_flu)
        d = self._rays @ rot.T
        horiz = np.hypot(d[:, 0], d[:, 1])
        # azimuth (positive to the left) unwrapped around the view direction
        az_c = math.atan2(rot[1, 0], rot[0, 0])
        az_rel = (np.arctan2(d[:, 1], d[:, 0]) - az_c + np.pi) % (2 * np.pi) - np.pi
        col_c = ((0.5 - az_c / (2 * np.pi)) % 1.0) * pw + self._pad
        cols = col_c - az_rel / (2 * np.pi) * pw
        rows = ph / 2 - BACKGROUND_RADIUS_M * d[:, 2] / np.maximum(horiz, 1e-6) * _PANO_PX_PER_M
        map_x = cv2.resize(cols.reshape(self._grid_shape).astype(np.float32), self._bg_size,
                           interpolation=cv2.INTER_LINEAR)
        map_y = cv2.resize(np.clip(rows, -ph, 2 * ph).reshape(self._grid_shape).astype(np.float32), self._bg_size,
                           interpolation=cv2.INTER_LINEAR)
        cv2.remap(self.panorama, map_x, map_y, cv2.INTER_LINEAR, dst=self._bg, borderMode=cv2.BORDER_REPLICATE)
        cv2.resize(self._bg, (p.width, p.height), dst=self._frame, interpolation=cv2.INTER_LINEAR)

    def render(self, cam_pos_m, cam_rot_flu, centres_m, visible=None, look_at_m=None, light=None, light_duty=0.0):
        """The frame (H x W x 3 uint8 RGB, a new array) with billboard k at ``centres_m[k]``.

        Billboards face ``look_at_m`` (default: the camera). ``light``
        (LightParams) with the fill light's ``light_duty`` (0..1) scales each
        billboard and the background by how lit it is (noise is the caller's).
        """
        cam = self.camera
        p = cam.params
        self._background(cam_rot_flu)
        frame = self._frame
        if light is not None:
            g = light.gain(light_duty, BACKGROUND_RADIUS_M)
            if g != 1.0:
                cv2.convertScaleAbs(frame, dst=frame, alpha=g)
        look_at = cam_pos_m if look_at_m is None else look_at_m
        order = sorted(range(len(self.billboards)),
                       key=lambda k: -np.linalg.norm(np.asarray(centres_m[k]) - cam_pos_m))
        for k in order:
            if visible is not None and not visible[k]:
                continue
            board = self.billboards[k]
            corners = board.corners_world(centres_m[k], look_at)
            uv, depth = cam.project(corners, cam_pos_m, cam_rot_flu)
            if np.any(depth < NEAR_M):
                continue
            x0 = max(0, int(math.floor(uv[:, 0].min())))
            y0 = max(0, int(math.floor(uv[:, 1].min())))
            x1 = min(p.width, int(math.ceil(uv[:, 0].max())) + 1)
            y1 = min(p.height, int(math.ceil(uv[:, 1].max())) + 1)
            if x1 <= x0 or y1 <= y0:
                continue  # entirely outside the frame
            # warp only into the billboard's bounding box (a view of the frame)
            h = cv2.getPerspectiveTransform(board._src_px, (uv - [x0, y0]).astype(np.float32))
            image = board.image
            if light is not None:
                g = light.gain(light_duty, float(np.linalg.norm(np.asarray(centres_m[k]) - cam_pos_m)))
                if g != 1.0:
                    image = cv2.convertScaleAbs(image, alpha=g)
            cv2.warpPerspective(image, h, (x1 - x0, y1 - y0), dst=frame[y0:y1, x0:x1],
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        return frame.copy()
