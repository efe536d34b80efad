"""Speed and memory of the joint method against Detectron2's plain Faster R-CNN, side by side.

``tools/benchmark.py`` is the command line (:mod:`wssdl_d2.cli.benchmark`); the parts live in small modules:

- :mod:`.models` - the joint and the plain model built from one config with the same weights, and their inputs;
- :mod:`.timing` - interleaved timing of training steps and of single-image inference;
- :mod:`.memory` - peak memory of a training / inference phase, each in a fresh process;
- :mod:`.loader` - images/s the trainer's strong / weak stream loader delivers;
- :mod:`.eval_time` - inference and CorLocEvaluator time on the validation split;
- :mod:`.report` - the Markdown table of a result;
- :mod:`.run` - the whole run (every part, one result).

Nothing is imported here, so ``python -m wssdl_d2.benchmark.memory`` runs its module once.
"""
