"""Near-duplicate groups on generated images: crops, shifts, rescales and adjacent-frame-like deformations of one
phantom scan group with it (the perceptual hash alone misses the crop); different scans with the same layout, or
sharing only a burnt-in text banner and a ruler, do not."""
import json

import cv2
import numpy as np
import pytest

from wssdl_d2.data.feature_matching import OrbParams, orb_features, verify_pair
from wssdl_d2.data.labels import BENIGN, MALIGNANT
from wssdl_d2.data.near_duplicates import (duplicate_parameters, group_near_duplicates, near_duplicate_groups,
                                           near_duplicate_pairs, perceptual_hashes)
from wssdl_d2.data.phantom import generate_image

H, W = 256, 320


def _scan(seed, label=BENIGN, height=H + 40, width=W + 40):
    return generate_image(np.random.default_rng(seed), label, height, width).image


def _burn_overlay(image):
    """The same scanner overlay on any image: a text banner inside the image and a depth ruler on the right."""
    out = image.copy()
    h, w = out.shape
    cv2.putText(out, "RT UOQ 2CM FN LEFT", (int(0.12 * w), int(0.68 * h)), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
    for k, y in enumerate(range(12, h - 12, 12)):
        cv2.line(out, (w - 18, y), (w - 18 + (10 if k % 5 == 0 else 5), y), 255, 1)
    return out


def _adjacent_frame(image, seed=0, amplitude=2.0):
    """A slight smooth deformation (+- ``amplitude`` px) and new noise: like the next frame of a sweep."""
    rng = np.random.default_rng(seed)
    h, w = image.shape
    flow = [cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 25) for _ in range(2)]
    flow = [amplitude * f / np.abs(f).max() for f in flow]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(image, gx + flow[0], gy + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(warped + rng.normal(0, 3, warped.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """name -> path of the generated PNGs (grayscale)."""
    folder = tmp_path_factory.mktemp("near_duplicates")
    big = _scan(3)
    base = big[20:20 + H, 20:20 + W]
    h8, w8 = int(0.8 * H), int(0.8 * W)
    made = {
        "base": base,
        "crop80": base[10:10 + h8, 40:40 + w8],                              # 80% crop, off centre
        "shift": big[34:34 + H, 2:2 + W],                                     # the probe moved
        "rescale80": cv2.resize(base, (int(0.8 * W), int(0.8 * H)), interpolation=cv2.INTER_AREA),
        "adjacent": _adjacent_frame(base),
        "other": _scan(11)[20:20 + H, 20:20 + W],                            # same layout, another scan
        "other_malignant": _scan(12, MALIGNANT)[20:20 + H, 20:20 + W],
        "overlay_a": _burn_overlay(_scan(21)[20:20 + H, 20:20 + W]),         # only the overlay in common
        "overlay_b": _burn_overlay(_scan(22)[20:20 + H, 20:20 + W]),
    }
    paths = {}
    for name, image in made.items():
        paths[name] = str(folder / f"{name}.png")
        cv2.imwrite(paths[name], image)
    return paths


SAME = ["base", "crop80", "shift", "rescale80", "adjacent"]
DIFFERENT = ["other", "other_malignant", "overlay_a", "overlay_b"]


def test_crops_shifts_rescales_and_adjacent_frames_group_and_other_scans_do_not(images):
    names = SAME + DIFFERENT
    groups = near_duplicate_groups([images[n] for n in names], progress=False)
    assert groups.shape == (len(names),) and groups.dtype == np.int64
    by_name = dict(zip(names, groups.tolist()))
    assert {by_name[n] for n in SAME} == {0}, by_name
    assert len({by_name[n] for n in DIFFERENT}) == len(DIFFERENT), by_name  # each its own group
    assert not {by_name[n] for n in DIFFERENT} & {0}
    # every variant is linked to the base directly, by the feature matcher, with the transform it was made with
    pairs = {(names[p.i], names[p.j]): p for p in near_duplicate_pairs([images[n] for n in names], progress=False)}
    for variant, scale in (("crop80", 1 / 0.8), ("shift", 1.0), ("rescale80", 0.8), ("adjacent", 1.0)):
        pair = pairs[("base", variant)]
        assert pair.orb is not None and pair.orb.linked and "orb" in pair.evidence, (variant, pair)
        # features live on images resized to the same longer side: a crop of 80% shows 1.25x larger
        assert abs(pair.orb.scale - (1.0 if variant == "rescale80" else scale)) < 0.05, (variant, pair.orb)
        assert abs(pair.orb.rotation_deg) < 2
    # a point at (x, y) in the base is at (x + 18, y - 14) in the shifted window: about (+0.056, -0.055) of its size
    shift = pairs[("base", "shift")].orb.shift
    assert 0.04 < shift[0] < 0.07 and -0.07 < shift[1] < -0.04, shift


def test_the_perceptual_hash_alone_misses_the_crop(images):
    paths = [images["base"], images["crop80"], images["other"]]
    old = group_near_duplicates(perceptual_hashes(paths, progress=False))
    assert old[0] != old[1]
    np.testing.assert_array_equal(near_duplicate_groups(paths, method="phash", progress=False), old)
    new = near_duplicate_groups(paths, progress=False)
    assert new[0] == new[1] != new[2]


def test_a_shared_text_banner_and_ruler_match_but_do_not_link(images):
    params = OrbParams()
    a, b = (orb_features(cv2.imread(images[n], cv2.IMREAD_GRAYSCALE), params) for n in ("overlay_a", "overlay_b"))
    evidence = verify_pair(a, b, params)
    # the overlay itself is found: matches at the identity transform, crowded on the banner and the ruler
    assert evidence.inliers >= params.min_inliers, evidence
    assert abs(evidence.scale - 1) < 0.05 and abs(evidence.shift[0]) < 0.02 and abs(evidence.shift[1]) < 0.02
    assert not evidence.linked and evidence.extent < params.min_extent, evidence
    # without the spread tests the same evidence would have linked them
    loose = OrbParams(min_extent=0.08, min_identity_extent=0.08)
    assert verify_pair(a, b, loose).linked


def test_parameters_are_recorded_and_unknown_methods_refused():
    record = duplicate_parameters("phash+orb", 6)
    assert record["method"] == "phash+orb" and record["max_hash_distance"] == 6
    assert record["orb"]["min_inliers"] == OrbParams().min_inliers and record["orb"]["scale_range"] == [0.5, 2.0]
    json.dumps(record)
    assert "orb" not in duplicate_parameters("phash")
    with pytest.raises(ValueError, match="near-duplicate method"):
        near_duplicate_groups([], method="sift")


def test_confirmed_same_lesion_pairs_join_one_group_and_bad_rows_name_the_line(tmp_path):
    from wssdl_d2.data.near_duplicates import merge_confirmed_pairs, read_confirmed_pairs

    names = ["benign/a.png", "benign/b.png", "malignant/c.png", "malignant/d.png", "normal/e.png"]
    groups = np.array([0, 1, 2, 2, 3])
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("file_a,file_b,same_lesion,note\nbenign/a.png,malignant/d.png,1,crop\n"
                     "benign/b.png,normal/e.png,0,different lesion\n")
    merged = merge_confirmed_pairs(groups, read_confirmed_pairs(str(pairs), names))
    assert merged[0] == merged[2] == merged[3]  # a joins c and d's group; the 0 row links nothing
    assert len({merged[1], merged[4], merged[0]}) == 3 and merged.tolist() == [0, 1, 0, 0, 2]
    pairs.write_text("file_a,file_b,same_lesion\nbenign/a.png,benign/zz.png,1\n")
    with pytest.raises(ValueError, match=r"pairs.csv line 2: \['benign/zz.png'\] not in the image pool"):
        read_confirmed_pairs(str(pairs), names)
    pairs.write_text("file_a,file_b,same_lesion\nbenign/a.png,benign/b.png,yes\n")
    with pytest.raises(ValueError, match="line 2: same_lesion must be 0 or 1"):
        read_confirmed_pairs(str(pairs), names)
    pairs.write_text("a,b\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_confirmed_pairs(str(pairs), names)
