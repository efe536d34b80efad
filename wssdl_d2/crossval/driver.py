"""The whole cross-validation: every config on every fold (resumable), then the pooled report."""
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from detectron2.data import DatasetCatalog

from ..data.folds import FOLD_DIR_RE, fold_dataset_name
from ..data.prepared import read_near_duplicate_groups
from ..data.wssdl_json import default_dataset_root
from ..evaluation.pooled import pool_folds
from ..evaluation.results_io import ResultsError, read_per_image
from ..evaluation.run_dir import RunDir
from .report import build_report
from .runs import CrossValError, RunSpec, evaluate_model, run_fold, train_model

logger = logging.getLogger(__name__)


def registered_folds(data: str) -> List[int]:
    """Fold indices k with a registered ``<data>_fold<k>_val``."""
    prefix = f"{data}_"
    folds = []
    for name in DatasetCatalog.list():
        if name.startswith(prefix) and name.endswith("_val"):
            match = FOLD_DIR_RE.match(name[len(prefix):-len("_val")])
            if match:
                folds.append(int(match.group(1)))
    return sorted(folds)


def parse_specs(items: Sequence[str], other_rows: int = 0) -> List[RunSpec]:
    """``path`` or ``name=path`` items -> RunSpecs (name: the file's stem). Raises CrossValError on two configs with
    one name or fewer than two rows in all (``other_rows``: the rows given otherwise, e.g. :func:`read_rows`)."""
    specs = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = os.path.splitext(os.path.basename(item))[0], item
        specs.append(RunSpec(name, path))
    names = [s.name for s in specs]
    if len(specs) + other_rows < 2:
        raise CrossValError(f"cross-validation compares two or more configs, got {len(specs) + other_rows}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CrossValError(f"configs named {twice} twice: name them, e.g. wssdl10=configs/BUSI/wssdl.yaml")
    return specs


def parse_rows(items: Sequence[str]) -> Dict[str, str]:
    """``NAME=FOLDER`` items (FOLDER with ``{fold}`` in it) -> {name: FOLDER}. Raises CrossValError on a malformed
    item or a name given twice."""
    rows = {}
    for item in items:
        name, sep, template = item.partition("=")
        if not sep or not name or "{fold}" not in template:
            raise CrossValError(f"--rows {item!r}: expected NAME=FOLDER with {{fold}} in FOLDER, e.g. "
                                "selftrain=output/selftrain/fold{fold}/round_1")
        if name in rows:
            raise CrossValError(f"--rows: {name!r} named twice")
        rows[name] = template
    return rows


def read_rows(rows: Mapping[str, str], data: str, folds: Sequence[int], test_split: str = "val") -> Dict[str, Dict]:
    """Rows whose fold runs were made outside :func:`run_crossval` (e.g. ``tools/self_train.py`` from each fold's
    model), {name: FOLDER} from :func:`parse_rows`: ``FOLDER.format(fold=k)`` holds
    ``inference/corloc_per_image.csv`` of the model tested on ``<data>_fold<k>_val``. Returns {name: pooled
    columns}. Raises ResultsError naming the file when a fold's outcomes are missing or were not made on that fold's
    images."""
    pooled = {}
    for name, template in rows.items():
        per_fold = {}
        for fold in folds:
            run = RunDir(template.format(fold=fold))
            columns = read_per_image(run.inference)
            val = fold_dataset_name(data, fold, test_split)
            expected = {d["file_name"] for d in DatasetCatalog.get(val)}
            if set(columns["file_name"]) != expected:
                odd = sorted(set(columns["file_name"]) ^ expected)[:2]
                raise ResultsError(f"{run.per_image}: its {len(columns['file_name'])} "
                                   f"images are not the {len(expected)} of {val} (e.g. {odd}): not fold {fold}'s "
                                   "test run")
            per_fold[fold] = columns
        pooled[name] = pool_folds(per_fold, name)
    return pooled


def fold_run_dirs(specs: Sequence[RunSpec], rows: Mapping[str, str], out: str,
                  folds: Sequence[int]) -> Dict[str, Dict[int, str]]:
    """{row: {fold: run folder}} of every config (``<out>/<name>/fold<k>``) and every :func:`parse_rows` row."""
    dirs = {s.name: {k: RunDir.of_fold(out, s.name, k).path for k in folds} for s in specs}
    dirs.update({name: {k: template.format(fold=k) for k in folds} for name, template in rows.items()})
    return dirs


def check_folds(data: str, num_folds: int, flag: str = "--data") -> List[int]:
    """The folds 0..K-1 after checking ``<data>_fold<k>_val`` is registered for each (K = all registered folds when
    ``num_folds`` is 0). Raises CrossValError saying how to prepare them (``flag``: the tool's option naming
    ``data``)."""
    found = registered_folds(data)
    if num_folds == 1:
        raise CrossValError(f"--folds 1: cross-validation needs 2 or more folds of {data}")
    if not num_folds:
        num_folds = len(found)
    missing = [k for k in range(num_folds) if k not in found]
    if num_folds < 2 or missing:
        raise CrossValError(f"{flag} {data}: folds {missing or list(range(2))} are not registered (found "
                            f"{[fold_dataset_name(data, k, 'val') for k in found] or 'none'}); prepare them with "
                            f"tools/prepare_busi.py (or tools/make_phantom.py) --out <datasets>/{data} --folds K")
    return list(range(num_folds))


def _run_line(name: str, fold: int, state: Dict, did: str) -> str:
    """The progress line of a finished run: what happened, training and evaluation seconds."""
    return (f"[crossval] {name} fold {fold}: {did} (train {state['train_seconds']:.1f} s, "
            f"{state['max_iter']} iterations; eval {state['eval_seconds']:.1f} s)")


def _fold_job(spec: RunSpec, data: str, fold: int, opts: Sequence[str], run_dir: str, strong_percent: Optional[int],
              dataset_root: str, threads: int, train_fn: Callable, eval_fn: Callable, keep_checkpoints: bool,
              inner: bool = False):
    """One run in a worker process of :func:`run_crossval` (``jobs`` > 1): ``threads`` torch threads, the prepared
    datasets under ``dataset_root`` registered anew (a spawned process starts with an empty DatasetCatalog)."""
    import torch

    from ..data import register_datasets_under

    torch.set_num_threads(threads)
    register_datasets_under(dataset_root)
    return run_fold(spec, data, fold, opts, run_dir, train_fn=train_fn, eval_fn=eval_fn,
                    strong_percent=strong_percent, keep_checkpoints=keep_checkpoints, inner=inner)


def _run_parallel(tasks, data, out, opts, train_fn, eval_fn, strong_percent, jobs, threads, dataset_root, log,
                  keep_checkpoints, inner=False):
    """Run ``tasks`` [(spec, fold)] in ``jobs`` spawned processes (one run each, started in task order), each with
    ``threads`` torch threads. Every run is taken to its end; the first error is raised afterwards.
    Returns {(name, fold): state}."""
    states, errors = {}, []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(_fold_job, spec, data, fold, list(opts), RunDir.of_fold(out, spec.name, fold).path,
                               strong_percent, dataset_root, threads, train_fn, eval_fn, keep_checkpoints, inner):
                   (spec.name, fold)
                   for spec, fold in tasks}
        try:
            for future in as_completed(futures):
                name, fold = futures[future]
                try:
                    state, did = future.result()
                except Exception as err:  # the other runs go on; the run's state file records the failure
                    errors.append(err)
                    log(f"[crossval] {name} fold {fold}: failed ({type(err).__name__}: {err})")
                    continue
                states[(name, fold)] = state
                log(_run_line(name, fold, state, did))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if errors:
        raise errors[0]
    return states


def run_crossval(specs: Sequence[RunSpec], data: str, folds: Sequence[int], out: str, opts: Sequence[str] = (),
                 train_fn: Callable = train_model, eval_fn: Callable = evaluate_model, log=print,
                 strong_percent: Optional[int] = None, jobs: int = 1, threads: Optional[int] = None,
                 dataset_root: Optional[str] = None, keep_checkpoints: bool = False, inner: bool = False) -> Dict:
    """Train and evaluate every config on every fold (fold by fold, so an early stop leaves whole folds), then read
    and pool the per-image outcomes. Returns {"pooled": {config: pooled columns}, "states": {config: {fold: state}}}.
    Safe to stop and start again: finished runs are skipped, a stopped one continues from its last checkpoint.
    ``strong_percent``: train on the folds' train_strong_P / train_weak_P with this P instead of the configs' P.
    ``inner``: train on each fold's inner training part and test on its inner validation split (choosing settings;
    the held-out folds are not touched).
    ``jobs`` > 1: that many runs at a time, each in its own spawned process with ``threads`` torch threads
    (default ``cpu_count // jobs``; two one-thread runs use 2 CPU cores better than one two-thread run); the
    workers register the prepared datasets under ``dataset_root`` (default: $WSSDL_DATASETS or ./datasets), and ``train_fn`` /
    ``eval_fn`` must be picklable (module-level functions). The results do not depend on ``jobs`` when the
    thread count per run is the same. ``keep_checkpoints``: keep each run's periodic checkpoints after its training
    (default: only ``model_final.pth`` stays, :func:`.runs.remove_periodic_checkpoints`)."""
    tasks = [(spec, fold) for fold in folds for spec in specs]
    if jobs > 1:
        threads = threads or max(1, (os.cpu_count() or 1) // jobs)
        done = _run_parallel(tasks, data, out, opts, train_fn, eval_fn, strong_percent, jobs, threads,
                             dataset_root or default_dataset_root(), log, keep_checkpoints, inner)
    else:
        done = {}
        for spec, fold in tasks:
            run_dir = RunDir.of_fold(out, spec.name, fold).path
            state, did = run_fold(spec, data, fold, opts, run_dir, train_fn=train_fn, eval_fn=eval_fn,
                                  strong_percent=strong_percent, keep_checkpoints=keep_checkpoints, inner=inner)
            done[(spec.name, fold)] = state
            log(_run_line(spec.name, fold, state, did))
    states = {s.name: {f: done[(s.name, f)] for f in folds} for s in specs}
    pooled = {}
    for spec in specs:
        per_fold = {f: read_per_image(RunDir.of_fold(out, spec.name, f).inference) for f in folds}
        pooled[spec.name] = pool_folds(per_fold, spec.name)
    return {"pooled": pooled, "states": states}


def timings(states: Dict) -> Dict:
    """{config: {train_seconds, eval_seconds, seconds_per_iteration (mean over folds)}} from the run states."""
    out = {}
    for name, by_fold in states.items():
        train = [s["train_seconds"] for s in by_fold.values()]
        iters = [max(s["max_iter"], 1) for s in by_fold.values()]
        out[name] = {"train_seconds": dict((str(f), s["train_seconds"]) for f, s in by_fold.items()),
                     "eval_seconds": dict((str(f), s["eval_seconds"]) for f, s in by_fold.items()),
                     "seconds_per_iteration": sum(t / i for t, i in zip(train, iters)) / max(len(train), 1)}
    return out


def pool_groups(data: str, dataset_root: Optional[str] = None) -> Optional[Dict[str, int]]:
    """The near-duplicate groups of the prepared pool ``<dataset_root>/<data>/meta/groups.csv`` (None when the
    preparation has none, e.g. a phantom), for :func:`crossval_report`."""
    root = os.path.join(dataset_root or default_dataset_root(), data)
    if not os.path.isfile(os.path.join(root, "meta", "groups.csv")):
        return None
    return read_near_duplicate_groups(root)


def crossval_report(result: Dict, num_samples: int = 2000, seed: int = 0, level: float = 0.95,
                    groups: Optional[Mapping[str, int]] = None) -> Dict:
    """:func:`.report.build_report` of :func:`run_crossval`'s result, with the run timings; ``groups``
    (:func:`pool_groups`) makes the intervals and tests resample near-duplicate groups."""
    return build_report(result["pooled"], num_samples, seed, level, timings(result["states"]), groups=groups)
