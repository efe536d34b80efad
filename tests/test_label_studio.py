"""The Label Studio loop: coordinates and answers converted exactly (no server), clear errors when the server is down
or refuses the key (nothing written), and push -> expert annotations -> pull against a real Label Studio server.

The server tests (marker ``label_studio``) start one ``label-studio`` per session (``<repo>/.venv-ls``, installed by
``tools/setup_env.sh --label-studio``, which the README's test command runs) on 127.0.0.1 with its own SQLite data
folder under tmp and a token made at start-up. Without the server they are skipped, except under CI (``$CI``),
where a missing server fails them."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from wssdl_d2.active.label_studio import (LabelStudioClient, LabelStudioError, api_key_from_env, connect,
                                          pull_annotations, push_suggestions, split_paths, write_pulled_split)
from wssdl_d2.active.ls_format import (LABEL_CONFIG, box_to_rect_value, prediction_result, read_annotation_result,
                                       rect_value_to_box)
from wssdl_d2.active.ls_server import find_label_studio, free_port, start_local_server
from wssdl_d2.data.wssdl_json import load_wssdl_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the test server's access tokens last this long (Label Studio's default, 5 minutes, set shorter through its Django
# settings: see ls_server.start_local_server), so the tests see a personal access token's access token expire
ACCESS_SECONDS = 6
pytestmark = pytest.mark.usefixtures("one_thread")


def rect(x, y, w, h, label, rotation=0.0, size=(128, 96)):
    return {"from_name": "mass", "to_name": "image", "type": "rectanglelabels", "original_width": size[0],
            "original_height": size[1], "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                                                  "rectanglelabels": [label]}}


def diagnosis(name):
    return {"from_name": "diagnosis", "to_name": "image", "type": "choices", "value": {"choices": [name]}}


# ---------------------------------------------------------------- no server


def test_percent_coordinates_convert_exactly_both_ways():
    # hand-made: a 128 x 96 image, x 12.5 % = 16 px, y 25 % = 24 px, 25 % x 50 % = 32 x 48 px
    assert rect_value_to_box({"x": 12.5, "y": 25, "width": 25, "height": 50}, 128, 96) == [16.0, 24.0, 48.0, 72.0]
    value = box_to_rect_value([13.7, 5.25, 100.1, 90.0], 128, 96)
    assert value["x"] == pytest.approx(100 * 13.7 / 128) and value["height"] == pytest.approx(100 * 84.75 / 96)
    assert rect_value_to_box(value, 128, 96) == pytest.approx([13.7, 5.25, 100.1, 90.0], abs=1e-9)
    # clipped to the image; a rectangle rotated 90 degrees about its top-left corner
    assert box_to_rect_value([-5, -5, 200, 50], 128, 96)["width"] == pytest.approx(100.0)
    assert rect_value_to_box({"x": 50, "y": 0, "width": 10, "height": 20, "rotation": 90}, 100, 100) == \
        pytest.approx([30.0, 0.0, 50.0, 10.0])
    with pytest.raises(ValueError, match="numeric"):
        rect_value_to_box({"x": "a", "y": 0, "width": 1, "height": 1}, 10, 10)


def test_prediction_result_and_expert_answers():
    result = prediction_result([[16, 24, 48, 72]], [1], [0.8], 128, 96, image_label=2)
    assert result[0]["value"]["rectanglelabels"] == ["malignant"] and result[0]["score"] == pytest.approx(0.8)
    assert result[-1]["value"]["choices"] == ["malignant"]
    assert 'name="mass"' in LABEL_CONFIG and 'name="diagnosis"' in LABEL_CONFIG
    answer = read_annotation_result(result, 128, 96)  # a prediction accepted as it is reads back unchanged
    assert answer.boxes == [pytest.approx([16, 24, 48, 72])] and answer.classes == [1] and answer.diagnosis == 2
    odd = read_annotation_result([rect(1, 1, 5, 5, "cyst"), rect(1, 1, 5, 5, "benign", size=(64, 64)),
                                  rect(1, 1, 0, 5, "benign"), diagnosis("maybe")], 128, 96)
    assert not odd.boxes and len(odd.problems) == 4, odd.problems
    assert read_annotation_result([diagnosis("normal")], 128, 96).diagnosis == 0


class _ExportedProject:
    """The two calls pull_annotations makes, answered from a list of exported tasks (no server)."""

    url = "http://label-studio.invalid"

    def __init__(self, tasks):
        self.tasks = tasks

    def find_project(self, title):
        return {"id": 1, "title": title}

    def export_tasks(self, project_id):
        return self.tasks


def test_pull_sorts_each_answer_by_the_image_label(tmp_path):
    """Which answers make an image strong and which leave it weak, for normal, benign and malignant images."""
    names = ["normal_empty", "normal_boxed", "benign_ok", "benign_other_class", "malignant_no_box",
             "malignant_diagnosis_differs", "skipped", "waiting"]
    labels = [0, 0, 1, 1, 2, 2, 1, 2]
    weak = [{"file_name": str(tmp_path / f"{n}.png"), "image_label": y, "width": 128, "height": 96,
             "supervision": "weak"} for n, y in zip(names, labels)]
    results = [[diagnosis("normal")], [rect(10, 10, 20, 20, "benign")], [rect(12.5, 25, 25, 50, "benign")],
               [rect(10, 10, 20, 20, "malignant")], [diagnosis("malignant")],
               [rect(10, 10, 20, 20, "malignant"), diagnosis("benign")], None, "none"]
    tasks = []
    for k, (record, result) in enumerate(zip(weak, results)):
        annotations = ([] if result == "none" else [{"id": 100 + k, "was_cancelled": True, "result": []}]
                       if result is None else [{"id": 100 + k, "result": result, "completed_by": 1}])
        tasks.append({"id": k + 1, "data": {"wssdl_source": record["file_name"]}, "annotations": annotations})
    tasks.append({"id": 99, "data": {"wssdl_source": str(tmp_path / "elsewhere.png")}, "annotations": []})
    report = pull_annotations(_ExportedProject(tasks), "p", weak)
    assert [os.path.basename(r["file_name"]) for r in report.strong] == ["normal_empty.png", "benign_ok.png"]
    normal, benign = report.strong
    assert normal["supervision"] == "strong" and normal["annotations"] == []
    assert benign["annotations"][0]["bbox"] == [16.0, 24.0, 48.0, 72.0] and benign["annotations"][0]["category_id"] == 0
    conflicts = {name: why for _, name, why in report.conflicts}
    assert set(conflicts) == {"normal_boxed.png", "benign_other_class.png", "malignant_diagnosis_differs.png"}
    assert conflicts["normal_boxed.png"] == "1 rectangle(s) on a normal image"
    assert "other class on a benign image" in conflicts["benign_other_class.png"]
    assert "differs from the image label 'malignant'" in conflicts["malignant_diagnosis_differs.png"]
    assert [n for _, n, _ in report.no_mass] == ["malignant_no_box.png"]
    assert [n for _, n, _ in report.skipped] == ["skipped.png"]
    assert [n for _, n, _ in report.incomplete] == ["waiting.png"]
    assert [t for t, _, _ in report.unknown] == [99]


def test_missing_key_and_a_server_that_is_down_give_clear_errors(tmp_path, phantom_root):
    with pytest.raises(LabelStudioError, match="LABEL_STUDIO_API_KEY"):
        api_key_from_env({})
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(LabelStudioError, match="not reachable"):
        connect(url, {"LABEL_STUDIO_API_KEY": "x" * 40}, timeout=5)
    # the tools: one error line, nothing written
    env = dict(os.environ, LABEL_STUDIO_API_KEY="x" * 40, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               WSSDL_DATASETS=str(phantom_root.parent))
    out = tmp_path / "suggest"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "suggest_annotations.py"), "--config-file",
                           os.path.join(ROOT, "configs", "Phantom", "wssdl.yaml"), "--output", str(out),
                           "--label-studio", url, "--project", "p"], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 2 and "not reachable" in proc.stderr, proc.stderr[-2000:]
    assert not out.exists()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "pull_annotations.py"), "--label-studio", url,
                           "--project", "p", "--strong", str(phantom_root / "train_strong_30.json"),
                           "--weak", str(phantom_root / "train_weak_30.json"), "--out-dir", str(tmp_path / "split")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2 and "not reachable" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "split").exists()


# ---------------------------------------------------------------- a real server


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory):
    if find_label_studio() is None:
        message = "no label-studio server installed (tools/setup_env.sh --label-studio)"
        if os.environ.get("CI"):
            pytest.fail(message + " - CI must run the Label Studio tests")
        pytest.skip(message)
    server = start_local_server(str(tmp_path_factory.mktemp("label_studio")), timeout=600,
                                access_token_lifetime=ACCESS_SECONDS)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def personal_access_token(ls_server):
    """A personal access token (Label Studio's default kind of key: a JWT refresh token) of the server's user."""
    pat = LabelStudioClient(ls_server.url, ls_server.token)._call("POST", "/api/token/")["token"]
    assert pat.count(".") == 2
    return pat


@pytest.fixture(scope="module")
def ranked(phantom_root, tmp_path_factory):
    """(rows, analyses, weak records, config path, opts) of a seeded untrained tiny model on the phantom's weak
    images (detections kept down to score 0, so every image has pre-annotations)."""
    from detectron2.config import get_cfg
    from detectron2.data import DatasetCatalog

    from wssdl_d2.active.suggest import suggest_with_analyses
    from wssdl_d2.config import add_wssdl_config, load_config, resolve_device
    from wssdl_d2.engine import WSSDLTrainer
    from wssdl_d2.inference import WSSDLPredictor

    from conftest import PHANTOM_CONFIG, TINY_OPTS

    folder = tmp_path_factory.mktemp("ls_model")
    cfg = get_cfg()
    add_wssdl_config(cfg)
    cfg.merge_from_file(PHANTOM_CONFIG)
    cfg.merge_from_list(TINY_OPTS + ["OUTPUT_DIR", str(folder)])
    resolve_device(cfg)
    torch.manual_seed(0)
    DetectionCheckpointer(WSSDLTrainer.build_model(cfg), save_dir=str(folder)).save("model")
    config = str(folder / "cfg.yaml")
    with open(config, "w") as f:
        f.write(cfg.dump())
    opts = ["MODEL.WEIGHTS", str(folder / "model.pth"), "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
            "WSSDL.EVAL.SCORE_THRESH", "0.0", "TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.DEVICE", "cpu"]
    weak = [d for d in DatasetCatalog.get("testphantom_train_weak_30") if d["supervision"] == "weak"]
    rows, analyses = suggest_with_analyses(WSSDLPredictor(load_config(config, opts)), weak)
    return rows, analyses, weak, config, opts


@pytest.mark.label_studio
def test_a_refused_key_is_a_clear_error_and_both_kinds_of_token_work(ls_server, personal_access_token):
    with pytest.raises(LabelStudioError, match="refused the API key"):
        connect(ls_server.url, {"LABEL_STUDIO_API_KEY": "0" * 40})
    legacy = connect(ls_server.url, {"LABEL_STUDIO_API_KEY": ls_server.token})
    assert legacy.whoami()["email"] == ls_server.email
    # a personal access token (Label Studio's default kind): a JWT refresh token exchanged for an access token
    pat = personal_access_token
    assert connect(ls_server.url, {"LABEL_STUDIO_API_KEY": pat}).whoami()["email"] == ls_server.email
    with pytest.raises(LabelStudioError, match="refused the API key"):
        connect(ls_server.url, {"LABEL_STUDIO_API_KEY": pat[:-4] + "AAAA"})


@pytest.mark.label_studio
def test_a_personal_access_token_outlasts_its_access_token(ls_server, personal_access_token):
    """A client used past its access token's lifetime refreshes it and goes on (it failed as 'refused the API key')."""
    import requests

    client = connect(ls_server.url, {"LABEL_STUDIO_API_KEY": personal_access_token})
    first = client.session.headers["Authorization"]
    time.sleep(ACCESS_SECONDS + 2)
    # the server does expire it: the first access token alone is refused now
    stale = requests.get(ls_server.url + "/api/current-user/whoami", headers={"Authorization": first}, timeout=60,
                         allow_redirects=False)
    assert stale.status_code == 401, (stale.status_code, stale.text[:200])
    assert client.whoami()["email"] == ls_server.email
    assert client.session.headers["Authorization"] not in (first, "")
    time.sleep(ACCESS_SECONDS + 2)  # and again after another expiry, for a project created and read back
    project, created = client.ensure_project("personal access token")
    assert created and client.find_project("personal access token")["id"] == project["id"]


@pytest.mark.label_studio
def test_push_annotate_pull_round_trip(ls_server, ranked, phantom_root, tmp_path):
    rows, analyses, weak, _, _ = ranked
    client = LabelStudioClient(ls_server.url, ls_server.token)
    pushed = push_suggestions(client, "round trip", rows, analyses, top=5, model="model.pth")
    assert pushed["project_created"] and len(pushed["created"]) == 5 and not pushed["existing"]
    again = push_suggestions(client, "round trip", rows, analyses, top=6)  # one more, no duplicates
    assert not again["project_created"] and len(again["created"]) == 1 and len(again["existing"]) == 5
    tasks = {t["data"]["wssdl_source"]: t for t in client.export_tasks(pushed["project_id"])}
    assert len(tasks) == 6 and sorted(tasks) == sorted(os.path.abspath(r["file_name"]) for r in rows[:6])
    # every task: its image served by Label Studio, the model's boxes as a prediction scored by informativeness
    for row in rows[:6]:
        task = tasks[os.path.abspath(row["file_name"])]
        assert task["data"]["informativeness"] == pytest.approx(row["score"]) and task["data"]["rank"] == row["rank"]
        png = client._call("GET", task["data"]["image"], raw=True).content
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        (prediction,) = client._call("GET", "/api/predictions", params={"task": task["id"]})
        assert prediction["score"] == pytest.approx(row["score"])
        regions = [r for r in prediction["result"] if r["type"] == "rectanglelabels"]
        p = analyses[row["file_name"]].prediction
        assert len(regions) == min(len(p.scores), 5) > 0
        assert [r["score"] for r in regions] == pytest.approx(p.scores[:len(regions)].tolist())
        assert rect_value_to_box(regions[0]["value"], p.width, p.height) == pytest.approx(p.boxes[0].tolist(), abs=1e-3)

    # the expert, through the API: a hand-made box, a box + diagnosis, a skip, a "no mass", a conflict; one left
    order = [tasks[os.path.abspath(r["file_name"])] for r in rows[:6]]
    label = [r["image_label"] for r in rows[:6]]
    cls = ["benign", "malignant"]
    answers = [
        [rect(12.5, 25, 25, 50, cls[label[0] - 1])],                                   # -> [16, 24, 48, 72]
        [rect(100 * 10.3 / 128, 100 * 7 / 96, 100 * 30 / 128, 100 * 20.5 / 96, cls[label[1] - 1]),
         diagnosis(["normal", "benign", "malignant"][label[1]])],
        None,                                                                          # skipped
        [diagnosis("normal")],                                                         # no mass
        [rect(10, 10, 20, 20, cls[2 - label[4]])],                                     # the other class
    ]
    for task, result in zip(order, answers):
        body = {"result": [], "was_cancelled": True} if result is None else {"result": result}
        client._call("POST", f"/api/tasks/{task['id']}/annotations/", json=body)
    report = pull_annotations(client, "round trip", weak, load_wssdl_json(str(phantom_root / "train_strong_30.json")))
    files = {os.path.abspath(r["file_name"]): r for r in report.strong}
    assert sorted(files) == sorted(os.path.abspath(r["file_name"]) for r in rows[:2])
    first, second = files[os.path.abspath(rows[0]["file_name"])], files[os.path.abspath(rows[1]["file_name"])]
    assert first["annotations"][0]["bbox"] == [16.0, 24.0, 48.0, 72.0]
    assert second["annotations"][0]["bbox"] == pytest.approx([10.3, 7.0, 40.3, 27.5], abs=1e-9)
    assert first["supervision"] == "strong" and first["image_label"] == label[0]
    assert first["annotations"][0]["category_id"] == label[0] - 1
    assert [t for t, _, _ in report.skipped] == [order[2]["id"]]
    assert [t for t, _, _ in report.no_mass] == [order[3]["id"]] and "no mass" in report.no_mass[0][2]
    assert [t for t, _, _ in report.conflicts] == [order[4]["id"]]
    assert [t for t, _, _ in report.incomplete] == [order[5]["id"]]

    # the new split beside the old one: loads as a dataset, strong + 2, weak - 2; never overwritten
    strong_json, weak_json = str(phantom_root / "train_strong_30.json"), str(phantom_root / "train_weak_30.json")
    paths = split_paths(strong_json, weak_json, "t1", str(tmp_path / "split"))
    old_strong = load_wssdl_json(strong_json)
    write_pulled_split(report, old_strong, weak, paths)
    new_strong, new_weak = load_wssdl_json(paths["strong"]), load_wssdl_json(paths["weak"])
    assert len(new_strong) == len(old_strong) + 2 and len(new_weak) == len(weak) - 2
    pulled = {os.path.abspath(r["file_name"]): r for r in new_strong if r.get("ls_task")}
    assert pulled[os.path.abspath(rows[0]["file_name"])]["annotations"][0]["bbox"] == [16.0, 24.0, 48.0, 72.0]
    assert pulled[os.path.abspath(rows[0]["file_name"])]["annotations"][0]["source"] == "label_studio"
    with open(paths["report"]) as f:
        assert len(json.load(f)["no_mass"]) == 1
    with pytest.raises(FileExistsError, match="never overwrites"):
        write_pulled_split(report, old_strong, weak, paths)


@pytest.mark.label_studio
def test_the_tools_push_and_pull(ls_server, ranked, phantom_root, tmp_path):
    """suggest_annotations.py --label-studio then pull_annotations.py, as a user runs them."""
    _, _, _, config, opts = ranked
    env = dict(os.environ, LABEL_STUDIO_API_KEY=ls_server.token, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               WSSDL_DATASETS=str(phantom_root.parent))
    push = [sys.executable, os.path.join(ROOT, "tools", "suggest_annotations.py"), "--config-file", config,
            "--dataset", "testphantom_train_weak_30", "--top", "3", "--label-studio", ls_server.url,
            "--project", "tools"]
    proc = subprocess.run(push + ["--output", str(tmp_path / "s1")] + opts, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 task(s) created, 0 already there" in proc.stdout
    proc = subprocess.run(push + ["--output", str(tmp_path / "s2")] + opts, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0 and "0 task(s) created, 3 already there" in proc.stdout, proc.stderr[-3000:]
    client = LabelStudioClient(ls_server.url, ls_server.token)
    tasks = client.export_tasks(client.find_project("tools")["id"])
    for task in tasks[:2]:
        cls = task["data"]["image_label"]
        client._call("POST", f"/api/tasks/{task['id']}/annotations/", json={"result": [rect(25, 25, 50, 50, cls)]})
    out = tmp_path / "datasets" / "testphantom"
    pull = [sys.executable, os.path.join(ROOT, "tools", "pull_annotations.py"), "--label-studio", ls_server.url,
            "--project", "tools", "--strong", str(phantom_root / "train_strong_30.json"),
            "--weak", str(phantom_root / "train_weak_30.json"), "--out-dir", str(out)]
    proc = subprocess.run(pull, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 image(s) annotated (2 boxes)" in proc.stdout and "not annotated yet" in proc.stdout
    assert "DATASETS.TRAIN \"('testphantom_train_strong_30_ls1','testphantom_train_weak_30_ls1')\"" in proc.stdout
    assert (out / "train_strong_30_ls1.json").is_file() and (out / "meta" / "label_studio_ls1.json").is_file()
    proc = subprocess.run(pull, capture_output=True, text=True, timeout=300, env=env)  # the next free tag
    assert proc.returncode == 0 and (out / "train_strong_30_ls2.json").is_file(), proc.stderr[-3000:]
