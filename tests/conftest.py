"""Shared fixtures: a tiny phantom dataset (generated once per session) and a fast CPU config.

``phantom_root``: a prepared phantom folder (BUSI-layout images in ``images/``, dataset JSON files beside),
registered in Detectron2's catalogs as ``testphantom_<split>``: ``testphantom_train_strong_30``,
``testphantom_train_weak_30``, ``testphantom_train_all``, ``testphantom_val``.

``tiny_cfg(config_file=..., **overrides)``: a function returning a fresh, unfrozen wssdl_d2 config (default
configs/Phantom/strong_only.yaml) on that data with tiny images, small proposal counts and a few iterations, so a
training step takes a fraction of a second on a CPU. ``overrides`` use dotted keys: ``tiny_cfg(**{"SOLVER.MAX_ITER": 8})``.
``tiny_opts``: the same overrides as command-line strings, for ``tools/train_net.py`` in a subprocess.
"""
import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

PHANTOM_COUNTS = (6, 12, 12)  # normal, benign, malignant
PHANTOM_SIZE = (96, 128)  # height, width


def write_tiny_phantom(base, name, strong_fractions=(0.3,), **prepare_kwargs):
    """The tiny phantom (PHANTOM_COUNTS images of PHANTOM_SIZE) prepared into ``base/name`` and registered as
    ``<name>_<split>``; ``prepare_kwargs`` go to ``prepare_pool`` (e.g. ``folds=2``). Returns ``base/name``."""
    from wssdl_d2.data import register_datasets_under
    from wssdl_d2.data.phantom import write_phantom_dataset
    from wssdl_d2.data.prepare import prepare_pool

    root = base / name
    write_phantom_dataset(root / "images", PHANTOM_COUNTS, *PHANTOM_SIZE, seed=0, second_lesion_prob=0.2,
                          duplicate_fraction=0.1)
    prepare_pool(root / "images", root, strong_fractions=strong_fractions, val_fraction=0.25, seed=0, name=name,
                 progress=False, log=lambda *a: None, **prepare_kwargs)
    register_datasets_under(str(base))
    return root


def read_rows_grouped_on_one_side(csv_path, column, report):
    """The rows of a prepared pool's ``meta/*.csv``, after asserting that every near-duplicate group has one value
    of ``column`` ("split", "fold") and that the pool's near-duplicates were grouped at all."""
    import csv
    from collections import defaultdict

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    values_of_group = defaultdict(set)
    for row in rows:
        values_of_group[row["group"]].add(row[column])
    assert all(len(v) == 1 for v in values_of_group.values()), f"a near-duplicate group straddles {column}s"
    assert report["groups"] < report["images"], "the generated near-duplicates were grouped"
    return rows


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory):
    return write_tiny_phantom(tmp_path_factory.mktemp("datasets"), "testphantom")


TINY_OPTS = [
    "DATASETS.TRAIN", "('testphantom_train_strong_30',)", "DATASETS.TEST", "('testphantom_val',)",
    "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "96",
    "INPUT.MAX_SIZE_TEST", "128", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64", "MODEL.RPN.POST_NMS_TOPK_TEST", "32",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64",
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "4", "SOLVER.WARMUP_ITERS", "0", "SOLVER.STEPS", "()",
    "SOLVER.CHECKPOINT_PERIOD", "1000", "DATALOADER.NUM_WORKERS", "0",
]

def tiny_crossval_opts(max_iter=2):
    """TINY_OPTS without its datasets (a cross-validation run sets them per fold), ``max_iter`` iterations, one
    image per stream, no COCO evaluation or plots, 50 bootstrap resamples: KEY VALUE list."""
    opts = []
    for key, value in zip(TINY_OPTS[::2], TINY_OPTS[1::2]):
        if not key.startswith("DATASETS."):
            opts += [key, value]
    return opts + ["SOLVER.MAX_ITER", str(max_iter), "WSSDL.STRONG_PER_BATCH", "1", "WSSDL.WEAK_PER_BATCH", "1",
                   "WSSDL.EVAL.COCO", "False", "WSSDL.EVAL.PLOTS", "False", "WSSDL.EVAL.BOOTSTRAP_SAMPLES", "50",
                   "MODEL.RPN.POST_NMS_TOPK_TEST", "16", "TEST.DETECTIONS_PER_IMAGE", "20"]


class CountingRuns:
    """The real cross-validation train / evaluate functions (``wssdl_d2.crossval.runs``), counted: the output
    folders trained / evaluated and the configs they got; ``stop_at`` (1-based) raises KeyboardInterrupt at that
    training call, as a user stopping the command would."""

    def __init__(self, stop_at=None):
        self.trained, self.evaluated, self.configs, self.eval_configs, self.stop_at = [], [], [], [], stop_at

    def train(self, cfg):
        from wssdl_d2.crossval import runs

        self.trained.append(cfg.OUTPUT_DIR)
        self.configs.append(cfg)
        if self.stop_at == len(self.trained):
            raise KeyboardInterrupt
        runs.train_model(cfg)

    def evaluate(self, cfg, weights, output_dir):
        from wssdl_d2.crossval import runs

        self.evaluated.append(output_dir)
        self.eval_configs.append(cfg)
        return runs.evaluate_model(cfg, weights, output_dir)


#: The small Faster R-CNN of the end-to-end phantom tests (96 x 128 images): input sizes, anchors, head widths and
#: proposal / RoI counts. Each test adds its own solver, data and method keys.
E2E_SMALL_MODEL = {
    "INPUT.MIN_SIZE_TRAIN": (96,), "INPUT.MAX_SIZE_TRAIN": 128, "INPUT.MIN_SIZE_TEST": 96, "INPUT.MAX_SIZE_TEST": 128,
    "MODEL.ANCHOR_GENERATOR.SIZES": [[24], [48], [96], [192]], "MODEL.FPN.OUT_CHANNELS": 64,
    "MODEL.ROI_BOX_HEAD.FC_DIM": 128, "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG": True,
    "MODEL.RPN.POST_NMS_TOPK_TRAIN": 100, "MODEL.RPN.POST_NMS_TOPK_TEST": 32, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 64,
}
PHANTOM_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "Phantom", "strong_only.yaml")


@pytest.fixture
def tiny_opts(phantom_root, tmp_path):
    """Command-line KEY VALUE overrides (strings) making configs/Phantom/*.yaml tiny and fast on the test data."""
    return TINY_OPTS + ["OUTPUT_DIR", str(tmp_path / "output")]


@pytest.fixture
def tiny_cfg(tiny_opts):
    from detectron2.config import get_cfg

    from wssdl_d2.config import add_wssdl_config, resolve_device

    def make(config_file=PHANTOM_CONFIG, **overrides):
        cfg = get_cfg()
        add_wssdl_config(cfg)
        cfg.merge_from_file(config_file)
        cfg.merge_from_list(list(tiny_opts))
        for key, value in overrides.items():
            cfg.merge_from_list([key, value])
        resolve_device(cfg)
        return cfg

    return make


@pytest.fixture
def one_thread():
    """Run the test's torch ops on one thread (restored afterwards). On tiny images intra-op parallelism gains
    nothing, and on a loaded 2-core machine two spinning OpenMP threads made inference ~20x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
