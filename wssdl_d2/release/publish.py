"""Publishing a trained checkpoint to the zoo (the library behind ``tools/publish_model.py``).

:func:`publish_checkpoint` writes

1. a weights-only file ``<out_dir>/<config stem>/model_final_<sha8>.pth`` (``{"model": state dict}``: no
   optimizer / scheduler / iteration, no Python objects; ``<sha8>`` is the start of the file's sha256, as in
   Detectron2's ``model_final_<hash>.pkl``, but as a weights-only ``.pth`` so loading it never runs code),
2. the config's entry in a checkpoint index (:mod:`wssdl_d2.model_zoo.index`), with URL, sha256, training data,
   command and the CorLoc report's metrics with their confidence intervals,
3. the config's row in MODEL_ZOO.md's table (between ``<!-- zoo-table:start -->`` and ``<!-- zoo-table:end -->``).
"""
import datetime
import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
from detectron2.config import CfgNode

from ..evaluation.results_io import read_report, resolve_results_dir
from ..model_zoo.index import PACKAGED_INDEX, read_index
from ..model_zoo.model_zoo import CONFIG_DIRS, get_config, get_config_file
from ..model_zoo.safe_load import evaluates_teacher, load_checkpoint, model_weights, teacher_as_model
from ..utils.atomic import atomic_open, atomic_write_json

TABLE_START, TABLE_END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"
#: The override a mean-teacher run's zoo entry gets: its published weights are the teacher's, used as the model.
TEACHER_AS_STUDENT = ["WSSDL.TEACHER.EVAL_WITH", "student"]
TABLE_HEADER = ("| config | trained on | evaluated on | CorLoc % (CI) | CorLoc top-1 % (CI) | download | sha256 | command |\n"
                "|---|---|---|---|---|---|---|---|")


def zoo_config_name(config: str) -> str:
    """The index key of a config given as a zoo name (``BUSI/wssdl.yaml``) or a file inside ``configs/``."""
    if os.path.isfile(config):
        real = os.path.realpath(config)
        for folder in CONFIG_DIRS:
            folder = os.path.realpath(folder)
            if real.startswith(folder + os.sep):
                return os.path.relpath(real, folder).replace(os.sep, "/")
        raise ValueError(f"{config}: published checkpoints are keyed by a zoo config; put it under {CONFIG_DIRS[-1]}")
    get_config_file(config)  # raises FileNotFoundError naming the folders searched
    return config.replace("\\", "/")


def run_config(config: str, config_overrides: Sequence[str] = ()) -> Tuple[str, CfgNode]:
    """(zoo config name, the config a run was trained with): the zoo config ``config`` with the run's KEY VALUE
    ``config_overrides`` merged, and no ImageNet download (the checkpoint holds every weight). Raises ValueError for
    overrides that are not KEY VALUE pairs."""
    name = zoo_config_name(config)
    overrides = [str(item) for item in config_overrides]
    if len(overrides) % 2:
        raise ValueError(f"config overrides must be KEY VALUE pairs, got {overrides}")
    cfg = get_config(name)
    cfg.merge_from_list(overrides)
    cfg.WSSDL.EFFICIENTNET.PRETRAINED = False
    return name, cfg


def run_weights(checkpoint: str, cfg: CfgNode, allow_pickle: bool = False, logger=None) -> Dict[str, torch.Tensor]:
    """The weights a run is published / shipped with (CPU tensors): the checkpoint's ``"model"``, or a mean-teacher
    run's teacher weights when ``cfg`` evaluates the teacher (``WSSDL.TEACHER.EVAL_WITH teacher``, what its
    metrics measured). ValueError naming ``checkpoint`` when it has no model (or no teacher) weights."""
    loaded = load_checkpoint(checkpoint, allow_pickle=allow_pickle)
    if evaluates_teacher(cfg):
        loaded = teacher_as_model(loaded, checkpoint, logger)
    return model_weights(loaded, checkpoint)


def summarize_metrics(metrics_path: str) -> Dict[str, Any]:
    """The index's ``metrics`` from a CorLoc report (``corloc.json``, or a run / inference folder holding it)."""
    report = read_report(resolve_results_dir(metrics_path))
    if "CorLoc" not in report["metrics"]:
        raise ValueError(f"{metrics_path}: the CorLoc report has no 'CorLoc' metric")
    settings = report.get("settings", {})
    summary = {"dataset": report.get("dataset"), "images": report.get("counts", {}).get("images"),
               "ci_level": settings.get("ci_level"), "tau": settings.get("tau"),
               "iou_thresh": settings.get("iou_thresh")}
    summary.update({name: dict(value) for name, value in report["metrics"].items()})
    return summary


def check_weights_fit(weights: Mapping[str, torch.Tensor], cfg: CfgNode, checkpoint: str) -> None:
    """Build the config's model and compare parameter names / shapes with ``weights``; ValueError if they differ."""
    from detectron2.modeling import build_model

    cfg = cfg.clone()
    cfg.MODEL.DEVICE = "cpu"
    expected = {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}
    missing = sorted(k for k in expected if k not in weights and not k.endswith("num_batches_tracked"))
    extra = sorted(k for k in weights if k not in expected)
    shapes = sorted(k for k in weights if k in expected and tuple(weights[k].shape) != expected[k])
    if missing or extra or shapes:
        raise ValueError(f"{checkpoint}: the weights do not fit the config's model: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}, other shapes {shapes[:5]} (wrong --config or --opts?)")


def write_weights(weights: Mapping[str, torch.Tensor], folder: str) -> Tuple[str, str, int]:
    """Save ``{"model": weights}`` atomically as ``folder/model_final_<sha8>.pth``. Returns (path, sha256, size)."""
    buffer = io.BytesIO()
    torch.save({"model": weights}, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(folder, f"model_final_{digest[:8]}.pth")
    with atomic_open(path, "wb") as f:
        f.write(data)
    return path, digest, len(data)


def format_ci(metric: Optional[Mapping[str, Any]]) -> str:
    if not metric or metric.get("value") is None:
        return "-"
    lo, hi = metric.get("lo"), metric.get("hi")
    interval = f" ({lo:.1f}-{hi:.1f})" if lo is not None and hi is not None else ""
    return f"{metric['value']:.1f}{interval}"


def zoo_row(name: str, entry: Mapping[str, Any]) -> str:
    """MODEL_ZOO.md table row of an index entry."""
    metrics = entry.get("metrics", {})
    cells = [f"[{name}](configs/{name})", entry.get("trained_on", "-"), str(metrics.get("dataset") or "-"),
             format_ci(metrics.get("CorLoc")), format_ci(metrics.get("CorLoc_top1")),
             f"[{os.path.basename(entry['file'])}]({entry['url']})", f"`{entry['sha256'][:12]}`",
             f"`{entry.get('command', '-')}`"]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def update_zoo_table(md_path: str, name: str, entry: Mapping[str, Any]) -> None:
    """Insert or replace ``name``'s row in the table of ``md_path`` (created with the table if missing)."""
    text = Path(md_path).read_text() if os.path.exists(md_path) else f"# Model zoo\n\n{TABLE_START}\n{TABLE_END}\n"
    if TABLE_START not in text or TABLE_END not in text:
        raise ValueError(f"{md_path}: no model table ({TABLE_START} ... {TABLE_END})")
    head, rest = text.split(TABLE_START, 1)
    table, tail = rest.split(TABLE_END, 1)
    rows = [line for line in table.strip().splitlines()[2:] if line.startswith("|")]
    rows = [row for row in rows if not re.match(rf"\| \[{re.escape(name)}\]\(", row)]
    rows = sorted(rows + [zoo_row(name, entry)])
    with atomic_open(md_path, "w") as f:
        f.write(head + TABLE_START + "\n" + TABLE_HEADER + "\n" + "".join(r + "\n" for r in rows) + TABLE_END + tail)


def publish_checkpoint(checkpoint: str, config: str, metrics: str, out_dir: str, index_path: str = PACKAGED_INDEX,
                       base_url: Optional[str] = None, zoo_md: Optional[str] = None, trained_on: Optional[str] = None,
                       command: Optional[str] = None, config_overrides: Sequence[str] = (),
                       allow_pickle: bool = False) -> Tuple[str, Dict[str, Any]]:
    """Publish ``checkpoint`` (a training checkpoint) for zoo config ``config``; see the module docstring.

    Args:
        checkpoint (str): ``model_final.pth`` or any checkpoint of a run (weights-only readable, or a pickle with
            ``allow_pickle``); a mean-teacher run's teacher weights are published when its config evaluates the
            teacher (:func:`run_weights`), and its entry's ``config_overrides`` end with :data:`TEACHER_AS_STUDENT`.
        config (str): the zoo config it was trained with (name or file under ``configs/``).
        metrics (str): ``corloc.json`` of its evaluation (or the run / inference folder holding it).
        out_dir (str): where the published file goes (upload this folder to ``base_url``).
        index_path (str): the checkpoint index to update (default: the packaged ``checkpoints.json``).
        base_url (str): URL of ``out_dir`` once uploaded; default ``file://<out_dir>`` (local sharing).
        zoo_md (str or None): MODEL_ZOO.md to update.
        trained_on (str): default: the config's ``DATASETS.TRAIN``.
        command (str): the training command; default ``python tools/train_net.py --config-file configs/<name>``.
        config_overrides (list[str]): KEY VALUE pairs the run used on top of the config file.
    Returns:
        (config name, index entry).
    """
    name, cfg = run_config(config, config_overrides)
    overrides = [str(item) for item in config_overrides]
    weights = run_weights(checkpoint, cfg, allow_pickle)
    check_weights_fit(weights, cfg, checkpoint)
    summary = summarize_metrics(metrics)
    stem = os.path.splitext(name)[0]
    path, digest, size = write_weights(weights, os.path.join(out_dir, stem))
    relative = f"{stem}/{os.path.basename(path)}"
    base_url = base_url or Path(os.path.abspath(out_dir)).as_uri()
    default_command = " ".join(["python tools/train_net.py --config-file", f"configs/{name}"] + overrides)
    entry = {
        "file": relative, "url": base_url.rstrip("/") + "/" + relative, "sha256": digest, "size": size,
        # a mean-teacher run's file holds the teacher's weights as "model": its entry evaluates them as the model
        "config_overrides": overrides + (TEACHER_AS_STUDENT if evaluates_teacher(cfg) else []),
        "trained_on": trained_on or " + ".join(cfg.DATASETS.TRAIN), "command": command or default_command,
        "metrics": summary,
        "published": datetime.date.today().isoformat(),
    }
    index = read_index(index_path)
    index["models"][name] = entry
    index["models"] = dict(sorted(index["models"].items()))
    atomic_write_json(index_path, index, indent=2)
    if zoo_md:
        update_zoo_table(zoo_md, name, entry)
    return name, entry
