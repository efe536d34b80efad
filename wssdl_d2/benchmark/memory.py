"""Peak memory of one training or inference phase of one model, measured in a fresh process.

A process's peak memory never goes down, so phases measured one after the other in one process would hide each
other; every (model, phase) runs in its own ``python -m wssdl_d2.benchmark.memory`` process. It builds the model
from a payload folder written by :func:`write_payload` (the config, the weights, the batch and the test images),
runs ``warmup`` untimed steps of the phase (default none), resets the peak, runs the measured steps and prints
one JSON line. All sizes in bytes.

- CPU: the peak RSS (``VmHWM`` of /proc/self/status) is reset to the current RSS by writing 5 to
  ``/proc/self/clear_refs`` (Linux >= 4.0). ``peak_bytes``: the peak RSS during the measured steps (Python,
  torch's libraries and the model included); ``growth_bytes``: that peak - the RSS before them, what the phase
  adds to the loaded model (activations, gradients, optimizer state, the code it pages in; memory freed by one
  step is kept by the allocator and reused, so later steps add little). ``getrusage(RUSAGE_SELF).ru_maxrss``
  is only the fallback off Linux: on Linux it also keeps the peak of the image before exec, i.e. the RSS of
  the parent that forked the process. Where the reset is refused (``"peak_reset": false``) the peak can be the
  start-up's.
- CUDA: ``peak_bytes``: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (the weights
  included); ``growth_bytes``: that peak - ``memory_allocated`` at the reset.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

if TYPE_CHECKING:
    import torch
    from detectron2.config import CfgNode

METHODS = {
    "cpu": "peak RSS (VmHWM) of a fresh process per model and phase, the peak reset to the current RSS once the "
           "model is loaded (/proc/self/clear_refs); growth = peak - that RSS",
    "cuda": "torch.cuda.max_memory_allocated in a fresh process per model and phase (peak reset once the "
            "model is loaded); growth = peak - memory allocated at the reset",
}
PHASES = ("train", "infer")


def method(device: Union[str, "torch.device"]) -> str:
    """How memory is measured on ``device``, in words."""
    return METHODS["cuda" if str(device).startswith("cuda") else "cpu"]


def _proc_status_bytes(field):
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes: ``VmHWM`` on Linux (which the reset of
    :func:`reset_peak_rss` lowers), else ``ru_maxrss`` (KiB on Linux, bytes on macOS). On Linux ru_maxrss is not
    used: it also keeps the peak of the pre-exec image, i.e. the RSS of the parent that forked this process."""
    hwm = _proc_status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss_bytes() -> int:
    """This process's resident set size now, in bytes (Linux /proc; elsewhere the peak so far)."""
    rss = _proc_status_bytes("VmRSS")
    return peak_rss_bytes() if rss is None else rss


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0); returns whether it could."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def write_payload(folder: str, cfg: "CfgNode", state_dict: Mapping[str, "torch.Tensor"],
                  batches: Mapping[str, Any], images: Sequence[Dict[str, Any]]) -> None:
    """Write what a measuring process needs into ``folder``: ``config.yaml`` (the joint model's config),
    ``weights.pth`` (``state_dict``), ``inputs.pth`` (the packed training ``batches`` and test ``images``)."""
    import torch

    from .models import pack_batch

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, os.path.join(folder, "weights.pth"))
    torch.save({"batches": {k: pack_batch(v) for k, v in batches.items()}, "images": pack_batch(images)},
               os.path.join(folder, "inputs.pth"))


def measure(folder: str, model_name: str, phase: str, steps: int = 2, threads: int = 0) -> Dict[str, Any]:
    """Run one measuring process (see the module docstring) and return its JSON result:
    {"model", "phase", "device", "steps", "warmup", "peak_bytes", "before_bytes", "growth_bytes", "peak_reset"}."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "wssdl_d2.benchmark.memory", folder, model_name, phase, "--steps", str(steps),
           "--threads", str(threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"memory measurement {model_name}/{phase} failed ({done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_all(folder: str, steps: int = 2, threads: int = 0, jobs: int = 1) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """{phase: {model: result}} for both models and phases; ``jobs`` > 1 runs that many measuring processes
    at once (their memory does not interfere, only their speed)."""
    tasks = [(m, p) for p in PHASES for m in ("joint", "plain")]
    if jobs <= 1:
        results = [measure(folder, m, p, steps, threads) for m, p in tasks]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(jobs) as pool:
            results = list(pool.map(lambda t: measure(folder, t[0], t[1], steps, threads), tasks))
    out = {p: {} for p in PHASES}
    for (m, p), r in zip(tasks, results):
        out[p][m] = r
    return out


def _load(folder, model_name):
    """(cfg, model, inputs) of one model from a payload folder (see :func:`write_payload`)."""
    import torch
    from detectron2.modeling import build_model

    from ..config import merge_config
    from .models import plain_cfg, set_full_mil

    cfg = merge_config(os.path.join(folder, "config.yaml"))
    if model_name == "plain":
        cfg = plain_cfg(cfg)
    model = build_model(cfg)
    weights = torch.load(os.path.join(folder, "weights.pth"), map_location=cfg.MODEL.DEVICE, weights_only=True)
    model.load_state_dict(weights)
    set_full_mil(model)
    return cfg, model, torch.load(os.path.join(folder, "inputs.pth"), weights_only=True)


def _run_phase(folder, model_name, phase, steps, warmup=0):
    """Load one model, run ``warmup`` then ``steps`` training steps (or passes over the test images), the peak
    reset between them, and return the measurement."""
    import torch
    from detectron2.utils.events import EventStorage

    from .models import build_optimizer, unpack_batch
    from .timing import infer, train_step

    cfg, model, inputs = _load(folder, model_name)
    device, cuda = cfg.MODEL.DEVICE, str(cfg.MODEL.DEVICE).startswith("cuda")
    if phase == "train":
        batch, optimizer = unpack_batch(inputs["batches"][model_name]), build_optimizer(cfg, model)
        model.train()
    else:
        images = unpack_batch(inputs["images"])
        model.eval()

    def run(count):
        with EventStorage():
            for _ in range(count):
                if phase == "train":
                    train_step(model, optimizer, batch, device)
                else:
                    for image in images:
                        infer(model, image, device)

    run(warmup)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before, reset = torch.cuda.memory_allocated(), True
    else:
        reset, before = reset_peak_rss(), current_rss_bytes()
    run(steps)
    peak = torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes()
    return {"model": model_name, "phase": phase, "device": device, "steps": steps, "warmup": warmup,
            "peak_bytes": peak, "before_bytes": before, "growth_bytes": max(peak - before, 0), "peak_reset": reset}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Peak memory of one phase of one model (see the module doc).")
    parser.add_argument("folder", help="payload folder written by write_payload")
    parser.add_argument("model", choices=("joint", "plain"))
    parser.add_argument("phase", choices=PHASES)
    parser.add_argument("--steps", type=int, default=2, help="training steps, or passes over the test images")
    parser.add_argument("--warmup", type=int, default=0, help="steps / passes before the peak is reset")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(json.dumps(_run_phase(args.folder, args.model, args.phase, args.steps, args.warmup)))


if __name__ == "__main__":
    main()
