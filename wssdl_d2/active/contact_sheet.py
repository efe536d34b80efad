"""A contact sheet for annotators: the images to annotate, in rank order, as a grid of thumbnails (OpenCV).

Each cell shows the image fitted into ``cell`` pixels with the mass of interest (thin, yellow) and
the top detection (green benign / red malignant, thick), and a caption with the rank, the image's label, the
acquisition score and the file's name. Written atomically as PNG.
"""
import os
from typing import Sequence, Tuple

import cv2
import numpy as np

from ..data.image_io import load_image
from ..data.labels import CLASS_COLORS_BGR, IMAGE_LABEL_NAMES
from ..utils.atomic import atomic_open

MOI_BGR = (0, 220, 255)
CAPTION_H = 34


def _box(row, key):
    text = row.get(key) or ""
    values = [float(v) for v in str(text).split()]
    return values if len(values) == 4 and all(np.isfinite(values)) else None


def _cell(row, size):
    width, height = size
    canvas = np.full((height + CAPTION_H, width, 3), 255, np.uint8)
    image = load_image(row["file_name"], "BGR").pixels
    scale = min(width / image.shape[1], height / image.shape[0])
    thumb = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    y0, x0 = (height - thumb.shape[0]) // 2, (width - thumb.shape[1]) // 2
    canvas[y0:y0 + thumb.shape[0], x0:x0 + thumb.shape[1]] = thumb
    for key, color, thickness in (("moi_box", MOI_BGR, 1), ("top_box", None, 2)):
        box = _box(row, key)
        if box is None:
            continue
        if color is None:
            color = CLASS_COLORS_BGR[int(row["top_class"])] if row.get("top_class") not in ("", None) else (255, 255, 255)
        p0 = (int(x0 + box[0] * scale), int(y0 + box[1] * scale))
        p1 = (int(x0 + box[2] * scale), int(y0 + box[3] * scale))
        cv2.rectangle(canvas, p0, p1, color, thickness)
    line1 = f"#{row['rank']} {IMAGE_LABEL_NAMES[int(row['image_label'])]} score {float(row['score']):.2f}"
    name = os.path.basename(row["file_name"])
    line2 = name if len(name) <= width // 7 else name[: width // 7 - 2] + ".."
    for k, text in enumerate((line1, line2)):
        cv2.putText(canvas, text, (3, height + 14 + 15 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def contact_sheet(rows: Sequence[dict], cell: Tuple[int, int] = (192, 160), columns: int = 6) -> np.ndarray:
    """(H, W, 3) uint8 BGR grid of the rows (dicts of :func:`wssdl_d2.active.scoring.rank_images`)."""
    if not rows:
        raise ValueError("contact sheet: no image to show")
    cells = [_cell(row, cell) for row in rows]
    columns = max(1, min(columns, len(cells)))
    blank = np.full_like(cells[0], 255)
    cells += [blank] * (-len(cells) % columns)
    grid = [np.concatenate(cells[i:i + columns], axis=1) for i in range(0, len(cells), columns)]
    sheet = np.concatenate(grid, axis=0)
    for x in range(cell[0], sheet.shape[1], cell[0]):  # thin separators
        sheet[:, x - 1] = 200
    return sheet


def write_png(path: str, image_bgr: np.ndarray) -> str:
    """Write an (H, W, 3) uint8 BGR image as PNG, atomically. Returns ``path``."""
    ok, encoded = cv2.imencode(".png", image_bgr)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the image")
    with atomic_open(path, "wb") as f:
        f.write(encoded.tobytes())
    return path
