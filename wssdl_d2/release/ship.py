"""Shipping a trained model inside the package (the library behind ``tools/publish_model.py --ship``).

:func:`ship_checkpoint` takes a training checkpoint and its zoo config and writes, next to the checkpoint index
(``wssdl_d2/model_zoo/`` for the packaged one; see :mod:`wssdl_d2.model_zoo.shipped` for how they are read)::

    trained/<config stem>/model_<sha8>.safetensors   the model's weights only, float16 by default (read back as
                                                     float32); tensors that do not fit float16 stay float32
    trained/<config stem>/config.yaml                the full config the model was trained with
    trained/<config stem>/calibration.json           the calibration of its malignancy score, when given

and the config's entry in the index (sha256 of each file, the storage check, training data, command, metrics).

The storage check (:func:`compare_storage`) runs the model with the float32 weights and with the stored ones on
the given images and reports, over detections paired by overlap (:func:`compare_predictions`), the largest box /
score differences and the detections without a partner, whether the detections at the score threshold and the
diagnoses agree, and, on a registered dataset's boxed images, CorLoc (any box and top-1) both ways: how much
float16 storage costs.
"""
import datetime
import hashlib
import logging
import os
import shutil
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..model_zoo.index import PACKAGED_INDEX, read_index
from ..model_zoo.safe_load import evaluates_teacher
from ..model_zoo.shipped import TRAINED_DIR
from ..utils.atomic import atomic_open, atomic_write_json
from .publish import check_weights_fit, run_config, run_weights, summarize_metrics

logger = logging.getLogger(__name__)
FLOAT16_MAX = float(torch.finfo(torch.float16).max)
#: A shipped file larger than this is logged as a warning (the size budget of a shipped model: about 16 MB).
SIZE_BUDGET = 16 * 1024 * 1024


def storage_weights(weights: Mapping[str, torch.Tensor], fp16: bool) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Weights as stored: floating tensors in float16 when ``fp16`` (unless a value exceeds float16's range),
    everything contiguous. Returns (weights, names of floating tensors kept in float32)."""
    out, kept = {}, []
    for name, value in weights.items():
        value = value.detach().cpu().contiguous()
        if fp16 and value.is_floating_point():
            if value.numel() and float(value.abs().max()) > FLOAT16_MAX:
                kept.append(name)
            else:
                value = value.to(torch.float16)
        elif value.is_floating_point():
            value = value.float()
        out[name] = value.clone()  # no shared storage (safetensors refuses tensors that share memory)
    return out, kept


def write_safetensors(weights: Mapping[str, torch.Tensor], folder: str, metadata: Mapping[str, str],
                      stem: str = "model") -> Tuple[str, str, int]:
    """Save ``weights`` as ``folder/<stem>_<sha8>.safetensors`` atomically. Returns (path, sha256, size)."""
    from safetensors.torch import save

    data = save(dict(weights), metadata={k: str(v) for k, v in metadata.items()})
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(folder, f"{stem}_{digest[:8]}.safetensors")
    os.makedirs(folder, exist_ok=True)
    with atomic_open(path, "wb") as f:
        f.write(data)
    return path, digest, len(data)


def _sha256(path: str) -> str:
    from ..model_zoo.download import file_sha256

    return file_sha256(path)


def compare_predictions(a, b, tau: float = 0.5) -> Dict[str, Any]:
    """Differences between two :class:`~wssdl_d2.inference.Prediction` of one image (``a`` the reference).

    Detections are paired greedily in ``a``'s score order with the unpaired detection of ``b`` of the same class
    that overlaps most (IoU > 0.5). Returns ``unmatched`` (detections of either without a partner: low-score
    boxes that NMS or the test threshold keeps on one side only), ``max_box_px`` / ``max_score`` over the pairs
    (largest coordinate / score difference; 0 without pairs) and ``max_box_px_at_tau`` / ``max_score_at_tau``
    over the pairs whose reference score is >= ``tau``, ``same_at_tau`` (the same number of detections of
    each class with score >= ``tau``), ``top_box_px`` / ``top_score`` of the two top detections (NaN when only
    one has any), ``same_diagnosis`` and ``malignancy`` (absolute difference of the malignancy scores)."""
    from ..evaluation.outcomes import box_iou

    iou = box_iou(a.boxes, b.boxes) if len(a.scores) and len(b.scores) else np.zeros((len(a.scores), len(b.scores)))
    iou = np.where(a.classes[:, None] == b.classes[None, :], iou, 0.0)
    free, pairs = np.ones(len(b.scores), bool), []
    for i in range(len(a.scores)):
        candidates = np.where(free, iou[i], 0.0)
        j = int(np.argmax(candidates)) if len(candidates) else -1
        if j >= 0 and candidates[j] > 0.5:
            free[j] = False
            pairs.append((i, j))
    box = max((float(np.abs(a.boxes[i] - b.boxes[j]).max()) for i, j in pairs), default=0.0)
    score = max((float(abs(a.scores[i] - b.scores[j])) for i, j in pairs), default=0.0)
    confident = [(i, j) for i, j in pairs if a.scores[i] >= tau]
    at_tau = [np.bincount(p.classes[p.scores >= tau], minlength=2).tolist() for p in (a, b)]
    out = {"unmatched": len(a.scores) + len(b.scores) - 2 * len(pairs), "max_box_px": box, "max_score": score,
           "max_box_px_at_tau": max((float(np.abs(a.boxes[i] - b.boxes[j]).max()) for i, j in confident), default=0.0),
           "max_score_at_tau": max((float(abs(a.scores[i] - b.scores[j])) for i, j in confident), default=0.0),
           "same_at_tau": at_tau[0] == at_tau[1], "same_diagnosis": a.diagnosis.label == b.diagnosis.label,
           "malignancy": abs(a.diagnosis.scores["malignant"] - b.diagnosis.scores["malignant"])}
    if len(a.scores) and len(b.scores):
        out["top_box_px"] = float(np.abs(a.boxes[0] - b.boxes[0]).max())
        out["top_score"] = float(abs(a.scores[0] - b.scores[0]))
    else:
        out["top_box_px"] = out["top_score"] = 0.0 if len(a.scores) == len(b.scores) else float("nan")
    return out


def _corloc(outcomes: Sequence[Mapping[str, Any]], key: str) -> Optional[float]:
    with_mass = [o for o in outcomes if o["has_mass"]]
    return 100.0 * float(np.mean([o[key] for o in with_mass])) if with_mass else None


def compare_storage(cfg, reference_weights: str, stored_weights: str, images: Sequence[str] = (),
                    records: Sequence[Mapping[str, Any]] = (), frame: int = 0) -> Dict[str, Any]:
    """Run ``cfg``'s model with ``reference_weights`` (the float32 file) and ``stored_weights`` on ``images``
    (paths) and on ``records`` (dataset dicts with ``file_name``, ``image_label``, ``annotations``) and summarise
    :func:`compare_predictions` over them; with boxed records also CorLoc (percent, any box at the config's tau and
    top-1) of both and the number of images whose hit differs."""
    from ..data.image_io import load_image
    from ..evaluation.corloc_evaluator import ground_truth
    from ..evaluation.outcomes import image_outcome
    from ..inference.predictor import WSSDLPredictor

    def predictor(weights):
        c = cfg.clone()
        c.defrost()
        c.MODEL.WEIGHTS = weights
        c.MODEL.DEVICE = "cpu"
        return WSSDLPredictor(c)

    reference, stored = predictor(reference_weights), predictor(stored_weights)
    tau = float(cfg.WSSDL.EVAL.SCORE_THRESH)
    iou = float(cfg.WSSDL.EVAL.IOU_THRESH)
    diffs, outcomes, reference_count = [], {"reference": [], "stored": []}, 0
    items = [(path, None) for path in images] + [(r["file_name"], r) for r in records]
    for path, record in items:
        pixels = load_image(path, "BGR", frame).pixels
        a, b = reference(pixels), stored(pixels)
        diffs.append(compare_predictions(a, b, tau))
        reference_count += len(a.scores)
        if record is not None:
            gt_boxes, gt_classes = ground_truth(record)
            for name, p in (("reference", a), ("stored", b)):
                outcome, _, _ = image_outcome(int(record["image_label"]), gt_boxes, gt_classes, p.boxes, p.scores,
                                              p.classes, tau=tau, iou_thresh=iou)
                outcomes[name].append(outcome)

    def worst(key):
        values = [d[key] for d in diffs if not np.isnan(d[key])]
        return float(max(values)) if values else None

    summary = {"images": len(diffs), "same_at_tau": int(sum(d["same_at_tau"] for d in diffs)),
               "unmatched_detections": int(sum(d["unmatched"] for d in diffs)),
               "reference_detections": reference_count,
               "same_diagnosis": int(sum(d["same_diagnosis"] for d in diffs)),
               "max_box_px": worst("max_box_px"), "max_score": worst("max_score"),
               "max_box_px_at_tau": worst("max_box_px_at_tau"), "max_score_at_tau": worst("max_score_at_tau"),
               "max_top_box_px": worst("top_box_px"),
               "max_top_score": worst("top_score"), "max_malignancy": worst("malignancy")}
    if outcomes["reference"]:
        summary["corloc"] = {
            "images_with_mass": int(sum(o["has_mass"] for o in outcomes["reference"])), "tau": tau, "iou": iou,
            **{f"{key}_{name}": _corloc(outcomes[name], key) for key in ("hit_any", "hit_top1")
               for name in ("reference", "stored")},
            "hit_any_changed": int(sum(r["hit_any"] != s["hit_any"] for r, s in zip(*outcomes.values()))),
            "hit_top1_changed": int(sum(r["hit_top1"] != s["hit_top1"] for r, s in zip(*outcomes.values())))}
    return summary


def shipped_cfg(cfg):
    """The config shipped with a model: ``cfg`` with no weights path and no ImageNet initialisation; a
    mean-teacher run's stored weights are the teacher's, so they are evaluated as the model (``EVAL_WITH
    student``)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""
    cfg.WSSDL.EFFICIENTNET.PRETRAINED = False
    if evaluates_teacher(cfg):
        cfg.WSSDL.TEACHER.EVAL_WITH = "student"
    return cfg


def shipped_config_text(cfg, name: str, overrides: Sequence[str]) -> str:
    """The YAML of :func:`shipped_cfg` (the full training config, no ``_BASE_``) with a header naming its origin."""
    head = (f"# wssdl_d2 shipped model: the full config it was trained with (configs/{name}"
            + (f" + {' '.join(overrides)}" if overrides else "") + ").\n"
            "# Its weights are MODEL.WEIGHTS wssdl_d2://" + name + " (see MODEL_ZOO.md).\n")
    return head + shipped_cfg(cfg).dump()


def ship_checkpoint(checkpoint: str, config: str, index_path: str = PACKAGED_INDEX, fp16: bool = True,
                    calibration: Optional[str] = None, check_images: Sequence[str] = (),
                    check_dataset: Optional[str] = None, max_check_images: int = 0,
                    config_overrides: Sequence[str] = (), trained_on: Optional[str] = None,
                    command: Optional[str] = None, metrics: Optional[str] = None,
                    allow_pickle: bool = False) -> Tuple[str, Dict[str, Any]]:
    """Ship ``checkpoint`` (a training checkpoint of zoo config ``config``); see the module docstring.

    Args:
        checkpoint: ``model_final.pth`` of the run (weights-only readable; a pickle only with ``allow_pickle``);
            a mean-teacher run's teacher weights are shipped when its config evaluates the teacher.
        config: the zoo config it was trained with (name or file under ``configs/``).
        index_path: the index to update; the files go under its folder's ``trained/``.
        fp16: store floating weights as float16 (half the size; see the storage check).
        calibration: a ``calibration.json`` of ``tools/calibrate.py`` to ship with it.
        check_images: images (paths) for the storage check; check_dataset: a registered dataset whose images
            (the first ``max_check_images``, 0 = all) are checked too, with CorLoc both ways.
        config_overrides: KEY VALUE pairs the run used on top of the config file.
        trained_on / command: for the index (defaults: DATASETS.TRAIN, the train_net command).
        metrics: a CorLoc report (``corloc.json`` or its folder) for the index's ``metrics``.
    Returns:
        (config name, index entry).
    """
    from ..evaluation.calibration import load_calibration

    name, cfg = run_config(config, config_overrides)  # the device stays the run's (CUDA falls back to the CPU)
    overrides = [str(item) for item in config_overrides]
    weights = run_weights(checkpoint, cfg, allow_pickle, logger)
    check_weights_fit(weights, cfg, checkpoint)
    if calibration:
        load_calibration(calibration)  # refuse a bad file before anything is written
    records = []
    if check_dataset:
        from detectron2.data import DatasetCatalog

        records = list(DatasetCatalog.get(check_dataset))
        records = records[:max_check_images] if max_check_images else records

    stem = os.path.splitext(name)[0]
    root = os.path.dirname(os.path.abspath(index_path))
    folder = os.path.join(root, TRAINED_DIR, stem)
    stored, kept = storage_weights(weights, fp16)
    metadata = {"format": "pt", "wssdl_d2_config": name, "stored_dtype": "float16" if fp16 else "float32",
                "kept_float32": ",".join(kept), "source_sha256": _sha256(checkpoint)}
    index = read_index(index_path)
    previous = index["models"].get(name, {})
    check = {}
    if check_images or records:
        # on copies in a temporary folder: a check that fails or is interrupted leaves the shipped model as it was
        with tempfile.TemporaryDirectory() as tmp:
            reference, _, _ = write_safetensors(storage_weights(weights, False)[0], os.path.join(tmp, "reference"),
                                                {"format": "pt"})
            candidate, _, _ = write_safetensors(stored, os.path.join(tmp, "stored"), metadata)
            check = compare_storage(shipped_cfg(cfg), reference, candidate, check_images, records)
        check["dataset"] = check_dataset
    path, digest, size = write_safetensors(stored, folder, metadata)
    if size > SIZE_BUDGET:
        logger.warning(f"{path}: {size / 2 ** 20:.1f} MiB, over the {SIZE_BUDGET / 2 ** 20:.0f} MiB budget of a "
                       "shipped model")
    config_path = os.path.join(folder, "config.yaml")
    with atomic_open(config_path, "w") as f:
        f.write(shipped_config_text(cfg, name, overrides))
    entry = {"packaged": os.path.relpath(path, root).replace(os.sep, "/"), "sha256": digest, "size": size,
             "dtype": metadata["stored_dtype"], "kept_float32": kept,
             "config": {"path": os.path.relpath(config_path, root).replace(os.sep, "/"),
                        "sha256": _sha256(config_path)},
             "source_checkpoint": {"file": os.path.basename(checkpoint), "sha256": metadata["source_sha256"]},
             "storage_check": check, "config_overrides": overrides,
             "trained_on": trained_on or " + ".join(cfg.DATASETS.TRAIN),
             "command": command or " ".join(["python tools/train_net.py --config-file", f"configs/{name}"] + overrides),
             "published": datetime.date.today().isoformat()}
    if calibration:
        target = os.path.join(folder, "calibration.json")
        if os.path.abspath(calibration) != os.path.abspath(target):
            shutil.copyfile(calibration, target)
        entry["calibration"] = {"path": os.path.relpath(target, root).replace(os.sep, "/"), "sha256": _sha256(target)}
    elif os.path.exists(os.path.join(folder, "calibration.json")):
        logger.info(f"removing {folder}/calibration.json: it calibrated the model shipped before this one")
        os.remove(os.path.join(folder, "calibration.json"))
    if metrics:
        entry["metrics"] = summarize_metrics(metrics)
    old = previous.get("packaged")
    if old and old != entry["packaged"] and os.path.isfile(os.path.join(root, old)):
        os.remove(os.path.join(root, old))  # the file this entry shipped before (ours, replaced)
    index["models"][name] = entry
    index["models"] = dict(sorted(index["models"].items()))
    atomic_write_json(index_path, index, indent=2)
    return name, entry
