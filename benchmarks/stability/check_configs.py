#!/usr/bin/env python
"""Trains every shipped config (configs/*/*.yaml) from its own defaults for ITERS iterations and reports whether
it finished or diverged: a check of the optimisation recipe past the iterations where the unclipped strong-only
phantom run diverged (70-81), not a test.

Each config keeps its solver, model and input settings; only its datasets are swapped for the phantom's of the same
kind (``<x>_train_strong_20`` -> ``<data>_train_strong_20``, ``..._weak_..``, ``..._all``), so the BUSI configs run
on phantom images. One torch thread per run, ``--jobs`` runs at once.

    python benchmarks/stability/check_configs.py --data phantom --iters 200 --out output/stability --jobs 2
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def train_datasets(config):
    """The config's DATASETS.TRAIN names, resolved through its _BASE_ chain."""
    from wssdl_d2.config import merge_config

    return list(merge_config(config).DATASETS.TRAIN)


def swapped(names, data):
    """``names`` with every dataset replaced by ``data``'s dataset of the same kind."""
    out = []
    for name in names:
        kind = name.split("_train_", 1)[1]
        kind = re.sub(r"_\d+$", "_20", kind) if kind != "all" else kind
        out.append(f"{data}_train_{kind}")
    return out


def run(config, args):
    name = os.path.relpath(config, os.path.join(ROOT, "configs"))[:-5].replace("/", "_")
    folder = os.path.join(args.out, name)
    train = "(" + ", ".join(f"'{n}'" for n in swapped(train_datasets(config), args.data)) + ",)"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file", config,
           "DATASETS.TRAIN", train, "DATASETS.TEST", "()", "SOLVER.MAX_ITER", str(args.iters),
           "SOLVER.CHECKPOINT_PERIOD", "100000", "OUTPUT_DIR", folder]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    with open(folder + ".log", "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    text = open(folder + ".log").read()
    diverged = re.search(r"diverged at iteration (\d+)", text)
    losses = re.findall(r"iter: (\d+)\s+total_loss: ([\d.e+-]+)", text)
    outcome = (f"diverged at {diverged.group(1)}" if diverged else
               "finished" if rc == 0 and os.path.isfile(os.path.join(folder, "model_final.pth")) else f"exit {rc}")
    last = f"total_loss {losses[-1][1]} at iteration {losses[-1][0]}" if losses else "-"
    return f"| {os.path.relpath(config, ROOT)} | {outcome} | {last} | {time.time() - start:.0f} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="phantom", help="prepared dataset standing in for every config's data")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--out", default="output/stability")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("configs", nargs="*", help="default: every configs/*/*.yaml but the Base- ones")
    args = parser.parse_args()
    configs = args.configs or sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*", "*.yaml"))
                                     if not os.path.basename(p).startswith("Base-"))
    print("| config | outcome | last logged loss | seconds |\n|---|---|---|---|", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        for line in pool.map(lambda c: run(c, args), configs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
