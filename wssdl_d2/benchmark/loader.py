"""Throughput of the trainer's training data loader: the strong / weak streams of ``WSSDLTrainer`` with the
configured mappers, augmentations and ``DATALOADER.NUM_WORKERS``."""
import gc
import time
from typing import TYPE_CHECKING, Any, Dict, List, Union

if TYPE_CHECKING:
    from detectron2.config import CfgNode


def batch_images(batch: Union[List[Dict[str, Any]], Dict[str, List[Dict[str, Any]]]]) -> int:
    """Number of images in a batch of either mode (a list, or {"strong": [...], "weak": [...]})."""
    return sum(len(v) for v in batch.values()) if isinstance(batch, dict) else len(batch)


def loader_throughput(cfg: "CfgNode", batches: int = 10, warmup: int = 1) -> Dict[str, Any]:
    """Draw ``warmup`` + ``batches`` batches from ``WSSDLTrainer.build_train_loader(cfg)`` (alone: no training
    runs meanwhile). Returns {"images_per_s", "images", "batches", "seconds", "first_batches_s" (the warm-up
    batches, worker start-up included), "build_s" (building the loader, data checks included), "num_workers"}."""
    from ..engine.trainer import WSSDLTrainer

    start = time.perf_counter()
    loader = WSSDLTrainer.build_train_loader(cfg)
    build_s = time.perf_counter() - start
    iterator = iter(loader)
    try:
        start = time.perf_counter()
        for _ in range(warmup):
            next(iterator)
        first_s = time.perf_counter() - start
        images = 0
        start = time.perf_counter()
        for _ in range(batches):
            images += batch_images(next(iterator))
        seconds = time.perf_counter() - start
    finally:
        iterator.close()  # ends the streams' iterators, which stops their worker processes
        del iterator
        gc.collect()
    return {"images_per_s": images / seconds, "images": images, "batches": batches, "seconds": seconds,
            "first_batches_s": first_s, "build_s": build_s, "num_workers": int(cfg.DATALOADER.NUM_WORKERS)}
