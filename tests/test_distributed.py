"""Two training processes on CPU (gloo) through Detectron2's ``launch``, as ``tools/train_net.py --num-gpus 2``
starts them: each rank's batches hold exactly WSSDL.STRONG_PER_BATCH strong then WSSDL.WEAK_PER_BATCH weak images,
the ranks draw different images, and the run ends with model_final.pth.

The run is tools/train_net.py's own work (``train_or_evaluate``) under ``launch``; a small driver only wraps
``WSSDLTrainer.build_train_loader`` in each process to record what every batch held (one JSON line per step).
"""
import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRONG, WEAK, ITERS = 1, 2, 3

DRIVER = r'''
import json, os, sys
from wssdl_d2.cli.train_net import train_or_evaluate  # what tools/train_net.py (wssdl-train) launches
from detectron2.engine import default_argument_parser, launch
from detectron2.utils import comm
from wssdl_d2.engine import WSSDLTrainer

ORIGINAL = WSSDLTrainer.build_train_loader.__func__


class RecordingLoader:
    """Yields the trainer's batches unchanged, writing each batch's composition to batches.rank<r>.jsonl."""

    def __init__(self, loader, folder):
        self.loader, self.folder = loader, folder
        self.batch_sizes = loader.batch_sizes
        self.weak_image_labels = loader.weak_image_labels

    def __iter__(self):
        path = os.path.join(self.folder, f"batches.rank{comm.get_rank()}.jsonl")
        with open(path, "a") as out:
            for batch in self.loader:
                images = batch if isinstance(batch, list) else batch["strong"] + batch["weak"]
                out.write(json.dumps({"world": comm.get_world_size(), "supervision": [d["supervision"] for d in images],
                                      "files": [d["file_name"] for d in images]}) + "\n")
                out.flush()
                yield batch


def build_train_loader(cls, cfg):
    return RecordingLoader(ORIGINAL(cls, cfg), cfg.OUTPUT_DIR)


def main(args):
    WSSDLTrainer.build_train_loader = classmethod(build_train_loader)
    return train_or_evaluate(args)


if __name__ == "__main__":
    args = default_argument_parser().parse_args(sys.argv[2:])
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))
'''


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_get_the_configured_strong_weak_composition(tiny_opts, phantom_root, tmp_path):
    out = tmp_path / "output"
    out.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    opts = list(tiny_opts) + [
        "DATASETS.TRAIN", "('testphantom_train_strong_30', 'testphantom_train_weak_30')",
        "WSSDL.STRONG_PER_BATCH", str(STRONG), "WSSDL.WEAK_PER_BATCH", str(WEAK),
        "SOLVER.IMS_PER_BATCH", str(2 * (STRONG + WEAK)), "SOLVER.MAX_ITER", str(ITERS), "DATASETS.TEST", "()",
    ]
    config = os.path.join(ROOT, "configs", "Phantom", "wssdl.yaml")
    cmd = [sys.executable, str(driver), ROOT, "--config-file", config,
           "--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{_free_port()}"] + opts
    env = dict(os.environ, WSSDL_DATASETS=str(phantom_root.parent), PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, log
    assert (out / "model_final.pth").exists() and (out / "last_checkpoint").read_text() == "model_final.pth"

    steps = {}
    for rank in (0, 1):
        lines = (out / f"batches.rank{rank}.jsonl").read_text().splitlines()
        steps[rank] = [json.loads(line) for line in lines]
        assert len(steps[rank]) >= ITERS, log  # the loader may run a batch ahead
        for step in steps[rank]:
            assert step["world"] == 2
            assert step["supervision"] == ["strong"] * STRONG + ["weak"] * WEAK, step
    # the ranks draw their own shards of each stream: no image twice in the first steps (8 strong, 15 weak images)
    for first, width in ((0, STRONG), (STRONG, WEAK)):
        drawn = [i for rank in (0, 1) for step in steps[rank][:ITERS] for i in step["files"][first:first + width]]
        assert len(drawn) == len(set(drawn)), drawn
