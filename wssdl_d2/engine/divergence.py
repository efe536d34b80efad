"""What a user reads when training diverges: the iteration, the losses, the learning rate, the last checkpoint and
what to change.

Detectron2's trainer stops with ``FloatingPointError("Loss became infinite or NaN at iteration=N ...")`` before the
optimizer step of the bad iteration, so the weights on disk (the last periodic checkpoint, written atomically) are
those of an earlier, finite iteration. :func:`divergence_report` turns that error into a
:class:`TrainingDivergedError` whose message a user can act on.
"""
from typing import Mapping, Optional

from ..errors import UserError

__all__ = ["TrainingDivergedError", "divergence_report"]


class TrainingDivergedError(UserError, FloatingPointError):
    """Training stopped because a loss became NaN or infinite. A FloatingPointError, as Detectron2's own."""


def divergence_report(cfg, iteration: int, lr: float, last_losses: Mapping[str, tuple], reported: str,
                      checkpoint: Optional[str]) -> str:
    """The message of a :class:`TrainingDivergedError`.

    Args:
        cfg: the run's config (its SOLVER recipe decides the advice).
        iteration: the iteration whose loss was not finite.
        lr: the learning rate of that iteration (first parameter group).
        last_losses: loss name -> (value, iteration) of the last finite values logged (the EventStorage's
            ``latest()`` restricted to losses).
        reported: Detectron2's error text (it holds the non-finite loss values of the bad iteration).
        checkpoint: the last checkpoint written in OUTPUT_DIR, or None.
    """
    solver = cfg.SOLVER
    lines = [f"Training diverged at iteration {iteration}: a loss became NaN or infinite "
             f"(learning rate {lr:.4g}; SOLVER.BASE_LR {solver.BASE_LR:g}, SOLVER.WARMUP_ITERS {solver.WARMUP_ITERS}, "
             f"gradient clipping {'on' if solver.CLIP_GRADIENTS.ENABLED else 'off'}).",
             f"  losses at iteration {iteration}: " + reported.split("loss_dict = ", 1)[1].strip()
             if "loss_dict = " in reported else f"  Detectron2 reported: {reported.strip()}"]
    if last_losses:
        at = max(it for _, it in last_losses.values())
        lines.append(f"  last finite losses (iteration {at}): "
                     + ", ".join(f"{k} {v:.4g}" for k, (v, _) in sorted(last_losses.items())))
    lines.append("What to try:")
    if not solver.CLIP_GRADIENTS.ENABLED:
        lines.append("  - clip gradients: SOLVER.CLIP_GRADIENTS.ENABLED True (the shipped configs clip each "
                     "parameter's gradient to norm 1.0: CLIP_TYPE norm, CLIP_VALUE 1.0)")
    else:
        lines.append(f"  - clip harder: SOLVER.CLIP_GRADIENTS.CLIP_VALUE below {solver.CLIP_GRADIENTS.CLIP_VALUE:g}")
    lines.append(f"  - a lower learning rate: SOLVER.BASE_LR {solver.BASE_LR / 4:g} (a quarter of now), or a longer "
                 f"warm-up: SOLVER.WARMUP_ITERS {max(2 * solver.WARMUP_ITERS, 100)}")
    if cfg.MODEL.ROI_HEADS.NAME == "MILROIHeads":
        lines.append("  - a smaller weak-image loss early on: a larger WSSDL.MIL.ALPHA.STEP (alpha rises later)")
    if checkpoint:
        lines.append(f"The last checkpoint, written before the divergence, is {checkpoint}. `--resume` continues from it "
                     "with the same schedule (the learning rate scheduler is restored from it; a changed clipping "
                     "setting applies). To continue with a lower SOLVER.BASE_LR, start a new run from it: "
                     f"MODEL.WEIGHTS {checkpoint} OUTPUT_DIR <a new folder>.")
    else:
        lines.append(f"No checkpoint was written before the divergence (SOLVER.CHECKPOINT_PERIOD "
                     f"{solver.CHECKPOINT_PERIOD}); start again with the changes above.")
    return "\n".join(lines)
