"""One base for every error meant for a user (wssdl_d2.errors.UserError): each keeps its built-in base, and a
tool's entry point (wssdl_d2.cli.run_main) turns any of them into one ``error: ...`` line with exit status 2."""
import pytest

from wssdl_d2.active.label_studio import LabelStudioError
from wssdl_d2.cli import run_main
from wssdl_d2.config_file import ConfigError
from wssdl_d2.crossval.runs import CrossValError
from wssdl_d2.data.dicom_codecs import PixelDecodeError
from wssdl_d2.data.errors import DatasetError
from wssdl_d2.engine.divergence import TrainingDivergedError
from wssdl_d2.engine.evaluate import EvalOnlyError
from wssdl_d2.errors import UserError
from wssdl_d2.evaluation.results_io import ResultsError
from wssdl_d2.model_zoo.download import ChecksumError, DownloadError
from wssdl_d2.model_zoo.index import CheckpointNotPublished
from wssdl_d2.model_zoo.safe_load import CheckpointError, UnreadableCheckpointError, UnsafeCheckpointError
from wssdl_d2.model_zoo.shipped import ShippedFileMissing
from wssdl_d2.modeling.backbone.efficientnet_weights import PretrainedWeightsError
from wssdl_d2.selftrain.rounds import StateError

KEPT_BASES = [
    (ConfigError, ValueError), (DatasetError, ValueError), (PixelDecodeError, Exception),
    (TrainingDivergedError, FloatingPointError), (EvalOnlyError, ValueError), (ResultsError, ValueError),
    (CrossValError, ValueError), (StateError, ValueError), (LabelStudioError, RuntimeError),
    (UnsafeCheckpointError, ValueError), (UnsafeCheckpointError, RuntimeError), (UnreadableCheckpointError, ValueError),
    (CheckpointError, RuntimeError), (CheckpointNotPublished, LookupError), (ShippedFileMissing, FileNotFoundError),
    (DownloadError, RuntimeError), (ChecksumError, DownloadError), (PretrainedWeightsError, RuntimeError),
]


@pytest.mark.parametrize("error,base", KEPT_BASES, ids=lambda x: x.__name__)
def test_every_user_error_is_a_user_error_and_keeps_its_base(error, base):
    assert issubclass(error, UserError) and issubclass(error, base)


def test_run_main_prints_one_line_for_a_user_error(capsys):
    def main(message):
        raise CrossValError(message)

    with pytest.raises(SystemExit) as stop:
        run_main(main, "runs/fold0: no config.yaml")
    assert stop.value.code == 2 and capsys.readouterr().err == "error: runs/fold0: no config.yaml\n"


def test_run_main_lets_other_errors_through():
    def main():
        raise KeyError("a bug, not a user's mistake")

    with pytest.raises(KeyError):
        run_main(main)
    assert run_main(lambda x: x + 1, 1) == 2
