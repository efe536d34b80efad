#!/usr/bin/env python
"""Training step and inference time of the joint method against Detectron2's plain Faster R-CNN: the ``train``
and ``infer`` parts of tools/benchmark.py (same arguments; ``--parts`` adds memory, loader, eval).

    python tools/benchmark_speed.py --config-file configs/Phantom/wssdl.yaml --dataset phantom_train_all \\
        --reps 20 --threads 1 --out speed.json
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wssdl_d2.benchmark.run import main  # noqa: E402

if __name__ == "__main__":
    main(default_parts=("train", "infer"))
