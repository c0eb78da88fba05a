"""Test pictures that carry their own frame number, readable after JPEG compression.

The number is drawn twice: as text for a person looking at the picture, and as
a 16-bit barcode of black and white cells along the top for the tests to read back.
"""

import cv2
import numpy as np

BITS = 16
BAND_H = 24


def numbered_frame(index, width=320, height=240):
    rgb = np.full((height, width, 3), 90, np.uint8)
    cv2.circle(rgb, (width // 2, height // 2), height // 4, (200, 120, 60), -1)
    cell = width // BITS
    for bit in range(BITS):
        on = (index >> (BITS - 1 - bit)) & 1
        rgb[:BAND_H, bit * cell:(bit + 1) * cell] = 255 if on else 0
    cv2.putText(rgb, "frame %d" % index, (10, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return rgb


def read_index(rgb):
    """The frame number drawn by numbered_frame (any size the picture was scaled to)."""
    height, width = rgb.shape[:2]
    cell = width / BITS
    band = max(1, round(BAND_H * height / 240))
    value = 0
    for bit in range(BITS):
        x0, x1 = int(bit * cell + cell / 4), int((bit + 1) * cell - cell / 4)
        value = (value << 1) | int(rgb[band // 4: 3 * band // 4, x0:x1].mean() > 127)
    return value
