"""One active-annotation round on the phantom against a real, local Label Studio, timed step by step:

    suggest + push (tools/suggest_annotations.py --label-studio)  ->  the expert annotates (here: the true boxes
    posted through the API)  ->  pull (tools/pull_annotations.py)  ->  train the next round (tools/train_net.py)

Before the round (timed apart): a phantom dataset, an initial model (tools/train_net.py, --initial-iters) and a
local server (wssdl_d2.active.ls_server, from .venv-ls). After the push, a headless-Chromium screenshot of the first
task's page shows the pre-annotations (benchmarks/label_studio/screenshot.py). Writes
benchmarks/label_studio/one_round.json (times, counts, CorLoc of both models) and task_preannotations.png; the runs
go to --out (default output/label_studio_round).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/label_studio/one_round.py
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from screenshot import screenshot_task  # noqa: E402

from wssdl_d2.active.label_studio import LabelStudioClient  # noqa: E402
from wssdl_d2.active.ls_format import box_to_rect_value  # noqa: E402
from wssdl_d2.active.ls_server import start_local_server  # noqa: E402
from wssdl_d2.data.labels import THING_CLASSES  # noqa: E402
from wssdl_d2.data.wssdl_json import load_wssdl_json  # noqa: E402

CONFIG = "configs/Phantom/quickstart_wssdl.yaml"
PROJECT = "phantom round 1"


def run(cmd, log, env):
    """Run a tool, its output into ``log``; returns (seconds, stdout text)."""
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, env=env, cwd=ROOT)
        f.write(proc.stdout)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed (exit {proc.returncode}); see {log}")
    return time.monotonic() - t0, proc.stdout


def schedule(iters):
    return ["SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS", f"({iters * 3 // 4},)", "SOLVER.CHECKPOINT_PERIOD",
            str(iters), "WSSDL.MIL.ALPHA.STEP", str(max(1, iters // 4))]


def corloc(run_dir):
    with open(os.path.join(run_dir, "inference", "corloc.json")) as f:
        return json.load(f)


def expert_annotates(client, project_id, truth, skip_last=True):
    """The simulated expert: every task gets the true boxes of its image (the last one is skipped)."""
    tasks = sorted(client.export_tasks(project_id), key=lambda t: t["data"]["rank"])
    for k, task in enumerate(tasks):
        if skip_last and k == len(tasks) - 1:
            body = {"result": [], "was_cancelled": True}
        else:
            record = truth[task["data"]["wssdl_source"]]
            w, h = record["width"], record["height"]
            body = {"result": [{"from_name": "mass", "to_name": "image", "type": "rectanglelabels",
                                "original_width": w, "original_height": h, "image_rotation": 0,
                                "value": {**box_to_rect_value(a["bbox"], w, h),
                                          "rectanglelabels": [THING_CLASSES[a["category_id"]]]}}
                               for a in record["annotations"]]}
        client._call("POST", f"/api/tasks/{task['id']}/annotations/", json=body)
    return tasks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="output/label_studio_round")
    parser.add_argument("--initial-iters", type=int, default=300)
    parser.add_argument("--round-iters", type=int, default=150)
    parser.add_argument("--top", type=int, default=12, help="images pushed to Label Studio")
    parser.add_argument("--no-screenshot", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the phantom and the initial model of an earlier "
                                                             "run in --out (the round is redone)")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    initial = os.path.join(out, "initial")
    reuse = args.reuse and os.path.isfile(os.path.join(initial, "model_final.pth"))
    if os.path.exists(out):
        if reuse:  # drop the earlier round, keep the data and the initial model
            for name in ("label_studio", "suggest", "round1"):
                shutil.rmtree(os.path.join(out, name), ignore_errors=True)
            for name in os.listdir(os.path.join(out, "datasets", "lsphantom")):
                if "_ls" in name:
                    os.remove(os.path.join(out, "datasets", "lsphantom", name))
            report = os.path.join(out, "datasets", "lsphantom", "meta", "label_studio_ls1.json")
            if os.path.exists(report):
                os.remove(report)
        else:
            shutil.rmtree(out)  # the benchmark's own folder
    data = os.path.join(out, "datasets", "lsphantom")
    py = os.path.join(ROOT, ".venv", "bin", "python")
    env = dict(os.environ, WSSDL_DATASETS=os.path.join(out, "datasets"), PYTHONWARNINGS="ignore",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    data_opts = ["DATASETS.TRAIN", "('lsphantom_train_strong_20','lsphantom_train_weak_20')",
                 "DATASETS.TEST", "('lsphantom_val',)"]
    times = {}
    if not reuse:
        os.makedirs(out)
        times["make_phantom"], _ = run([py, "tools/make_phantom.py", "--out", data, "--counts", "20", "60", "60",
                                        "--size", "96", "128", "--strong-fraction", "0.2", "--val-fraction", "0.3",
                                        "--seed", "0"], os.path.join(out, "make_phantom.log"), env)
        times["train_initial"], _ = run([py, "tools/train_net.py", "--config-file", CONFIG] + data_opts
                                        + schedule(args.initial_iters) + ["OUTPUT_DIR", initial],
                                        os.path.join(out, "train_initial.log"), env)
    t0 = time.monotonic()
    server = start_local_server(os.path.join(out, "label_studio"), timeout=1200)
    times["server_start"] = time.monotonic() - t0
    try:
        env["LABEL_STUDIO_API_KEY"] = server.token
        client = LabelStudioClient(server.url, server.token)
        round_start, load_start = time.monotonic(), os.getloadavg()[0]
        times["suggest_push"], push_out = run(
            [py, "tools/suggest_annotations.py", "--config-file", CONFIG, "--dataset", "lsphantom_train_weak_20",
             "--output", os.path.join(out, "suggest"), "--top", str(args.top), "--label-studio", server.url,
             "--project", PROJECT, "MODEL.WEIGHTS", os.path.join(initial, "model_final.pth")] + data_opts,
            os.path.join(out, "suggest.log"), env)
        project_id = client.find_project(PROJECT)["id"]
        paused = time.monotonic()
        shot = None
        if not args.no_screenshot:
            first = min(client.export_tasks(project_id), key=lambda t: t["data"]["rank"])
            try:
                shot = screenshot_task(server.url, server.email, server.password, project_id, first["id"],
                                       os.path.join(HERE, "task_preannotations.png"), settle=20)
            except (OSError, RuntimeError, TimeoutError) as err:
                print(f"screenshot failed: {err}", file=sys.stderr)
        times["screenshot (not in the round)"] = time.monotonic() - paused
        t0 = time.monotonic()
        truth = {os.path.abspath(r["file_name"]): r for r in load_wssdl_json(os.path.join(data, "train_all.json"))}
        tasks = expert_annotates(client, project_id, truth)
        times["annotate_via_api"] = time.monotonic() - t0
        times["pull"], pull_out = run(
            [py, "tools/pull_annotations.py", "--label-studio", server.url, "--project", PROJECT,
             "--strong", os.path.join(data, "train_strong_20.json"), "--weak", os.path.join(data, "train_weak_20.json"),
             "--config-file", CONFIG], os.path.join(out, "pull.log"), env)
        next_opts = ["DATASETS.TRAIN", "('lsphantom_train_strong_20_ls1','lsphantom_train_weak_20_ls1')",
                     "DATASETS.TEST", "('lsphantom_val',)"]
        round1 = os.path.join(out, "round1")
        times["train_next_round"], _ = run(
            [py, "tools/train_net.py", "--config-file", CONFIG] + next_opts + schedule(args.round_iters)
            + ["MODEL.WEIGHTS", os.path.join(initial, "model_final.pth"), "OUTPUT_DIR", round1],
            os.path.join(out, "train_round1.log"), env)
        round_seconds = time.monotonic() - round_start - times["screenshot (not in the round)"]
    finally:
        server.stop()
    strong = load_wssdl_json(os.path.join(data, "train_strong_20_ls1.json"))
    result = {
        "round_seconds (suggest+push, annotate via API, pull, train)": round(round_seconds, 1),
        "step_seconds": {k: round(v, 1) for k, v in times.items()},
        "pushed_tasks": len(tasks), "strong_images_before": len(load_wssdl_json(os.path.join(data, "train_strong_20.json"))),
        "strong_images_after": len(strong), "initial_iters": args.initial_iters, "round_iters": args.round_iters,
        "corloc_initial": corloc(initial), "corloc_round1": corloc(round1),
        "push_output": push_out.strip().splitlines()[-1], "pull_output": pull_out.strip().splitlines(),
        "screenshot": os.path.relpath(shot, ROOT) if shot else None,
        "machine": f"{os.cpu_count()} CPU cores, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}",
        "load_average_1min (round start, end)": [round(load_start, 1), round(os.getloadavg()[0], 1)],
    }
    with open(os.path.join(HERE, "one_round.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
