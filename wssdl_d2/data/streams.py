"""Two infinite, shuffled, seeded data streams (strong and weak images) zipped into training batches.

Every batch of a process holds exactly ``WSSDL.STRONG_PER_BATCH`` strong and ``WSSDL.WEAK_PER_BATCH`` weak
images (per process: under Detectron2's ``launch`` each rank draws its own share of each stream through
Detectron2's TrainingSampler). A stream with no image contributes nothing, so strong-only and weak-only runs
use the same code. ``supervision`` "strong" and "pseudo" go to the strong stream, "weak" to the weak stream.

``BATCH_MODE: combined`` yields one list per step (strong images first); ``alternating`` yields
``{"strong": [...], "weak": [...]}`` for a strong step and a weak step.
"""
import logging
from typing import Any, Callable, Dict, Iterable, List, Tuple

from detectron2.config import CfgNode
from detectron2.data import build_detection_train_loader
from detectron2.data.samplers import TrainingSampler
from detectron2.utils import comm

BATCH_MODES = ("combined", "alternating")

logger = logging.getLogger(__name__)


def split_by_supervision(dicts: Iterable[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """(strong dicts, weak dicts): ``supervision: weak`` goes to the second list, everything else to the first."""
    weak = [d for d in dicts if d.get("supervision") == "weak"]
    strong = [d for d in dicts if d.get("supervision") != "weak"]
    return strong, weak


def stream_sizes(cfg: CfgNode, num_strong: int, num_weak: int) -> Tuple[int, int]:
    """Per-process batch size of the strong and the weak stream (0 for an empty stream); raises ValueError
    when a non-empty stream has a batch size of 0 or no stream is left."""
    sizes = {"strong": int(cfg.WSSDL.STRONG_PER_BATCH), "weak": int(cfg.WSSDL.WEAK_PER_BATCH)}
    counts = {"strong": num_strong, "weak": num_weak}
    keys = {"strong": "WSSDL.STRONG_PER_BATCH", "weak": "WSSDL.WEAK_PER_BATCH"}
    for name in sizes:
        if sizes[name] < 0:
            raise ValueError(f"{keys[name]} must be >= 0, not {sizes[name]}")
        if counts[name] and not sizes[name]:
            raise ValueError(f"DATASETS.TRAIN has {counts[name]} {name} images but {keys[name]} is 0; "
                             f"remove them from DATASETS.TRAIN or set {keys[name]} > 0")
        if not counts[name]:
            sizes[name] = 0
    if not any(sizes.values()):
        raise ValueError("DATASETS.TRAIN has no training image")
    return sizes["strong"], sizes["weak"]


def _split_workers(num_workers, sizes):
    """Share DATALOADER.NUM_WORKERS between the non-empty streams, in proportion to their batch sizes."""
    active = [k for k, n in sizes.items() if n]
    if num_workers <= 0:
        return {k: 0 for k in sizes}
    if len(active) == 1:
        return {k: (num_workers if k in active else 0) for k in sizes}
    share = sizes["weak"] / (sizes["strong"] + sizes["weak"])
    weak = min(max(round(num_workers * share), 1), max(num_workers - 1, 1))
    return {"strong": max(num_workers - weak, 1), "weak": weak}


class StreamBatches:
    """Iterable over training batches zipped from one loader per non-empty stream (each an infinite iterable
    of per-process batches of fixed size).

    Attributes: ``mode``; ``batch_sizes`` {"strong": n, "weak": n} per process (0: empty stream);
    ``weak_image_labels``, the image labels of the weak stream's images (for class weights).
    """

    def __init__(self, loaders, mode="combined", batch_sizes=None, weak_image_labels=()):
        if mode not in BATCH_MODES:
            raise ValueError(f"WSSDL.BATCH_MODE must be one of {BATCH_MODES}, not {mode!r}")
        if not loaders:
            raise ValueError("StreamBatches needs at least one stream")
        self.loaders = dict(loaders)
        self.mode = mode
        self.batch_sizes = dict(batch_sizes or {})
        self.weak_image_labels = list(weak_image_labels)

    def __iter__(self):
        iterators = {name: iter(loader) for name, loader in self.loaders.items()}
        while True:
            batch = {name: next(it) for name, it in iterators.items()}
            strong, weak = list(batch.get("strong", [])), list(batch.get("weak", []))
            yield strong + weak if self.mode == "combined" else {"strong": strong, "weak": weak}


def build_stream_loader(cfg: CfgNode, dicts: Iterable[Dict[str, Any]],
                        mapper: Callable[[Dict[str, Any]], Any]) -> "StreamBatches":
    """A :class:`StreamBatches` over ``dicts`` (Detectron2 dicts with ``supervision``) for ``cfg.WSSDL``.

    The strong stream is shuffled with seed ``SEED`` and the weak one with ``SEED + 1`` (both from
    ``comm.shared_random_seed`` when SEED < 0); both are sharded across ranks by Detectron2's TrainingSampler.
    """
    strong, weak = split_by_supervision(dicts)
    sizes = dict(zip(("strong", "weak"), stream_sizes(cfg, len(strong), len(weak))))
    workers = _split_workers(int(cfg.DATALOADER.NUM_WORKERS), sizes)
    world = comm.get_world_size()
    loaders = {}
    for offset, (name, data) in enumerate((("strong", strong), ("weak", weak))):
        if not sizes[name]:
            continue
        seed = cfg.SEED + offset if cfg.SEED >= 0 else None
        loaders[name] = build_detection_train_loader(
            data, mapper=mapper, sampler=TrainingSampler(len(data), shuffle=True, seed=seed),
            total_batch_size=sizes[name] * world, aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            num_workers=workers[name], seed=seed,
        )
    logger.info("Training streams: %d strong images (%d per batch), %d weak images (%d per batch), mode %s",
                len(strong), sizes["strong"], len(weak), sizes["weak"], cfg.WSSDL.BATCH_MODE)
    return StreamBatches(loaders, cfg.WSSDL.BATCH_MODE, sizes, [d.get("image_label") for d in weak])
