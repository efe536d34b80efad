import numpy as np

from wssdl_d2.data.masks import boxes_from_mask
from wssdl_d2.data.phantom import generate_image, write_phantom_dataset


def test_deterministic_from_seed():
    a = generate_image(np.random.default_rng(3), 2, 64, 80)
    b = generate_image(np.random.default_rng(3), 2, 64, 80)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks[0], b.masks[0])
    c = generate_image(np.random.default_rng(4), 2, 64, 80)
    assert not np.array_equal(a.image, c.image)


def test_labels_shapes_and_geometry():
    rng = np.random.default_rng(0)
    ratios = {1: [], 2: []}
    for label in (0, 1, 2):
        for _ in range(8):
            sample = generate_image(rng, label, 128, 160)
            assert sample.image.shape == (128, 160) and sample.image.dtype == np.uint8
            if label == 0:
                assert sample.masks == []
                continue
            assert len(sample.masks) >= 1
            x0, y0, x1, y1 = boxes_from_mask(sample.masks[0])[0]
            ratios[label].append((y1 - y0) / (x1 - x0))
    assert np.median(ratios[1]) < 1.0, "benign masses are wider than tall"
    assert np.median(ratios[2]) > 1.0, "malignant masses are taller than wide"


def test_mass_is_hypoechoic():
    sample = generate_image(np.random.default_rng(1), 1, 128, 160)
    mask = sample.masks[0]
    assert sample.image[mask].mean() < 0.7 * sample.image[~mask].mean()


def test_written_in_busi_layout(tmp_path):
    n = write_phantom_dataset(tmp_path, counts=(1, 2, 2), height=48, width=64, seed=0, second_lesion_prob=1.0)
    assert n == 5
    assert (tmp_path / "normal" / "normal (1).png").exists()
    assert (tmp_path / "normal" / "normal (1)_mask.png").exists()
    assert (tmp_path / "benign" / "benign (2)_mask.png").exists()
    assert any(p.name.endswith("_mask_1.png") for p in tmp_path.glob("*/*.png"))


def test_ambiguity_mixes_the_class_signs():
    def taller_fraction(ambiguity):
        rng = np.random.default_rng(7)
        ratios = []
        for _ in range(30):
            x0, y0, x1, y1 = boxes_from_mask(generate_image(rng, 1, 96, 128, ambiguity=ambiguity).masks[0])[0]
            ratios.append((y1 - y0) > (x1 - x0))
        return np.mean(ratios)

    assert taller_fraction(0.0) == 0.0  # benign: always wider than tall
    assert 0.2 < taller_fraction(1.0) < 0.8  # signs drawn from either class
