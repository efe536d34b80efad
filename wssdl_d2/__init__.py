"""wssdl_d2: joint weakly and semi-supervised detection of masses in breast ultrasound, on Detectron2.

Importing the package registers what it adds to Detectron2's registries (meta-architectures, ROI heads, backbones,
evaluators, the ``wssdl_d2://`` weights prefix) and nothing else: no folder is scanned. The prepared datasets under
``$WSSDL_DATASETS`` (default ``./datasets``) are registered when a config is loaded
(:func:`wssdl_d2.config.load_config`), when a trainer builds its data loaders, or by
:func:`register_prepared_datasets`. The commands live in :mod:`wssdl_d2.cli` (``wssdl-train``, ``wssdl-demo``, ...).
"""
import warnings

# Detectron2 0.7 calls torch.jit.script at import, which this torch deprecates; the warning is noise for users.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

from . import data, engine, evaluation, modeling  # noqa: F401  (registration side effects)
from . import model_zoo  # noqa: F401  (the wssdl_d2:// path prefix for MODEL.WEIGHTS)
from .config import add_wssdl_config
from .data import register_prepared_datasets

#: The package's version: the one place it is written (pyproject.toml reads it).
__version__ = "0.1.0"
__all__ = ["add_wssdl_config", "register_prepared_datasets", "__version__"]
