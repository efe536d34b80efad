"""image_io reads PNG / JPEG / TIFF and DICOM (monochrome 1/2, RGB, YBR JPEG, palette, RLE multi-frame, windowed
16-bit) into (H, W, 3) uint8 in BGR or RGB; bad files raise DatasetError naming the file.

``write_dicom`` builds small DICOM files for these tests and for the demo / fuzz tests.
"""
import io

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, generate_uid

from wssdl_d2.data.errors import DatasetError
from wssdl_d2.data.image_io import is_dicom, load_image, read_image

ULTRASOUND_SOP = "1.2.840.10008.5.1.4.1.1.6.1"


def write_dicom(path, frames, photometric="MONOCHROME2", bits=8, transfer_syntax=ExplicitVRLittleEndian, **extra):
    """Write ``frames`` ((F, H, W) or (F, H, W, 3) array, or one (H, W[, 3]) frame) as a DICOM file.

    ``transfer_syntax``: ExplicitVRLittleEndian (native), RLELossless (pydicom's own encoder) or JPEGBaseline8Bit
    (frames encoded by Pillow, stored as YBR_FULL_422 like most ultrasound machines). ``extra``: more elements.
    """
    frames = np.asarray(frames)
    color = photometric not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")
    if frames.ndim == (3 if color else 2):
        frames = frames[None]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ULTRASOUND_SOP
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = ULTRASOUND_SOP, meta.MediaStorageSOPInstanceUID, "US"
    ds.Rows, ds.Columns = frames.shape[1:3]
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if color:
        ds.PlanarConfiguration = 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    for key, value in extra.items():
        setattr(ds, key, value)
    data = frames.astype(np.uint8 if bits == 8 else np.uint16)
    if transfer_syntax == JPEGBaseline8Bit:
        ds.PhotometricInterpretation = "YBR_FULL_422"
        encoded = []
        for frame in data:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
            encoded.append(buffer.getvalue())
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
    else:
        ds.PixelData = data.tobytes()
        if transfer_syntax == RLELossless:
            ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def gray():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(24, 32), dtype=np.uint8)


def test_png_jpeg_tiff_bmp_match_opencv_in_bgr_and_rgb(tmp_path, gray):
    color = np.stack([gray, 255 - gray, gray // 2], axis=2)  # RGB
    for ext in ("png", "tif", "bmp"):
        path = tmp_path / f"c.{ext}"
        Image.fromarray(color).save(path)
        np.testing.assert_array_equal(read_image(path, "BGR"), cv2.imread(str(path)))
        np.testing.assert_array_equal(read_image(path, "RGB"), color)
    path = tmp_path / "g.jpg"
    Image.fromarray(gray).save(path, quality=100)
    image = read_image(path)
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    assert np.abs(image[:, :, 0].astype(int) - gray).max() <= 8  # lossy, grayscale replicated
    assert (image[:, :, 0] == image[:, :, 2]).all()


def test_16_bit_png_is_kept_within_8_bits_and_stretched_beyond(tmp_path, gray):
    low = tmp_path / "low.png"
    Image.fromarray(gray.astype(np.uint16)).save(low)
    np.testing.assert_array_equal(read_image(low)[:, :, 1], gray)
    high = tmp_path / "high.png"
    Image.fromarray((gray.astype(np.uint16) * 16 + 1000)).save(high)
    out = read_image(high)[:, :, 1]
    assert out.min() == 0 and out.max() == 255
    assert np.corrcoef(out.ravel(), gray.ravel())[0, 1] > 0.999


def test_multipage_tiff_uses_the_asked_page(tmp_path, gray):
    path = tmp_path / "pages.tif"
    pages = [Image.fromarray(gray), Image.fromarray(255 - gray)]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert load_image(path).num_frames == 2
    np.testing.assert_array_equal(read_image(path, frame=1)[:, :, 0], 255 - gray)
    with pytest.raises(DatasetError, match="frame 5 asked but the file holds 2 frames"):
        read_image(path, frame=5)


def test_dicom_monochrome2_and_monochrome1(tmp_path, gray):
    mono2 = write_dicom(tmp_path / "m2.dcm", gray)
    assert is_dicom(mono2)
    loaded = load_image(mono2, "RGB")
    assert (loaded.source, loaded.photometric, loaded.frame, loaded.num_frames) == ("dicom", "MONOCHROME2", 0, 1)
    np.testing.assert_array_equal(loaded.pixels, np.repeat(gray[:, :, None], 3, axis=2))
    mono1 = write_dicom(tmp_path / "m1.dcm", 255 - gray, photometric="MONOCHROME1")
    np.testing.assert_array_equal(read_image(mono1)[:, :, 0], gray)


def test_dicom_without_extension_is_found_by_its_marker(tmp_path, gray):
    path = write_dicom(tmp_path / "IM0001", gray)
    assert is_dicom(path)
    np.testing.assert_array_equal(read_image(path)[:, :, 0], gray)


def test_dicom_16_bit_window_and_rescale(tmp_path):
    values = np.array([[0, 1000, 2000, 3000, 4000]], dtype=np.uint16)
    path = write_dicom(tmp_path / "w.dcm", values, bits=16, WindowCenter=2000, WindowWidth=4001)
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 64, 128, 191, 255])
    # rescale before the window: stored v -> 2 v - 1000; the window then sees -1000 .. 7000
    path = write_dicom(tmp_path / "r.dcm", values, bits=16, RescaleSlope=2, RescaleIntercept=-1000,
                       WindowCenter=3000, WindowWidth=8001)
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 64, 128, 191, 255])
    # no window: stretched from min..max
    path = write_dicom(tmp_path / "s.dcm", values, bits=16)
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [0, 64, 128, 191, 255])


def test_dicom_rgb_multiframe_rle_uses_the_asked_frame(tmp_path, gray):
    frames = np.stack([np.stack([gray, gray // 2, 255 - gray], axis=2) + k for k in range(3)]).astype(np.uint8)
    path = write_dicom(tmp_path / "cine.dcm", frames, photometric="RGB", transfer_syntax=RLELossless)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == RLELossless
    first = load_image(path, "RGB")
    assert (first.frame, first.num_frames) == (0, 3)
    np.testing.assert_array_equal(first.pixels, frames[0])
    np.testing.assert_array_equal(read_image(path, "RGB", frame=2), frames[2])
    np.testing.assert_array_equal(read_image(path, "RGB", frame=-1), frames[2])
    np.testing.assert_array_equal(read_image(path, "BGR", frame=1), frames[1][:, :, ::-1])
    with pytest.raises(DatasetError, match="frame 3 asked but the file holds 3 frames"):
        read_image(path, frame=3)


def test_dicom_jpeg_ybr_is_converted_to_rgb(tmp_path):
    rgb = np.zeros((32, 48, 3), dtype=np.uint8)
    rgb[:, :24] = (200, 40, 40)
    rgb[:, 24:] = (30, 30, 220)
    path = write_dicom(tmp_path / "jpeg.dcm", np.stack([rgb, rgb[:, ::-1]]), photometric="RGB",
                       transfer_syntax=JPEGBaseline8Bit)
    loaded = load_image(path, "RGB", frame=1)
    assert loaded.photometric == "YBR_FULL_422" and loaded.num_frames == 2
    assert np.abs(loaded.pixels[8:24, 4:20].astype(int) - rgb[8:24, 28:44]).max() < 24


def test_dicom_palette_color(tmp_path):
    index = np.array([[0, 1, 2, 3]], dtype=np.uint8)
    lut = {c: np.zeros(256, dtype=np.uint16) for c in "RGB"}
    lut["R"][1], lut["G"][2], lut["B"][3] = 65535, 65535, 65535
    extra = {f"{name}PaletteColorLookupTableDescriptor": [256, 0, 16] for name in ("Red", "Green", "Blue")}
    extra.update({f"{name}PaletteColorLookupTableData": lut[name[0]].tobytes() for name in ("Red", "Green", "Blue")})
    path = write_dicom(tmp_path / "pal.dcm", index, photometric="PALETTE COLOR", **extra)
    np.testing.assert_array_equal(read_image(path, "RGB")[0], [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]])


@pytest.mark.parametrize("content, message", [
    (b"", "cannot read image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "cannot read image"),
    (b"not an image at all", "cannot read image"),
])
def test_bad_raster_files_raise_dataset_error(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message) as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_truncated_png_and_bad_dicoms_raise_dataset_error(tmp_path, gray):
    good = tmp_path / "good.png"
    Image.fromarray(gray).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DatasetError, match="cannot read image"):
        read_image(cut)
    with pytest.raises(DatasetError, match="image file not found"):
        read_image(tmp_path / "missing.png")
    dicom = write_dicom(tmp_path / "ok.dcm", gray)
    cut_dicom = tmp_path / "cut.dcm"
    cut_dicom.write_bytes(dicom.read_bytes()[:-200])
    with pytest.raises(DatasetError, match="cut.dcm"):
        read_image(cut_dicom)
    no_pixels = tmp_path / "nopix.dcm"
    ds = pydicom.dcmread(dicom)
    del ds.PixelData
    ds.save_as(no_pixels)
    with pytest.raises(DatasetError, match="without pixel data"):
        read_image(no_pixels)
    text = tmp_path / "text.dcm"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="text.dcm"):
        read_image(text)


def test_unsupported_photometric_is_refused(tmp_path, gray):
    path = write_dicom(tmp_path / "hsv.dcm", np.stack([gray] * 3, axis=2), photometric="HSV")
    with pytest.raises(DatasetError, match="unsupported DICOM photometric interpretation 'HSV'"):
        read_image(path)
