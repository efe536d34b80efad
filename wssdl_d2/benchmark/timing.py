"""Interleaved wall-clock timing of training steps and single-image inference (all times in seconds)."""
import statistics
import time

import torch
from detectron2.utils.events import EventStorage


def synchronize(device):
    """Wait for queued CUDA work when ``device`` is a CUDA device, so wall-clock times include it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def train_step(model, optimizer, batch, device):
    """One training step (forward with losses, backward, optimizer step); returns its seconds."""
    synchronize(device)
    start = time.perf_counter()
    losses = model(batch)
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def infer(model, inputs, device):
    """One inference call on one image dict (``image``, ``height``, ``width``); returns its seconds."""
    synchronize(device)
    start = time.perf_counter()
    model([inputs])
    synchronize(device)
    return time.perf_counter() - start


def interleaved(runs, reps, warmup):
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


def percentile(values, q):
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(seconds):
    """{"median_s", "p90_s", "mean_s", "min_s", "n"} of a list of seconds."""
    return {"median_s": statistics.median(seconds), "p90_s": percentile(seconds, 90),
            "mean_s": statistics.fmean(seconds), "min_s": min(seconds), "n": len(seconds)}


def time_training(models, optimizers, batches, reps, warmup, device):
    """Interleaved training steps of each model (name -> model) on its batch; name -> list of seconds."""
    for model in models.values():
        model.train()
    with EventStorage():  # the models log training statistics into it
        return interleaved({name: (lambda n=name: train_step(models[n], optimizers[n], batches[n], device))
                            for name in models}, reps, warmup)


def time_inference(models, images, reps, warmup, device):
    """Interleaved single-image inference of each model, cycling through ``images``: every model sees the same
    image sequence. Returns name -> list of ``reps`` seconds."""
    for model in models.values():
        model.eval()
    calls = {name: 0 for name in models}

    def call(name):
        calls[name] += 1
        return infer(models[name], images[(calls[name] - 1) % len(images)], device)

    return interleaved({name: (lambda n=name: call(n)) for name in models}, reps, warmup)
