"""Interleaved wall-clock timing of training steps and single-image inference (all times in seconds)."""
import statistics
import time
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch
from detectron2.utils.events import EventStorage


def synchronize(device: str) -> None:
    """Wait for queued CUDA work when ``device`` is a CUDA device, so wall-clock times include it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> Tuple[float, Any]:
    """``(seconds, fn())``: the wall-clock time of ``fn()``, queued CUDA work on ``device`` included."""
    synchronize(device)
    start = time.perf_counter()
    value = fn()
    synchronize(device)
    return time.perf_counter() - start, value


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: List[dict]) -> None:
    losses = model(batch)
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: List[dict], device: str) -> float:
    """One training step (forward with losses, backward, optimizer step) on ``batch`` (mapped dataset dicts);
    returns its seconds."""
    return timed(lambda: _step(model, optimizer, batch), device)[0]


@torch.no_grad()
def infer(model: torch.nn.Module, inputs: dict, device: str) -> float:
    """One inference call on one image dict (``image`` (C, H, W), ``height``, ``width``); returns its seconds."""
    return timed(lambda: model([inputs]), device)[0]


def interleaved(runs: Mapping[str, Callable[[], float]], reps: int, warmup: int) -> Dict[str, List[float]]:
    """Call each function of ``runs`` (name -> f() returning seconds) ``warmup`` times untimed, then ``reps``
    times, reversing the order every repetition (A B, B A, A B, ...) so that load from other processes falls on
    all alike. Returns name -> list of ``reps`` seconds."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    names, times = list(runs), {name: [] for name in runs}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            times[name].append(runs[name]())
    return times


def summarize(seconds: Sequence[float]) -> Dict[str, float]:
    """{"median_s", "p90_s" (numpy's linearly interpolated percentile), "mean_s", "min_s", "n"} of a list of
    seconds."""
    return {"median_s": statistics.median(seconds), "p90_s": float(np.percentile(seconds, 90)),
            "mean_s": statistics.fmean(seconds), "min_s": min(seconds), "n": len(seconds)}


def time_training(models: Mapping[str, torch.nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                  batches: Mapping[str, List[dict]], reps: int, warmup: int, device: str) -> Dict[str, List[float]]:
    """Interleaved training steps of each model (name -> model) on its batch; name -> list of ``reps`` seconds."""
    for model in models.values():
        model.train()
    with EventStorage():  # the models log training statistics into it
        return interleaved({name: (lambda n=name: train_step(models[n], optimizers[n], batches[n], device))
                            for name in models}, reps, warmup)


def time_inference(models: Mapping[str, torch.nn.Module], images: Sequence[dict], reps: int, warmup: int,
                   device: str) -> Dict[str, List[float]]:
    """Interleaved single-image inference of each model, cycling through ``images``: every model sees the same
    image sequence. Returns name -> list of ``reps`` seconds."""
    for model in models.values():
        model.eval()
    calls = {name: 0 for name in models}

    def call(name):
        calls[name] += 1
        return infer(models[name], images[(calls[name] - 1) % len(images)], device)

    return interleaved({name: (lambda n=name: call(n)) for name in models}, reps, warmup)
