"""wssdl_d2: joint weakly and semi-supervised detection of masses in breast ultrasound, on Detectron2.

Importing the package registers everything it adds to Detectron2's registries and the prepared datasets found
under ``$WSSDL_DATASETS`` (default ``./datasets``).
"""
import warnings

# Detectron2 0.7 calls torch.jit.script at import, which this torch deprecates; the warning is noise for users.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

from . import data, engine, evaluation, modeling  # noqa: F401  (registration side effects)
from . import model_zoo  # noqa: F401  (the wssdl_d2:// path prefix for MODEL.WEIGHTS)
from .config import add_wssdl_config
from .data import register_datasets_under, default_dataset_root

register_datasets_under(default_dataset_root())

__version__ = "0.1.0"
__all__ = ["add_wssdl_config", "__version__"]
