"""The config entry point: a run folder's config.yaml from an older version stays loadable, and a bad key or file
is named in the error."""
import os

import pytest

from wssdl_d2.config import merge_config

PHANTOM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "Phantom", "strong_only.yaml")


def test_removed_keys_of_older_runs_are_ignored(tmp_path):
    old = tmp_path / "config.yaml"
    old.write_text(f'_BASE_: "{os.path.abspath(PHANTOM)}"\nWSSDL:\n  IMAGE_LABEL_NAMES: ["normal", "benign", '
                   '"malignant"]\n')
    cfg = merge_config(str(old))
    assert "IMAGE_LABEL_NAMES" not in cfg.WSSDL and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 2


def test_unknown_keys_and_files_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'_BASE_: "{os.path.abspath(PHANTOM)}"\nWSSDL:\n  NO_SUCH_KEY: 1\n')
    with pytest.raises(ValueError, match=f"{bad}.*NO_SUCH_KEY"):
        merge_config(str(bad))
    with pytest.raises(ValueError, match="SOLVER.NO_SUCH"):
        merge_config(PHANTOM, ["SOLVER.NO_SUCH", "1"])
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        merge_config(str(tmp_path / "missing.yaml"))
