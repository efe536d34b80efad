"""Every compressed DICOM transfer syntax an ultrasound scanner writes is read through the demo's input path.

Two sources, nothing downloaded:

- pydicom's own test files that its wheel bundles (``pydicom/data/test_files``; ``get_testdata_file`` would fetch
  others from the network, so they are opened by path): real files from DCMTK, GDCM, NEMA and scanners for JPEG
  baseline, extended 12-bit and lossless SV1, JPEG-LS, JPEG 2000, RLE and deflate. Every one of them that is
  compressed or deflated is read (first and last frame); those in BUNDLED are also compared with an
  uncompressed or lossless copy of the same image where pydicom ships one;
- files written here from a phantom ultrasound cine (3 frames) and a colour-Doppler-like RGB image, for every
  syntax in grey and colour, including those no bundled file covers (JPEG lossless with predictors 2..7, .57):
  pydicom's encoders (``Dataset.compress``: RLE, JPEG-LS via pyjpegls, JPEG 2000 via pylibjpeg-openjpeg),
  Pillow for JPEG baseline, and :func:`encode_lossless_jpeg` below for JPEG lossless (process 14).

"The demo's input path" is :func:`wssdl_d2.inference.inputs.expand_inputs` then
:func:`wssdl_d2.inference.predict_files` (which reads through :func:`wssdl_d2.data.image_io.load_image`), with
a predictor that records the image it is given instead of running a model.
"""
import io
import os
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate, get_frame
from pydicom.pixels import convert_color_space
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit,
    JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, RLELossless)
from test_demo_image_io import write_dicom

from wssdl_d2.data.dicom_codecs import decode_frame, fixed_sequential_jpeg
from wssdl_d2.data.errors import DatasetError
from wssdl_d2.data.image_io import load_image
from wssdl_d2.data.phantom import generate_image
from wssdl_d2.inference import Prediction, diagnose, predict_files
from wssdl_d2.inference.inputs import expand_inputs

TEST_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
#: SC_rgb*.dcm: ten 10-row stripes of these RGB colours (pydicom's test image, made by DCMTK / GDCM).
SC_RGB_STRIPES = [(255, 0, 0), (255, 128, 128), (0, 255, 0), (128, 255, 128), (0, 0, 255), (128, 128, 255),
                  (0, 0, 0), (64, 64, 64), (192, 192, 192), (255, 255, 255)]


def bundled(name):
    """Path of a test file inside pydicom's installed package (never downloaded)."""
    path = os.path.join(TEST_FILES, name)
    assert os.path.isfile(path), f"pydicom's wheel no longer bundles {name}"
    return path


class RecordingPredictor:
    """Stands in for the model: keeps each (H, W, 3) BGR image it is given, predicts nothing."""

    def __init__(self):
        self.images = []

    def __call__(self, image):
        self.images.append(image)
        none = np.zeros((0,), np.float32)
        return Prediction(np.zeros((0, 4), np.float32), none, np.zeros((0,), np.int64), diagnose([], []),
                          image.shape[0], image.shape[1])


def demo_read(path, frame=0):
    """The image the demo's model gets for ``path`` (as RGB) and its result record (frame, num_frames, ...)."""
    files = expand_inputs([os.fspath(path)])
    predictor = RecordingPredictor()
    summary = predict_files(predictor, files, None, frame=frame, progress=False)
    assert summary["errors"] == [], summary["errors"]
    (image,), (record,) = predictor.images, summary["images"]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.flags["C_CONTIGUOUS"]
    return image[:, :, ::-1], record


def raw_frame(path, index=None):
    """The decoded stored values of frame ``index`` (None: the only one) and the dataset, with the shape, dtype
    and value range checked against the dataset's image pixel module."""
    ds = pydicom.dcmread(path)
    pixels = decode_frame(ds, index)
    samples = int(ds.SamplesPerPixel)
    assert pixels.shape == ((ds.Rows, ds.Columns) if samples == 1 else (ds.Rows, ds.Columns, samples))
    assert pixels.dtype.kind == ("i" if ds.PixelRepresentation else "u")
    assert pixels.dtype.itemsize * 8 == ds.BitsAllocated
    bits = int(ds.BitsStored)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if ds.PixelRepresentation else (0, (1 << bits) - 1)
    assert low <= pixels.min() and pixels.max() <= high
    return pixels, ds


def abs_diff(a, b):
    return np.abs(np.asarray(a, np.int64) - np.asarray(b, np.int64))


def psnr(a, b, peak=255.0):
    mse = float(np.mean(abs_diff(a, b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


# ---------------------------------------------------------------------------------------------------------------
# pydicom's bundled files
# ---------------------------------------------------------------------------------------------------------------

#: (file, transfer syntax, reference file of the same image or None, largest allowed |difference| from it in
#: stored values, largest allowed mean |difference|). The lossy JPEG limits are the measured losses of these
#: files plus a margin; chroma-subsampled JPEG (+np: 4:2:2) smears colour across the stripe edges.
BUNDLED = [
    ("SC_rgb_jpeg_dcmtk.dcm", JPEGBaseline8Bit, "SC_rgb_rle.dcm", 8, 1.0),            # YBR_FULL
    ("SC_rgb_dcmtk_+eb+cy+np.dcm", JPEGBaseline8Bit, "SC_rgb_rle.dcm", 90, 3.5),      # YBR_FULL_422
    ("SC_rgb_dcmtk_+eb+cy+s2.dcm", JPEGBaseline8Bit, "SC_rgb_rle.dcm", 8, 1.0),       # YBR_FULL_422
    ("SC_rgb_dcmtk_+eb+cr.dcm", JPEGBaseline8Bit, "SC_rgb_rle.dcm", 2, 0.5),          # RGB
    ("SC_rgb_small_odd_jpeg.dcm", JPEGBaseline8Bit, "SC_rgb_small_odd.dcm", 6, 3.0),  # 3x3 pixels, YBR_FULL
    ("JPGExtended.dcm", JPEGExtended12Bit, None, 0, 0),                              # 12-bit
    ("JPEG-lossy.dcm", JPEGExtended12Bit, "JPGExtended.dcm", 0, 0),                  # same stream, bad SOS
    ("SC_rgb_jpeg_gdcm.dcm", JPEGLosslessSV1, "SC_rgb_rle.dcm", 0, 0),
    ("MR_small_jpeg_ls_lossless.dcm", JPEGLSLossless, "MR_small.dcm", 0, 0),          # signed 16-bit
    ("SC_rgb_jls_lossy_line.dcm", JPEGLSNearLossless, "SC_rgb_rle.dcm", "NEAR", 1.0),  # line interleaved
    ("SC_rgb_jls_lossy_sample.dcm", JPEGLSNearLossless, "SC_rgb_rle.dcm", "NEAR", 1.0),  # sample interleaved
    ("JPEGLSNearLossless_08.dcm", JPEGLSNearLossless, None, 0, 0),
    ("JPEGLSNearLossless_16.dcm", JPEGLSNearLossless, None, 0, 0),
    ("MR_small_jp2klossless.dcm", JPEG2000Lossless, "MR_small.dcm", 0, 0),
    ("examples_jpeg2k.dcm", JPEG2000Lossless, None, 0, 0),                           # ultrasound, YBR_RCT
    ("GDCMJ2K_TextGBR.dcm", JPEG2000Lossless, None, 0, 0),                           # JP2 header, YBR_RCT
    ("JPEG2000.dcm", JPEG2000, None, 0, 0),
    ("693_J2KI.dcm", JPEG2000, None, 0, 0),                                          # signed 14-bit CT
    ("SC_rgb_gdcm_KY.dcm", JPEG2000, "SC_rgb_rle.dcm", 4, 1.0),
    ("MR_small_RLE.dcm", RLELossless, "MR_small.dcm", 0, 0),
    ("SC_rgb_rle_16bit.dcm", RLELossless, None, 0, 0),
    ("image_dfl.dcm", DeflatedExplicitVRLittleEndian, None, 0, 0),
    ("SC_ybr_full_422_uncompressed.dcm", ExplicitVRLittleEndian, "SC_rgb_rle.dcm", 8, 1.0),
]


def _jpeg_ls_near(path):
    """The NEAR parameter (largest error per sample) of a JPEG-LS frame's scan header."""
    ds = pydicom.dcmread(path)
    frame = get_frame(ds.PixelData, 0, number_of_frames=1)
    sos = frame.index(b"\xff\xda")
    return frame[sos + 5 + 2 * frame[sos + 4]]


@pytest.mark.parametrize("name, syntax, reference, max_diff, max_mean", BUNDLED, ids=[b[0] for b in BUNDLED])
def test_bundled_file_decodes_through_the_demo_path(name, syntax, reference, max_diff, max_mean):
    path = bundled(name)
    raw, ds = raw_frame(path)
    assert ds.file_meta.TransferSyntaxUID == syntax
    image, record = demo_read(path)
    assert image.shape == (ds.Rows, ds.Columns, 3)
    assert (record["frame"], record["num_frames"], record["height"], record["width"]) == (0, 1, ds.Rows, ds.Columns)
    assert image.max() > image.min()  # not blank
    if ds.SamplesPerPixel == 1:
        assert (image[:, :, 0] == image[:, :, 1]).all() and (image[:, :, 0] == image[:, :, 2]).all()
    else:  # colour reaches the model as decoded, in RGB, scaled to 8 bits
        top = (1 << int(ds.BitsStored)) - 1
        np.testing.assert_array_equal(image, np.round(raw.astype(np.float64) * 255 / top).astype(np.uint8))
    if reference is None:
        return
    expected, _ = raw_frame(bundled(reference))
    if max_diff == "NEAR":
        max_diff = _jpeg_ls_near(path)
        assert max_diff > 0
    diff = abs_diff(raw, expected)
    assert diff.max() <= max_diff and diff.mean() <= max_mean, (diff.max(), diff.mean())
    if max_diff == 0:  # a lossless copy: the model sees exactly the same image
        np.testing.assert_array_equal(image, demo_read(bundled(reference))[0])


NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
#: bundled files whose pixel data is broken on purpose (pydicom's own tests of its error paths)
BROKEN_ON_PURPOSE = {"JPEG2000-embedded-sequence-delimiter.dcm": "JPEG 2000 Image Compression"}


def _bundled_encoded_images():
    """Every bundled image file whose transfer syntax is not a native one (compressed or deflated)."""
    found = []
    for name in sorted(os.listdir(TEST_FILES)):
        try:
            ds = pydicom.dcmread(os.path.join(TEST_FILES, name), stop_before_pixels=True)
        except Exception:
            continue
        syntax = str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", ""))
        if syntax and syntax not in NATIVE and "Rows" in ds:
            found.append(name)
    return found


BUNDLED_ENCODED = _bundled_encoded_images()


@pytest.mark.parametrize("name", BUNDLED_ENCODED)
def test_every_bundled_encoded_image_is_read(name):
    """Not only the files of BUNDLED: every compressed / deflated image pydicom bundles, every frame count."""
    path = bundled(name)
    if name in BROKEN_ON_PURPOSE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(DatasetError, match=BROKEN_ON_PURPOSE[name]):
                load_image(path)
        return
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    for frame in sorted({0, frames - 1}):
        raw_frame(path, frame if frames > 1 else None)
        image, record = demo_read(path, frame)
        assert image.shape == (ds.Rows, ds.Columns, 3) and record["frame"] == frame


def test_bundled_files_cover_the_scanner_syntaxes():
    syntaxes = {str(pydicom.dcmread(bundled(n), stop_before_pixels=True).file_meta.TransferSyntaxUID)
                for n in BUNDLED_ENCODED}
    assert {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5",
            "1.2.840.10008.1.2.1.99"} <= syntaxes


@pytest.mark.parametrize("name", ["SC_rgb_rle.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm",
                                  "SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jls_lossy_line.dcm",
                                  "SC_rgb_gdcm_KY.dcm", "SC_rgb_jpeg_gdcm.dcm"])
def test_colour_stripes_come_out_in_rgb(name):
    """YBR_FULL / YBR_FULL_422 / RGB in any codec: the middle rows of each stripe have its RGB colour."""
    image, _ = demo_read(bundled(name))
    for k, colour in enumerate(SC_RGB_STRIPES):
        middle = image[10 * k + 3:10 * k + 7].reshape(-1, 3)
        assert abs_diff(middle, colour).max() <= 8, (k, colour, middle[:2])


def test_bundled_ultrasound_cine_gives_each_frame():
    """examples_ybr_color.dcm: a 30-frame ultrasound cine, JPEG baseline YBR_FULL_422."""
    path = bundled("examples_ybr_color.dcm")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert (ds.Modality, int(ds.NumberOfFrames), ds.PhotometricInterpretation) == ("US", 30, "YBR_FULL_422")
    first, record = demo_read(path)
    assert (record["frame"], record["num_frames"]) == (0, 30)
    last, record = demo_read(path, frame=-1)
    assert record["frame"] == 29
    np.testing.assert_array_equal(last, demo_read(path, frame=29)[0])
    np.testing.assert_array_equal(first, raw_frame(path, 0)[0])
    assert abs_diff(first, last).mean() > 1  # the heart moved
    with pytest.raises(DatasetError, match="frame 30 asked but the file holds 30 frames"):
        load_image(path, frame=30)


def test_bundled_multiframe_rle_frames_match_the_single_frame_file():
    path = bundled("SC_rgb_rle_2frame.dcm")
    single, _ = demo_read(bundled("SC_rgb_rle.dcm"))
    for frame, expected in ((0, single), (1, 255 - single), (-1, 255 - single)):  # frame 1: the stripes inverted
        image, record = demo_read(path, frame)
        assert (record["frame"], record["num_frames"]) == (frame % 2, 2)
        np.testing.assert_array_equal(image, expected)


def test_jpeg_lossy_scan_header_is_fixed_to_the_corrected_file():
    """JPEG-lossy.dcm has Se = 0 in its start-of-scan (not 63, T.81's value for sequential DCT); JPGExtended.dcm
    is the same stream corrected. The fix gives those exact bytes and leaves correct or lossless streams alone."""
    def frame_of(name):
        return get_frame(pydicom.dcmread(bundled(name)).PixelData, 0, number_of_frames=1)

    bad, good = frame_of("JPEG-lossy.dcm"), frame_of("JPGExtended.dcm")
    assert bad != good
    assert fixed_sequential_jpeg(bad) == good
    assert fixed_sequential_jpeg(good) is None
    assert fixed_sequential_jpeg(frame_of("SC_rgb_jpeg_gdcm.dcm")) is None  # lossless: Ss is the predictor
    assert fixed_sequential_jpeg(b"not a jpeg") is None


# ---------------------------------------------------------------------------------------------------------------
# generated files: every syntax, grey cine and colour
# ---------------------------------------------------------------------------------------------------------------

def _predict(plane, predictor, precision):
    """T.81 H.1.2.1: the prediction of every sample of one component, (H, W) int64."""
    x = plane.astype(np.int64)
    ra, rb, rc = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    ra[:, 1:], rb[1:, :], rc[1:, 1:] = x[:, :-1], x[:-1, :], x[:-1, :-1]
    prediction = {1: ra, 2: rb, 3: rc, 4: ra + rb - rc, 5: ra + ((rb - rc) >> 1), 6: rb + ((ra - rc) >> 1),
                  7: (ra + rb) >> 1}[predictor].copy()
    prediction[0, :] = ra[0, :]  # first line: the sample to the left
    prediction[1:, 0] = rb[1:, 0]  # first column: the sample above
    prediction[0, 0] = 1 << (precision - 1)
    return prediction


def encode_lossless_jpeg(image, precision, predictor):
    """A JPEG lossless code stream (ITU-T T.81 process 14, Huffman coded, point transform 0) of ``image``
    ((H, W) or (H, W, C) unsigned ints of ``precision`` bits) with selection value ``predictor`` (1..7), the
    components interleaved, one Huffman table giving every difference category 0..16 a 5-bit code."""
    image = np.asarray(image)
    planes = [image] if image.ndim == 2 else [image[:, :, c] for c in range(image.shape[2])]
    height, width = planes[0].shape
    diffs = [(p.astype(np.int64) - _predict(p, predictor, precision)) % 65536 for p in planes]
    diffs = np.stack([np.where(d > 32768, d - 65536, d) for d in diffs], axis=-1).reshape(-1)
    bits = []
    for diff in diffs.tolist():
        size = 16 if diff == 32768 else abs(diff).bit_length()
        bits.append(format(size, "05b"))
        if 0 < size < 16:
            bits.append(format(diff if diff > 0 else diff + (1 << size) - 1, f"0{size}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)  # pad the last byte with 1-bits
    entropy = bytearray()
    for value in int(stream, 2).to_bytes(len(stream) // 8, "big"):
        entropy.append(value)
        if value == 0xFF:
            entropy.append(0x00)  # byte stuffing

    def segment(marker, payload):
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    n = len(planes)
    sof = bytes([precision]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes([n])
    sof += b"".join(bytes([c + 1, 0x11, 0]) for c in range(n))
    dht = bytes([0x00, 0, 0, 0, 0, 17] + [0] * 11) + bytes(range(17))
    sos = bytes([n]) + b"".join(bytes([c + 1, 0x00]) for c in range(n)) + bytes([predictor, 0, 0])
    return b"\xff\xd8" + segment(0xC3, sof) + segment(0xC4, dht) + segment(0xDA, sos) + bytes(entropy) + b"\xff\xd9"


def _encode_pillow_jpeg(frame):
    buffer = io.BytesIO()
    image = Image.fromarray(frame)
    options = {"subsampling": 1} if image.mode == "RGB" else {}  # 4:2:2, as YBR_FULL_422 says
    image.save(buffer, format="JPEG", quality=95, **options)
    return buffer.getvalue()


def write_encoded(path, frames, syntax, photometric="MONOCHROME2", bits=8, **options):
    """``frames`` ((F, H, W) grey or (F, H, W, 3) RGB, uint8 or uint16 of ``bits`` bits stored) written in
    transfer syntax ``syntax``; ``options`` go to the encoder (pydicom's ``compress``, or ``predictor`` for JPEG
    lossless). RGB is stored as YBR_FULL_422 in JPEG baseline / extended (Pillow), as RGB elsewhere."""
    frames = np.asarray(frames)
    write_dicom(path, frames, photometric=photometric, bits=8 if bits == 8 else 16)
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit = bits, bits - 1
    if syntax in (JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1):
        if syntax in (JPEGLossless, JPEGLosslessSV1):
            predictor = options.get("predictor", 1)
            encoded = [encode_lossless_jpeg(frame, bits, predictor) for frame in frames]
        else:
            assert bits == 8, "Pillow writes 8-bit JPEG only"
            encoded = [_encode_pillow_jpeg(frame) for frame in frames]
            if photometric == "RGB":
                ds.PhotometricInterpretation = "YBR_FULL_422"
            ds.LossyImageCompression = "01"
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
    elif syntax == DeflatedExplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = syntax
    elif syntax != ExplicitVRLittleEndian:
        ds.compress(syntax, **options)
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    return path


@pytest.fixture(scope="module")
def cine():
    """A 3-frame phantom ultrasound cine, (3, 48, 64) uint8: a benign mass, the probe sliding sideways."""
    image = generate_image(np.random.default_rng(3), 1, height=48, width=80).image
    return np.stack([image[:, 8 * k:8 * k + 64] for k in range(3)])


@pytest.fixture(scope="module")
def doppler(cine):
    """(48, 64, 3) uint8 RGB: the first frame in grey with a colour-Doppler-like red / blue box."""
    rgb = np.repeat(cine[0][:, :, None], 3, axis=2)
    rgb[10:24, 20:34] = (200, 30, 30)
    rgb[24:34, 20:34] = (30, 60, 220)
    return rgb


#: (id, transfer syntax, encoder options, bits stored, what is checked: "exact", an int = largest |difference|
#: in stored values, or a float = smallest PSNR in dB on the 8-bit images). The JPEG-LS bound is its NEAR.
GENERATED = [
    ("jpeg-baseline", JPEGBaseline8Bit, {}, 8, 35.0),
    ("jpeg-extended-8bit", JPEGExtended12Bit, {}, 8, 35.0),  # process 2 data under .51 (Pillow cannot write 12)
    ("jpeg-lossless-sv1", JPEGLosslessSV1, {"predictor": 1}, 8, "exact"),
    ("jpeg-lossless-p2", JPEGLossless, {"predictor": 2}, 8, "exact"),
    ("jpeg-lossless-p5-12bit", JPEGLossless, {"predictor": 5}, 12, "exact"),
    ("jpeg-lossless-p7-16bit", JPEGLossless, {"predictor": 7}, 16, "exact"),
    ("jpeg-ls-lossless", JPEGLSLossless, {}, 8, "exact"),
    ("jpeg-ls-lossless-12bit", JPEGLSLossless, {}, 12, "exact"),
    ("jpeg-ls-near-2", JPEGLSNearLossless, {"jls_error": 2}, 8, 2),
    ("jpeg2000-lossless", JPEG2000Lossless, {}, 8, "exact"),
    ("jpeg2000-lossless-16bit", JPEG2000Lossless, {}, 16, "exact"),
    ("jpeg2000-lossy", JPEG2000, {"j2k_psnr": [42]}, 8, 38.0),
    ("rle", RLELossless, {}, 8, "exact"),
    ("rle-16bit", RLELossless, {}, 16, "exact"),
    ("deflate", DeflatedExplicitVRLittleEndian, {}, 8, "exact"),
]


def _grey_frames(cine, bits):
    """The cine at ``bits`` bits: 8 as it is; more: scaled to the full range plus a pixel-wise ramp."""
    if bits == 8:
        return cine
    ramp = np.arange(cine[0].size).reshape(cine[0].shape) % 16
    return (cine.astype(np.uint32) * ((1 << bits) - 1) // 255 - ramp).clip(0).astype(np.uint16)


def _check_loss(decoded, expected, check, bits):
    diff = abs_diff(decoded, expected)
    if check == "exact":
        assert diff.max() == 0
    elif isinstance(check, int):
        assert 0 < diff.max() <= check, diff.max()
    else:
        assert psnr(decoded, expected, peak=(1 << bits) - 1) >= check


@pytest.mark.parametrize("name, syntax, options, bits, check", GENERATED, ids=[g[0] for g in GENERATED])
def test_generated_grey_cine_every_frame(tmp_path, cine, name, syntax, options, bits, check):
    frames = _grey_frames(cine, bits)
    reference = write_encoded(tmp_path / "reference.dcm", frames, ExplicitVRLittleEndian, bits=bits)
    path = write_encoded(tmp_path / f"{name}.dcm", frames, syntax, bits=bits, **options)
    for frame in (0, 1, 2, -1):
        decoded, _ = raw_frame(path, frame % 3)
        _check_loss(decoded, frames[frame], check, bits)
        image, record = demo_read(path, frame)
        assert (record["frame"], record["num_frames"]) == (frame % 3, 3)
        expected, _ = demo_read(reference, frame)  # the uncompressed file through the same conversion
        _check_loss(image, expected, check if check == "exact" else 30.0, 8)
    with pytest.raises(DatasetError, match="frame 3 asked but the file holds 3 frames"):
        load_image(path, frame=3)


#: the colour cases: JPEG-LS and JPEG 2000 lossless keep RGB; RLE is also checked with YBR_FULL data.
GENERATED_COLOUR = [g for g in GENERATED if g[3] == 8 and g[0] not in ("deflate",)]


@pytest.mark.parametrize("name, syntax, options, bits, check", GENERATED_COLOUR, ids=[g[0] for g in GENERATED_COLOUR])
def test_generated_colour_comes_out_in_rgb(tmp_path, doppler, name, syntax, options, bits, check):
    path = write_encoded(tmp_path / f"{name}.dcm", doppler[None], syntax, photometric="RGB", **options)
    image, record = demo_read(path)
    assert record["num_frames"] == 1
    if syntax in (JPEGBaseline8Bit, JPEGExtended12Bit):
        assert pydicom.dcmread(path).PhotometricInterpretation == "YBR_FULL_422"
        check = 30.0  # chroma subsampled at the box edges
    _check_loss(image, doppler, check, 8)
    assert abs_diff(image[14:20, 24:30], (200, 30, 30)).max() <= 12  # the red box is red
    assert abs_diff(image[27:31, 24:30], (30, 60, 220)).max() <= 12  # the blue box is blue


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless], ids=["native", "rle"])
def test_generated_ybr_full_and_422_come_out_in_rgb(tmp_path, doppler, syntax):
    """YBR_FULL (any codec keeps it) and uncompressed YBR_FULL_422 (Y Y Cb Cr per pixel pair, as ultrasound
    machines store it) are converted to RGB."""
    ybr = convert_color_space(doppler, "RGB", "YBR_FULL")
    path = write_encoded(tmp_path / "ybr_full.dcm", ybr[None], syntax, photometric="YBR_FULL")
    image, _ = demo_read(path)
    assert abs_diff(image, doppler).max() <= 2  # the colour transform's rounding
    if syntax != ExplicitVRLittleEndian:
        return
    pairs = ybr.reshape(48, 32, 2, 3).astype(np.int64)
    packed = np.stack([pairs[:, :, 0, 0], pairs[:, :, 1, 0], (pairs[:, :, 0, 1] + pairs[:, :, 1, 1] + 1) // 2,
                       (pairs[:, :, 0, 2] + pairs[:, :, 1, 2] + 1) // 2], axis=2).astype(np.uint8)
    write_dicom(tmp_path / "ybr422.dcm", doppler, photometric="YBR_FULL_422")
    ds = pydicom.dcmread(tmp_path / "ybr422.dcm")
    ds.PixelData = packed.tobytes()
    ds.save_as(tmp_path / "ybr422.dcm")
    image, _ = demo_read(tmp_path / "ybr422.dcm")
    inside = np.ones((48, 64), bool)
    inside[:, [19, 20, 33, 34]] = False  # pixel pairs across the box's left / right edges share chroma
    assert abs_diff(image[inside], doppler[inside]).max() <= 2
    assert psnr(image, doppler) > 30


def test_every_syntax_a_scanner_writes_is_covered():
    """The transfer syntaxes scanners write, each by a bundled and / or a generated file above."""
    covered = {str(b[1]) for b in BUNDLED} | {str(g[1]) for g in GENERATED}
    wanted = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
              "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
              "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99"}
    assert wanted <= covered, wanted - covered


# ---------------------------------------------------------------------------------------------------------------
# missing decoders and bad data
# ---------------------------------------------------------------------------------------------------------------

def _as_if_not_installed(monkeypatch, syntax, plugins):
    """pydicom's decoder for ``syntax`` as it is when the packages of ``plugins`` ({label: pydicom's requirement
    strings}) are not installed: those plugins move from its available to its unavailable ones."""
    decoder = get_decoder(syntax)
    available = {k: v for k, v in decoder._available.items() if k not in plugins}
    monkeypatch.setattr(decoder, "_available", available)
    monkeypatch.setattr(decoder, "_unavailable", {**decoder._unavailable, **plugins})


PYLIBJPEG = {"pylibjpeg": ("pylibjpeg>=2.0", "pylibjpeg-libjpeg>=2.1")}


def test_missing_decoder_names_file_syntax_and_package(monkeypatch, tmp_path):
    path = bundled("MR_small_jpeg_ls_lossless.dcm")
    _as_if_not_installed(monkeypatch, JPEGLSLossless, {**PYLIBJPEG, "pyjpegls": ("numpy", "pyjpegls>=1.2")})
    with pytest.raises(DatasetError) as err:
        load_image(path)
    message = str(err.value)
    assert message.startswith(path + ": no decoder is installed for its transfer syntax "
                              "JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80)")
    assert "install pylibjpeg>=2.0 with pylibjpeg-libjpeg>=2.1, or pyjpegls>=1.2" in message
    assert "python-gdcm>=3.0.10" in message and "tools/setup_env.sh" in message
    # the demo goes on with the other files and lists this one under its errors
    other = write_encoded(tmp_path / "rle.dcm", np.zeros((1, 8, 8), np.uint8), RLELossless)
    predictor = RecordingPredictor()
    summary = predict_files(predictor, [path, str(other)], None, progress=False, log=lambda *a: None)
    assert [e["file"] for e in summary["errors"]] == [path] and len(summary["images"]) == 1
    assert "JPEG-LS Lossless Image Compression" in summary["errors"][0]["error"]


def test_12_bit_jpeg_with_only_pillow_says_what_to_install(monkeypatch):
    """The first failure reported: Pillow alone refuses 12-bit JPEG Extended."""
    path = bundled("JPGExtended.dcm")
    _as_if_not_installed(monkeypatch, JPEGExtended12Bit, PYLIBJPEG)
    assert get_decoder(JPEGExtended12Bit).is_available  # Pillow is there, but cannot read 12 bits
    with pytest.raises(DatasetError, match=r"JPGExtended\.dcm: cannot decode the DICOM pixel data \(JPEG Extended "
                                           r"\(Process 2 and 4\) \(1\.2\.840\.10008\.1\.2\.4\.51\)\).*12-bit") as err:
        load_image(path)
    assert str(err.value).endswith("decoders that may read it but are not installed: "
                                   "pylibjpeg>=2.0 with pylibjpeg-libjpeg>=2.1")


def test_corrupt_compressed_data_names_the_syntax_and_no_package(tmp_path):
    path = bundled("JPEG2000-embedded-sequence-delimiter.dcm")  # 4 bytes of the code stream overwritten
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetError, match=r"cannot decode the DICOM pixel data \(JPEG 2000 Image Compression "
                                               r"\(1\.2\.840\.10008\.1\.2\.4\.91\)\)") as err:
            load_image(path)
    assert str(err.value).startswith(path) and "install" not in str(err.value)
    # an unknown (private) transfer syntax
    other = write_encoded(tmp_path / "private.dcm", np.zeros((1, 8, 8), np.uint8), RLELossless)
    ds = pydicom.dcmread(other)
    ds.file_meta.TransferSyntaxUID = UID("1.2.826.0.1.3680043.9.9999.1")
    ds.save_as(other)
    with pytest.raises(DatasetError, match=r"private\.dcm: pydicom has no decoder for its transfer syntax "
                                           r"1\.2\.826\.0\.1\.3680043\.9\.9999\.1"):
        load_image(other)
