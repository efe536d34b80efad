"""One reader, one rule: preparation, the dataset checker, the demo and Detectron2's training / test mappers read a
file into the same pixels, size and orientation (16-bit PNG, EXIF-rotated JPEG), and DICOM windows follow their
VOILUTFunction (SIGMOID is not linear)."""
import numpy as np
import pytest
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils
from PIL import Image, ImageOps
from test_demo_image_io import write_dicom

from wssdl_d2.data import WSSDLDatasetMapper
from wssdl_d2.data.busi import read_busi
from wssdl_d2.data.image_io import read_image

EXIF_ORIENTATION = 0x0112


def _no_augmentation(tiny_cfg):
    return tiny_cfg(**{"WSSDL.AUG.FLIP": "False", "WSSDL.AUG.BRIGHTNESS": "0.0", "WSSDL.AUG.CONTRAST": "(1.0, 1.0)"})


def test_16_bit_png_is_read_alike_for_training_evaluation_and_the_demo(tmp_path, tiny_cfg):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4096, size=(96, 128)).astype(np.uint16)  # 12-bit scanner data in a 16-bit PNG
    path = str(tmp_path / "deep.png")
    Image.fromarray(values).save(path)
    expected = read_image(path)  # the demo's (and the checker's) reader: min..max stretched to 0..255
    assert 100 < expected.mean() < 155
    record = {"file_name": path, "height": 96, "width": 128, "image_id": 0, "annotations": [],
              "supervision": "weak", "image_label": 0}
    cfg = _no_augmentation(tiny_cfg)
    test_image = DatasetMapper(cfg, is_train=False)(record)["image"].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(test_image, expected)  # before: saturated at 255 (mean 254)
    train_image = WSSDLDatasetMapper(cfg)({**record, "supervision": "strong"})["image"].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(train_image, expected)
    np.testing.assert_array_equal(detection_utils.read_image(path, "RGB"), read_image(path, "RGB"))


def _exif_rotated_busi(tmp_path, orientation):
    """A BUSI tree with one benign JPEG stored 64 wide x 40 high and EXIF ``orientation``; its mask is drawn on
    the image as displayed. Returns (image path, displayed RGB array, mask box)."""
    stored = np.zeros((40, 64, 3), np.uint8)
    stored[4:16, 6:26] = 255  # the lesion, near the stored image's top-left corner
    folder = tmp_path / "busi" / "benign"
    folder.mkdir(parents=True)
    path = folder / "scan.jpg"
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    with Image.open(path) as im:
        displayed = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    mask = (displayed[:, :, 0] > 128).astype(np.uint8) * 255
    Image.fromarray(mask).save(folder / "scan_mask.png")
    ys, xs = np.nonzero(mask)
    return str(path), displayed, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("orientation", [3, 6, 8])  # 180 degrees, 90 clockwise, 90 counter-clockwise
def test_exif_rotated_jpeg_is_seen_alike_by_preparation_and_training(tmp_path, tiny_cfg, orientation):
    path, displayed, mask_box = _exif_rotated_busi(tmp_path, orientation)
    (record,) = read_busi(str(tmp_path / "busi"), progress=False)  # before: the mask "is of another size"
    assert (record.height, record.width) == displayed.shape[:2]
    assert record.boxes == [mask_box]
    for image in (read_image(path, "RGB"), detection_utils.read_image(path, "RGB")):
        assert image.shape == displayed.shape
        x0, y0, x1, y1 = mask_box
        assert image[y0:y1, x0:x1].mean() > 200 and image.mean() < 80  # the box lies on the lesion
    cfg = _no_augmentation(tiny_cfg)
    d2 = {"file_name": path, "height": record.height, "width": record.width, "image_id": 0, "image_label": 1,
          "supervision": "weak", "annotations": []}
    image = DatasetMapper(cfg, is_train=False)(d2)["image"]  # no "Mismatched image shape"
    assert image.shape[0] == 3


def _sigmoid_dicom(path, function):
    values = np.array([[0, 1750, 2250, 2500, 4000]], dtype=np.uint16)
    extra = {"VOILUTFunction": function} if function else {}
    return write_dicom(path, values, bits=16, WindowCenter=2000, WindowWidth=1000, **extra)


def test_dicom_sigmoid_window_is_not_linear(tmp_path):
    x = np.array([0, 1750, 2250, 2500, 4000], dtype=np.float64)
    sigmoid = np.round(255.0 / (1.0 + np.exp(-4.0 * (x - 2000) / 1000)))  # PS3.3 C.11.2.1.3.1
    np.testing.assert_array_equal(read_image(_sigmoid_dicom(tmp_path / "s.dcm", "SIGMOID"))[0, :, 0], sigmoid)
    linear = np.clip(np.round(((x - 1999.5) / 999 + 0.5) * 255), 0, 255)  # PS3.3 C.11.2.1.2.1
    np.testing.assert_array_equal(read_image(_sigmoid_dicom(tmp_path / "l.dcm", None))[0, :, 0], linear)
    np.testing.assert_array_equal(read_image(_sigmoid_dicom(tmp_path / "ll.dcm", "LINEAR"))[0, :, 0], linear)
    assert not np.array_equal(sigmoid, linear)
