"""Reads PNG / JPEG / TIFF / BMP and DICOM files into the model's input format: (H, W, 3) uint8, BGR or RGB.

This is the one image reader of wssdl_d2: preparation (:mod:`.busi`), the dataset checker, the demo and, through
:func:`install_in_detectron2` (done when :mod:`wssdl_d2.data` is imported), Detectron2's training and test mappers,
which call ``detectron2.data.detection_utils.read_image``. So one file gives the same array, the same size and the
same orientation everywhere.

Raster files are decoded by Pillow with the EXIF orientation applied (as image viewers and Detectron2 do): an
image is read as it is displayed, and boxes and masks are in the displayed image's coordinates. Grayscale is
replicated to three channels. Images of more than 8 bits (16-bit PNG / TIFF) are kept as they are when every value
is <= 255, otherwise stretched linearly from their minimum..maximum to 0..255 (Detectron2's own reader would clip
them at 255). A multi-page TIFF uses page ``frame``.

DICOM (pydicom; recognised by the ``.dcm`` / ``.dicom`` / ``.dic`` extension or the ``DICM`` marker at byte 128):

- **Transfer syntaxes**: native (implicit / explicit VR, little / big endian), deflated, RLE, JPEG baseline,
  JPEG extended 12-bit, JPEG lossless (.57 / .70), JPEG-LS and JPEG 2000, lossless or lossy, decoded by
  pydicom's plugins (:mod:`.dicom_codecs` lists which package reads which; requirements.txt installs them).
- **Frame**: multi-frame files (ultrasound cine loops) give frame ``frame`` (default 0, the first; negative
  counts from the end); single-frame files give their only frame whatever ``frame`` is.
- **Photometric interpretation**: ``MONOCHROME2`` as stored; ``MONOCHROME1`` (0 = white) inverted so that 0 is
  black; ``RGB`` as stored; ``YBR_FULL`` / ``YBR_FULL_422`` (JPEG-compressed ultrasound) converted to RGB by
  pydicom; ``YBR_ICT`` / ``YBR_RCT`` (JPEG 2000) as decoded; ``PALETTE COLOR`` through its lookup table.
  Anything else is refused with a DatasetError.
- **Grey levels** (monochrome): the modality LUT (rescale slope / intercept) is applied, then the first
  window (WindowCenter / WindowWidth with its VOILUTFunction: LINEAR, LINEAR_EXACT or SIGMOID, by pydicom's
  ``apply_voi_lut``) with the window's output range mapped to 0..255; with a VOI LUT sequence
  instead, the LUT then a min..max stretch; with neither, values already in 0..255 are kept and others
  stretched from min..max. Colour data of more than 8 bits is scaled by its bit depth.
  Each frame is converted on its own: a window applies the same way to every frame of a cine, a min..max
  stretch follows each frame's own values.
- **Channels**: the models take 3 channels, as Detectron2 reads the BUSI PNGs: monochrome is replicated into
  R = G = B, colour (e.g. a colour-Doppler overlay) is kept in colour, not turned grey.

Every failure (missing file, truncated or random bytes, no pixel data, compressed data no installed decoder
can read, a frame that does not exist, absurd sizes) raises :class:`DatasetError` naming the file; for pixel
data that cannot be decoded it also names the transfer syntax, and the package to install when no decoder for
that syntax is installed.
"""
import os
import warnings
from dataclasses import dataclass
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from .dicom_codecs import PixelDecodeError, decode_frame
from .errors import DatasetError

RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic")
SUPPORTED_EXTENSIONS = RASTER_EXTENSIONS + DICOM_EXTENSIONS
#: Largest image accepted, in pixels per frame (Pillow's decompression-bomb limit).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
_COLOR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")


@dataclass
class LoadedImage:
    """An image ready for the model. ``pixels``: (H, W, 3) uint8 in ``format``; ``frame``: the frame / page
    used; ``num_frames``: how many the file holds; ``source``: "raster" or "dicom"; ``photometric``: the
    DICOM photometric interpretation (or the Pillow mode of a raster file)."""

    pixels: np.ndarray
    format: str
    frame: int
    num_frames: int
    source: str
    photometric: str


def is_dicom(path: Union[str, os.PathLike]) -> bool:
    """True when ``path`` has a DICOM extension or the ``DICM`` marker of a DICOM file at byte 128."""
    if os.path.splitext(os.fspath(path))[1].lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            header = f.read(132)
    except OSError:
        return False
    return header[128:132] == b"DICM"


def read_image(path: Union[str, os.PathLike], format: str = "BGR", frame: int = 0) -> np.ndarray:
    """The image at ``path`` as an (H, W, 3) uint8 array in ``format`` ("BGR" or "RGB"). See the module
    docstring for frames, photometric interpretations and bit depths. Raises DatasetError."""
    return load_image(path, format, frame).pixels


def load_image(path: Union[str, os.PathLike], format: str = "BGR", frame: int = 0) -> LoadedImage:
    """Like :func:`read_image`, but returns a :class:`LoadedImage` that also says which frame was used."""
    if format not in ("BGR", "RGB"):
        raise ValueError(f"format must be 'BGR' or 'RGB', not {format!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetError(path, "image file not found")
    loaded = _read_dicom(path, frame) if is_dicom(path) else _read_raster(path, frame)
    if format == "BGR":
        loaded.pixels = np.ascontiguousarray(loaded.pixels[:, :, ::-1])
    loaded.format = format
    return loaded


def _frame_index(path, frame, num_frames):
    if num_frames <= 1:
        return 0
    index = frame + num_frames if frame < 0 else frame
    if not 0 <= index < num_frames:
        raise DatasetError(path, f"frame {frame} asked but the file holds {num_frames} frames")
    return index


def _check_pixels(path, height, width):
    if height <= 0 or width <= 0:
        raise DatasetError(path, f"image has no pixels ({width}x{height})")
    if height * width > MAX_PIXELS:
        raise DatasetError(path, f"image of {width}x{height} pixels is larger than the {MAX_PIXELS} pixel limit")


def _stretch(values):
    """Linear map of min..max to 0..255 (a constant image becomes 0). Returns uint8."""
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError("pixel values are not finite")
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _gray_to_uint8(values):
    """Grey levels kept when all lie in 0..255 (integers), else stretched from min..max."""
    values = np.asarray(values)
    if values.dtype.kind in "ui" and values.size and values.min() >= 0 and values.max() <= 255:
        return values.astype(np.uint8)
    return _stretch(values)


def _as_rgb(gray):
    return np.repeat(gray[:, :, None], 3, axis=2)


def _read_raster(path, frame):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                num_frames = int(getattr(image, "n_frames", 1) or 1)
                index = _frame_index(path, frame, num_frames)
                if index:
                    image.seek(index)
                _check_pixels(path, image.height, image.width)
                image = ImageOps.exif_transpose(image)
                image.load()
                mode = image.mode
                if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
                    pixels = _as_rgb(_gray_to_uint8(np.asarray(image)))
                else:
                    pixels = np.asarray(image.convert("RGB"))
    except DatasetError:
        raise
    except Exception as err:  # Pillow raises many types for bad bytes; callers get one clear error
        raise DatasetError(path, f"cannot read image ({type(err).__name__}: {err})") from None
    return LoadedImage(np.ascontiguousarray(pixels), "RGB", index, num_frames, "raster", mode)


def _window(values, ds):
    """The first window of ``ds`` (PS3.3 C.11.2.1.2: its VOILUTFunction, LINEAR by default) applied by pydicom,
    its output range mapped to 0..255, as uint8. pydicom's window output lies between the values it gives far
    below and far above the window, which are asked of pydicom itself rather than derived here."""
    from pydicom.pixels import apply_voi_lut

    out = apply_voi_lut(np.asarray(values, dtype=np.float64), ds, prefer_lut=False)
    center, width = float(_first(ds.WindowCenter)), abs(float(_first(ds.WindowWidth)))
    far = max(width, 1.0) * 1e6
    with np.errstate(over="ignore"):
        ends = apply_voi_lut(np.array([center - far, center + far]), ds, prefer_lut=False)
    low, high = float(ends[0]), float(ends[1])
    if not np.isfinite(high - low) or high == low:
        raise ValueError(f"window of center {center}, width {width} gives no grey levels")
    return np.clip(np.round((out - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)


def _first(value):
    """First value of a possibly multi-valued DICOM element."""
    try:
        return value[0]
    except TypeError:
        return value


def _monochrome_to_uint8(pixels, ds, photometric):
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(pixels, ds)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        gray = _window(values, ds)
    elif "VOILUTSequence" in ds:
        gray = _stretch(apply_voi_lut(values, ds))
    else:
        gray = _gray_to_uint8(values)
    return 255 - gray if photometric == "MONOCHROME1" else gray


def _color_to_uint8(pixels, bits):
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8:
        return pixels
    top = float(2 ** bits - 1) if bits else float(max(pixels.max(), 1))
    return np.clip(np.round(pixels.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


def _read_dicom(path, frame):
    import pydicom
    from pydicom.pixels import apply_color_lut

    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as err:
        raise DatasetError(path, f"not a readable DICOM file ({type(err).__name__}: {err})") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DatasetError(path, "DICOM file without pixel data")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        num_frames = int(ds.get("NumberOfFrames", 1) or 1)
        photometric = str(ds.PhotometricInterpretation).strip().upper()
    except Exception as err:
        raise DatasetError(path, f"DICOM image pixel module incomplete ({type(err).__name__}: {err})") from None
    _check_pixels(path, rows, cols)
    index = _frame_index(path, frame, num_frames)
    if photometric not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR") + _COLOR_PHOTOMETRICS:
        raise DatasetError(path, f"unsupported DICOM photometric interpretation {photometric!r}")
    try:
        pixels = decode_frame(ds, index if num_frames > 1 else None)
    except PixelDecodeError as err:
        raise DatasetError(path, str(err)) from None
    except Exception as err:  # anything the decoders raise that decode_frame did not word
        raise DatasetError(path, f"cannot decode the DICOM pixel data ({type(err).__name__}: {err})") from None
    try:
        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            if pixels.ndim != 2:
                raise ValueError(f"a {photometric} frame should be 2-D, not of shape {pixels.shape}")
            rgb = _as_rgb(_monochrome_to_uint8(pixels, ds, photometric))
        elif photometric == "PALETTE COLOR":
            lut = np.asarray(apply_color_lut(pixels, ds))
            rgb = _color_to_uint8(lut, 8 if lut.dtype == np.uint8 else 16)
        else:
            rgb = _color_to_uint8(pixels, int(ds.get("BitsStored", 8) or 8))
    except DatasetError:
        raise
    except Exception as err:  # LUT code raises many types; callers get one clear error
        raise DatasetError(path, f"cannot convert the DICOM pixel data ({type(err).__name__}: {err})") from None
    if rgb.shape != (rows, cols, 3):
        raise DatasetError(path, f"decoded frame has shape {rgb.shape}, expected {rows}x{cols} with 3 channels")
    return LoadedImage(np.ascontiguousarray(rgb), "RGB", index, num_frames, "dicom", photometric)



# ---- Detectron2's loaders read through this module -------------------------------------------------------

def read_image_for_detectron2(file_name, format=None):
    """``detectron2.data.detection_utils.read_image`` with this module's rule: local files in "BGR" / "RGB" (the
    formats of cfg.INPUT.FORMAT) are read by :func:`read_image`; other formats ("L" for segmentation maps,
    YUV) and non-local paths (``s3://``) go to Detectron2's own reader."""
    if format in ("BGR", "RGB") and "://" not in os.fspath(file_name):
        return read_image(file_name, format)
    return _DETECTRON2_READ_IMAGE(file_name, format)


_DETECTRON2_READ_IMAGE = None


def install_in_detectron2() -> None:
    """Make Detectron2's DatasetMapper (training and test loaders) read images with :func:`read_image_for_detectron2`
    (it calls ``detection_utils.read_image`` at each image). Idempotent."""
    global _DETECTRON2_READ_IMAGE
    from detectron2.data import detection_utils

    if detection_utils.read_image is not read_image_for_detectron2:
        _DETECTRON2_READ_IMAGE = detection_utils.read_image
        detection_utils.read_image = read_image_for_detectron2
