"""Model zoo round trip: publish a trained checkpoint, serve it from a loopback HTTP server, get() downloads,
verifies and builds it, the cache is reused, corrupted downloads and code-running checkpoints are refused."""
import functools
import http.server
import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from wssdl_d2 import model_zoo
from wssdl_d2.model_zoo import (CheckpointNotPublished, ChecksumError, SafeDetectionCheckpointer,
                                UnsafeCheckpointError, load_checkpoint)
from wssdl_d2.release.publish import publish_checkpoint

CONFIG = "Phantom/strong_only.yaml"
SHAPE_OVERRIDES = ["MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64"]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained_run(phantom_root, tmp_path_factory):
    """A real training run (2 iterations) of the zoo config with small heads: its model_final.pth."""
    from wssdl_d2.config import resolve_device
    from wssdl_d2.engine import WSSDLTrainer

    out = tmp_path_factory.mktemp("run")
    cfg = model_zoo.get_config(CONFIG)
    cfg.merge_from_list(SHAPE_OVERRIDES + [
        "DATASETS.TRAIN", ("testphantom_train_strong_30",), "DATASETS.TEST", (),
        "INPUT.MIN_SIZE_TRAIN", (96,), "INPUT.MAX_SIZE_TRAIN", 128, "INPUT.MIN_SIZE_TEST", 96,
        "INPUT.MAX_SIZE_TEST", 128, "MODEL.RPN.POST_NMS_TOPK_TRAIN", 64, "MODEL.RPN.POST_NMS_TOPK_TEST", 32,
        "SOLVER.IMS_PER_BATCH", 2, "SOLVER.MAX_ITER", 2, "SOLVER.WARMUP_ITERS", 0, "SOLVER.STEPS", (),
        "DATALOADER.NUM_WORKERS", 0, "OUTPUT_DIR", str(out),
    ])
    resolve_device(cfg)
    WSSDLTrainer(cfg).train()
    metrics = out / "inference" / "corloc.json"
    metrics.parent.mkdir(exist_ok=True)
    metrics.write_text(json.dumps({
        "dataset": "testphantom_val", "settings": {"ci_level": 0.95, "tau": 0.5, "iou_thresh": 0.5},
        "counts": {"images": 8}, "metrics": {"CorLoc": {"value": 50.0, "lo": 25.0, "hi": 75.0},
                                             "CorLoc_top1": {"value": 37.5, "lo": 12.5, "hi": 62.5}}}))
    return {"checkpoint": out / "model_final.pth", "metrics": metrics, "cfg": cfg}


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests = []

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server (127.0.0.1 only) serving ``tmp_path / "www"``; yields (base URL, folder, requests)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = type("Handler", (CountingHandler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def published(trained_run, server, tmp_path, monkeypatch):
    """Publish the run (what tools/publish_model.py runs) into the served folder, with a private index and cache."""
    url, www, requests = server
    index, zoo_md, cache = tmp_path / "index.json", tmp_path / "MODEL_ZOO.md", tmp_path / "cache"
    _, entry = publish_checkpoint(
        str(trained_run["checkpoint"]), str(REPO / "configs" / CONFIG), str(trained_run["metrics"]), str(www),
        index_path=str(index), base_url=url + "/", zoo_md=str(zoo_md), trained_on="testphantom_train_strong_30",
        config_overrides=SHAPE_OVERRIDES)
    monkeypatch.setenv("WSSDL_MODEL_INDEX", str(index))
    monkeypatch.setenv("WSSDL_CACHE", str(cache))
    return {"entry": entry, "www": www, "requests": requests, "index": index, "zoo_md": zoo_md, "cache": cache}


def test_publish_writes_a_weights_only_file_index_entry_and_zoo_row(published, trained_run):
    entry = published["entry"]
    path = published["www"] / entry["file"]
    assert path.name == f"model_final_{entry['sha256'][:8]}.pth" and entry["file"].startswith("Phantom/strong_only/")
    assert model_zoo.download.file_sha256(path) == entry["sha256"] and entry["size"] == path.stat().st_size
    data = torch.load(path, map_location="cpu", weights_only=True)
    original = torch.load(trained_run["checkpoint"], map_location="cpu", weights_only=True)
    assert set(data) == {"model"} and set(original) - {"model"}  # the run also saved iteration / trainer state
    assert data["model"].keys() == original["model"].keys()
    assert all(torch.equal(data["model"][k], original["model"][k]) for k in data["model"])
    assert entry["config_overrides"] == SHAPE_OVERRIDES and entry["trained_on"] == "testphantom_train_strong_30"
    assert entry["metrics"]["CorLoc"] == {"value": 50.0, "lo": 25.0, "hi": 75.0}
    assert json.loads(published["index"].read_text())["models"][CONFIG]["sha256"] == entry["sha256"]
    row = next(line for line in published["zoo_md"].read_text().splitlines() if CONFIG in line)
    assert "50.0 (25.0-75.0)" in row and "37.5 (12.5-62.5)" in row and entry["url"] in row


def test_republishing_replaces_the_row(published, trained_run):
    """From the command line: tools/publish_model.py with its default base URL."""
    proc = subprocess.run([
        sys.executable, str(REPO / "tools" / "publish_model.py"), str(trained_run["checkpoint"]), "--config", CONFIG,
        "--metrics", str(trained_run["metrics"]), "--out-dir", str(published["www"]), "--index",
        str(published["index"]), "--model-zoo-md", str(published["zoo_md"]), "--opts", *SHAPE_OVERRIDES],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)[CONFIG]["config_overrides"] == SHAPE_OVERRIDES
    rows = [line for line in published["zoo_md"].read_text().splitlines() if f"[{CONFIG}]" in line]
    assert len(rows) == 1 and "file://" in rows[0]


def test_get_downloads_verifies_builds_and_reuses_the_cache(published, trained_run):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    model = model_zoo.get(CONFIG, trained=True, device="cpu")
    assert published["requests"] == ["/" + published["entry"]["file"]]
    cached = published["cache"] / "checkpoints" / published["entry"]["file"]
    assert cached.is_file() and [p.name for p in cached.parent.iterdir()] == [cached.name]

    cfg = model_zoo.get_config(CONFIG)  # the same config as get(), loaded from the unpublished run
    cfg.merge_from_list(SHAPE_OVERRIDES + ["MODEL.DEVICE", "cpu"])
    reference = build_model(cfg)
    DetectionCheckpointer(reference).load(str(trained_run["checkpoint"]))
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())
    model.eval(), reference.eval()
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, 96, 128), dtype=np.uint8))
    with torch.no_grad():
        ours, theirs = model([{"image": image}])[0]["instances"], reference([{"image": image}])[0]["instances"]
    assert torch.equal(ours.pred_boxes.tensor, theirs.pred_boxes.tensor) and torch.equal(ours.scores, theirs.scores)

    model_zoo.get(CONFIG, trained=True, device="cpu")
    assert len(published["requests"]) == 1  # second time from the cache


def test_zoo_prefix_works_in_model_weights_for_detectron2s_checkpointer(published):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    cfg = model_zoo.get_config(CONFIG, trained=True)
    cfg.MODEL.DEVICE = "cpu"
    assert cfg.MODEL.WEIGHTS == "wssdl_d2://" + CONFIG and cfg.MODEL.FPN.OUT_CHANNELS == 32
    model = build_model(cfg)
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    served = torch.load(published["www"] / published["entry"]["file"], weights_only=True)["model"]
    assert torch.equal(model.state_dict()["backbone.bottom_up.stem.conv1.weight"],
                       served["backbone.bottom_up.stem.conv1.weight"])


def test_corrupted_download_is_refused_and_only_the_partial_file_removed(published):
    served = published["www"] / published["entry"]["file"]
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF
    served.write_bytes(bytes(data))
    folder = published["cache"] / "checkpoints" / Path(published["entry"]["file"]).parent
    folder.mkdir(parents=True)
    (folder / "my_notes.txt").write_text("mine")
    with pytest.raises(ChecksumError, match=r"downloaded file has sha256 .* expects .*partial download was removed"):
        model_zoo.get(CONFIG, trained=True, device="cpu")
    assert sorted(p.name for p in folder.iterdir()) == ["my_notes.txt"]


def test_a_cached_file_that_does_not_match_is_reported_not_deleted(published):
    cached = published["cache"] / "checkpoints" / published["entry"]["file"]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"something the user put here")
    with pytest.raises(ChecksumError, match="left as it is; delete it"):
        model_zoo.resolve_zoo_path("wssdl_d2://" + CONFIG)
    assert cached.read_bytes() == b"something the user put here" and published["requests"] == []


class RunsCode:
    """Unpickling this creates a marker file: a stand-in for a checkpoint that runs code when loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused(tmp_path, trained_run):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "model_final.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "payload": RunsCode(marker)}, evil)
    with pytest.raises(UnsafeCheckpointError, match="refused: the file holds Python objects besides tensors"):
        load_checkpoint(evil)
    model = torch.nn.Linear(2, 1)
    with pytest.raises(UnsafeCheckpointError, match=str(evil)):
        SafeDetectionCheckpointer(model).load(str(evil))
    with pytest.raises(UnsafeCheckpointError):
        publish_checkpoint(str(evil), CONFIG, str(trained_run["metrics"]), str(tmp_path / "out"),
                           index_path=str(tmp_path / "i.json"), zoo_md=None)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_pickle_checkpoints_need_an_explicit_opt_in(tmp_path):
    pkl = tmp_path / "from_elsewhere.pkl"
    with open(pkl, "wb") as f:
        pickle.dump({"model": {"weight": np.ones((1, 2), np.float32)}, "__author__": "someone"}, f)
    with pytest.raises(UnsafeCheckpointError, match="refusing to read a Python pickle.*allow_pickle=True"):
        load_checkpoint(pkl)
    assert np.array_equal(load_checkpoint(pkl, allow_pickle=True)["model"]["weight"], np.ones((1, 2)))
    model = torch.nn.Linear(2, 1, bias=False)
    with pytest.raises(UnsafeCheckpointError):
        SafeDetectionCheckpointer(model).load(str(pkl))
    SafeDetectionCheckpointer(model, allow_pickle=True).load(str(pkl))
    assert torch.equal(model.weight.detach(), torch.ones(1, 2))


def test_unknown_and_unpublished_configs_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("WSSDL_MODEL_INDEX", str(tmp_path / "none.json"))
    assert model_zoo.get_config_file(CONFIG).endswith(os.path.join("configs", "Phantom", "strong_only.yaml"))
    with pytest.raises(FileNotFoundError, match="Nope/x.yaml is not a wssdl_d2 zoo config"):
        model_zoo.get_config_file("Nope/x.yaml")
    with pytest.raises(CheckpointNotPublished, match="no published checkpoint for 'Phantom/fully_supervised.yaml'"):
        model_zoo.get("Phantom/fully_supervised.yaml", trained=True, device="cpu")


def test_a_malformed_index_names_the_file(tmp_path, monkeypatch):
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"format": 1, "models": {CONFIG: {"file": "a.pth", "url": "http://127.0.0.1/a",
                                                                  "sha256": "abc"}}}))
    monkeypatch.setenv("WSSDL_MODEL_INDEX", str(index))
    with pytest.raises(ValueError, match=f"{index}.*not 64 hex digits"):
        model_zoo.get_config(CONFIG, trained=True)


def test_the_packaged_index_is_valid():
    from wssdl_d2.model_zoo.index import PACKAGED_INDEX, read_index

    from wssdl_d2.model_zoo.shipped import calibration_path, entry_weights_path, shipped_config_path

    for name, entry in read_index(PACKAGED_INDEX)["models"].items():
        model_zoo.get_config_file(name)
        if entry.get("packaged"):  # shipped in the package: every file present and matching its sha256
            entry = dict(entry, _index_dir=os.path.dirname(PACKAGED_INDEX))
            assert entry_weights_path(entry).endswith(".safetensors") and shipped_config_path(entry)
            assert calibration_path(entry) is None or calibration_path(entry).endswith(".json")
        else:
            assert entry["url"].startswith("https://") and entry["metrics"]["CorLoc"]["value"] is not None


def test_publishing_weights_that_do_not_fit_the_config_is_refused(tmp_path, trained_run):
    with pytest.raises(ValueError, match="do not fit the config's model"):
        publish_checkpoint(str(trained_run["checkpoint"]), CONFIG, str(trained_run["metrics"]), str(tmp_path / "o"),
                           index_path=str(tmp_path / "i.json"), zoo_md=None)
    assert not (tmp_path / "i.json").exists() and not (tmp_path / "o").exists()
