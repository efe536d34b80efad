"""Releasing a trained model (the library behind ``tools/publish_model.py``): publishing a weights-only checkpoint
with its index entry and MODEL_ZOO.md row (:mod:`.publish`), and shipping a model inside the package with the
float16 storage check (:mod:`.ship`). It evaluates and runs models, so it stands above ``inference`` and
``evaluation``; the runtime zoo that reads what it writes is :mod:`wssdl_d2.model_zoo`."""
from .publish import publish_checkpoint
from .ship import ship_checkpoint

__all__ = ["publish_checkpoint", "ship_checkpoint"]
