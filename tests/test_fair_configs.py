"""Fair baselines: the rows of one results table share one optimisation recipe and differ only in what the row is
about. Every shipped BUSI and Phantom config is loaded (``wssdl_d2.config.merge_config``: Detectron2's
defaults, the WSSDL keys, the file), flattened to ``KEY -> value``, and two rows of one table may differ only in the keys of
``ALLOWED``. Every config file must belong to a table, so a new config cannot escape the check.

"Strong images per step" is checked on top of the key rule from what the trainer does: a row whose DATASETS.TRAIN
holds strong images trains WSSDL.STRONG_PER_BATCH of them per step (an empty weak stream adds nothing, see
:func:`wssdl_d2.data.streams.stream_sizes`), so every row with strong images must have the same STRONG_PER_BATCH.
"""
import glob
import os

import pytest
from detectron2.config import CfgNode

from wssdl_d2.config import merge_config
from wssdl_d2.data.streams import stream_sizes

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")

PAPER_ROWS = ("strong_only", "fully_supervised", "wssdl", "wssdl_alternating", "wssdl_static_alpha",
              "wssdl_moi_abnormal", "wssdl_moi_benign", "wssdl_moi_discriminative", "weak_only_mil")
#: The label-aware mean teacher and its ablations: rows of the same tables, the same recipe.
TEACHER_ROWS = ("wssdl_teacher", "wssdl_teacher_no_label_filter", "wssdl_teacher_no_mil")
#: Rows of the new-site work, BUSI only: strong-only with the ultrasound augmentations.
SITE_ROWS = ("strong_only_ultrasound_aug",)

#: table name -> the config files (relative to configs/) whose rows are compared with each other.
TABLES = {
    "BUSI paper rows": [f"BUSI/{n}.yaml" for n in PAPER_ROWS + TEACHER_ROWS + SITE_ROWS],
    "BUSI ResNet-18 rows": ["BUSI/strong_only_r18.yaml", "BUSI/wssdl_r18.yaml"],
    "Phantom paper rows": [f"Phantom/{n}.yaml" for n in PAPER_ROWS + TEACHER_ROWS],
    "Phantom EfficientNet rows": ["Phantom/strong_only_effnet.yaml", "Phantom/wssdl_effnet.yaml"],
    "Phantom quickstart pair": ["Phantom/quickstart_strong_only.yaml", "Phantom/quickstart_wssdl.yaml"],
    # Detectron2's own trainer, mapper and stock model (WSSDL.TRAINER detectron2): a row of its own by design, set
    # on top of Detectron2's defaults only, so no project recipe is shared with it (tests/test_reference_trainer.py)
    "BUSI plain Detectron2 reference": ["BUSI/plain_detectron2.yaml"],
}

#: Keys (exact, or a prefix ending in ".") in which two rows of a table may differ, each with why.
ALLOWED = {
    # what a row is about: the model that can learn from weak images, and the data it trains on
    "MODEL.META_ARCHITECTURE": "WSSDLRCNN (MIL loss) vs Detectron2's GeneralizedRCNN",
    "MODEL.PROPOSAL_GENERATOR.NAME": "StrongOnlyRPN: the RPN learns from strong images only",
    "MODEL.ROI_HEADS.NAME": "MILROIHeads: the box head's MIL loss on weak images",
    "DATASETS.TRAIN": "which images and which supervision (the row's subject)",
    "OUTPUT_DIR": "where the row's run is written",
    # the method's own knobs
    "WSSDL.MIL.": "the MIL term: mass-of-interest rules, alpha schedule, class weights",
    "WSSDL.BATCH_MODE": "combined vs alternating is the alternating ablation's subject",
    "WSSDL.WEAK_PER_BATCH": "weak images per step (0 images are drawn when a row has no weak stream)",
    "WSSDL.TEACHER.": "the label-aware mean teacher: on or off, and its ablations' subject",
    "WSSDL.AUG.ULTRASOUND.": "the ultrasound augmentations: on or off is the augmentation pair's subject",
    # not used by the trainer: each step holds WSSDL.STRONG_PER_BATCH + WEAK_PER_BATCH images per process
    # (wssdl_d2/engine/trainer.py warns when IMS_PER_BATCH disagrees); the configs only document the count.
    "SOLVER.IMS_PER_BATCH": "unused by WSSDLTrainer; documents the images per step of the row",
}


def load_config(path):
    return merge_config(path)


def flatten(node, prefix=""):
    """A CfgNode as {"A.B.C": value}."""
    out = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, CfgNode):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def is_allowed(key):
    return any(key == a or (a.endswith(".") and key.startswith(a)) for a in ALLOWED)


def recipe_differences(rows):
    """{key: {row: value}} for every key outside ``ALLOWED`` whose value differs between the rows
    ({row name: flattened config})."""
    keys = sorted(set().union(*(r.keys() for r in rows.values())))
    out = {}
    for key in keys:
        if is_allowed(key):
            continue
        values = {name: flat.get(key, "<missing>") for name, flat in rows.items()}
        if len({repr(v) for v in values.values()}) > 1:
            out[key] = values
    return out


def has_images_of(cfg, kind):
    """Whether DATASETS.TRAIN holds images of ``kind`` ("strong" or "weak"), from the prepared split names
    (``*_train_strong_<P>`` / ``*_train_all``: boxes; ``*_train_weak_<P>``: image labels only)."""
    names = list(cfg.DATASETS.TRAIN)
    if kind == "weak":
        return any("_train_weak_" in n for n in names)
    return any("_train_strong_" in n or n.endswith("_train_all") for n in names)


def strong_images_per_step(cfg):
    """Strong images one step of the row trains on per process (0 for a row without strong images), as
    :func:`wssdl_d2.data.streams.stream_sizes` sizes the streams."""
    strong, _ = stream_sizes(cfg, int(has_images_of(cfg, "strong")), int(has_images_of(cfg, "weak")))
    return strong


def _rel(path):
    return os.path.relpath(path, CONFIGS).replace(os.sep, "/")


def test_every_shipped_config_is_in_a_table():
    shipped = {_rel(p) for folder in ("BUSI", "Phantom") for p in glob.glob(os.path.join(CONFIGS, folder, "*.yaml"))
               if not os.path.basename(p).startswith("Base-")}
    listed = [p for rows in TABLES.values() for p in rows]
    assert len(listed) == len(set(listed)), "a config is listed in two tables"
    assert shipped == set(listed), (f"configs in no table: {sorted(shipped - set(listed))}; "
                                    f"listed but missing: {sorted(set(listed) - shipped)}")


@pytest.mark.parametrize("table", sorted(TABLES))
def test_rows_of_a_table_share_one_recipe(table):
    rows = {p: flatten(load_config(os.path.join(CONFIGS, p))) for p in TABLES[table]}
    differences = recipe_differences(rows)
    lines = [f"  {key}: " + ", ".join(f"{row}={value!r}" for row, value in values.items())
             for key, values in differences.items()]
    assert not differences, f"{table}: rows differ outside the allowed keys:\n" + "\n".join(lines)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_rows_with_boxes_train_the_same_strong_images_per_step(table):
    per_step = {p: strong_images_per_step(load_config(os.path.join(CONFIGS, p))) for p in TABLES[table]}
    with_boxes = {p: n for p, n in per_step.items() if n}
    assert len(set(with_boxes.values())) == 1, f"{table}: strong images per step differ: {with_boxes}"


def test_the_check_fails_on_a_row_with_another_recipe(tmp_path):
    """A deliberately broken row (strong-only without gradient clipping and another LR, as the BUSI baselines
    once were) is caught, naming the keys."""
    broken = tmp_path / "strong_only_unfair.yaml"
    broken.write_text(f'_BASE_: "{os.path.join(CONFIGS, "BUSI", "strong_only.yaml")}"\n'
                      "SOLVER:\n  BASE_LR: 0.02\n  CLIP_GRADIENTS:\n    ENABLED: False\n")
    rows = {p: flatten(load_config(os.path.join(CONFIGS, p))) for p in ("BUSI/wssdl.yaml", "BUSI/strong_only.yaml")}
    assert not recipe_differences(rows)
    rows["broken"] = flatten(load_config(str(broken)))
    assert set(recipe_differences(rows)) == {"SOLVER.BASE_LR", "SOLVER.CLIP_GRADIENTS.ENABLED"}


def test_strong_images_per_step_counts_only_the_strong_stream(tmp_path):
    """A strong-only row trains STRONG_PER_BATCH strong images per step, not STRONG + WEAK_PER_BATCH: the same
    strong batch as the joint row; a row with another STRONG_PER_BATCH is caught by the key rule."""
    strong = load_config(os.path.join(CONFIGS, "BUSI", "strong_only.yaml"))
    joint = load_config(os.path.join(CONFIGS, "BUSI", "wssdl.yaml"))
    weak_only = load_config(os.path.join(CONFIGS, "BUSI", "weak_only_mil.yaml"))
    assert strong_images_per_step(strong) == strong_images_per_step(joint) == joint.WSSDL.STRONG_PER_BATCH == 2
    assert strong_images_per_step(weak_only) == 0
    broken = tmp_path / "strong_only_4.yaml"
    broken.write_text(f'_BASE_: "{os.path.join(CONFIGS, "BUSI", "strong_only.yaml")}"\n'
                      "WSSDL:\n  STRONG_PER_BATCH: 4\n")
    rows = {"wssdl": flatten(joint), "broken": flatten(load_config(str(broken)))}
    assert "WSSDL.STRONG_PER_BATCH" in recipe_differences(rows)


def test_a_strong_only_step_draws_strong_per_batch_images(phantom_root, tiny_cfg):
    """The trainer's own streams on the test phantom: a strong-only run's batches hold STRONG_PER_BATCH images,
    the joint run's STRONG_PER_BATCH strong + WEAK_PER_BATCH weak ones."""
    import itertools

    from detectron2.data import DatasetCatalog

    from wssdl_d2.data.streams import build_stream_loader

    strong = DatasetCatalog.get("testphantom_train_strong_30")
    weak = DatasetCatalog.get("testphantom_train_weak_30")
    cfg = tiny_cfg(**{"WSSDL.STRONG_PER_BATCH": 2, "WSSDL.WEAK_PER_BATCH": 3})
    for dicts, expected in ((strong, ["strong"] * 2), (strong + weak, ["strong"] * 2 + ["weak"] * 3)):
        for batch in itertools.islice(build_stream_loader(cfg, dicts, dict), 5):
            assert [d["supervision"] for d in batch] == expected
