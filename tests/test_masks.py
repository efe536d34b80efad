import numpy as np
import pytest

from wssdl_d2.data.masks import boxes_from_mask


def test_empty_mask_gives_no_box():
    assert boxes_from_mask(np.zeros((20, 30), np.uint8)).shape == (0, 4)


def test_single_rectangle_box_uses_pixel_edges():
    mask = np.zeros((20, 30), np.uint8)
    mask[5:9, 10:17] = 255  # rows 5..8, columns 10..16
    np.testing.assert_array_equal(boxes_from_mask(mask), [[10, 5, 17, 9]])


def test_several_components_union_and_separate():
    mask = np.zeros((40, 40), bool)
    mask[2:10, 3:8] = True
    mask[20:30, 25:35] = True
    np.testing.assert_array_equal(boxes_from_mask(mask, "union"), [[3, 2, 35, 30]])
    separate = boxes_from_mask(mask, "separate")
    assert sorted(map(tuple, separate.tolist())) == [(3, 2, 8, 10), (25, 20, 35, 30)]


def test_specks_are_ignored():
    mask = np.zeros((50, 50), bool)
    mask[10:30, 10:30] = True  # 400 px lesion
    mask[45, 45] = True  # 1 px of annotation noise
    np.testing.assert_array_equal(boxes_from_mask(mask), [[10, 10, 30, 30]])
    np.testing.assert_array_equal(boxes_from_mask(mask, min_component_fraction=0), [[10, 10, 46, 46]])


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        boxes_from_mask(np.ones((2, 2)), mode="bogus")
