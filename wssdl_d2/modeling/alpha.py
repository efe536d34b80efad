"""The MIL scale factor alpha: how much the weak (image-level) loss counts against the strong loss.

``L = L_s + alpha(t) * L_ws``. Two schedules (``cfg.WSSDL.MIL.ALPHA``):

- ``static``: ``alpha(t) = VALUE`` (the paper's ablation uses 0.5);
- ``gradual``: ``alpha(t) = 1 - A0 * R ** floor(t / STEP)`` (the paper's choice, A0 0.99, R 0.9, STEP 2000 of
  60000 iterations: 0.01 at t = 0, 0.109 at STEP, 0.415 at 5 * STEP). ``STEP = 0`` means
  ``max(1, SOLVER.MAX_ITER // 30)``.

``t`` counts optimizer steps that see weak images: the iteration in combined mode, the weak step in
alternating mode (one trainer iteration = one strong step + one weak step, so again the iteration).
"""
import math

SCHEDULES = ("static", "gradual")


def alpha_step(cfg) -> int:
    """The number of iterations between two increases of the gradual schedule (>= 1)."""
    step = int(cfg.WSSDL.MIL.ALPHA.STEP)
    if step < 0:
        raise ValueError(f"WSSDL.MIL.ALPHA.STEP must be >= 0 (0: SOLVER.MAX_ITER // 30), not {step}")
    return step if step > 0 else max(1, int(cfg.SOLVER.MAX_ITER) // 30)


def alpha_at(iteration: int, cfg) -> float:
    """alpha (a float) at training iteration ``iteration`` (>= 0) for the schedule in ``cfg.WSSDL.MIL.ALPHA``.

    A pure function of its arguments. Raises ValueError naming the key on an unknown schedule.
    """
    node = cfg.WSSDL.MIL.ALPHA
    schedule = str(node.SCHEDULE).lower()
    if schedule == "static":
        return float(node.VALUE)
    if schedule == "gradual":
        if iteration < 0:
            raise ValueError(f"alpha_at: iteration must be >= 0, not {iteration}")
        return 1.0 - float(node.A0) * float(node.R) ** math.floor(iteration / alpha_step(cfg))
    raise ValueError(f"WSSDL.MIL.ALPHA.SCHEDULE must be one of {SCHEDULES}, not {node.SCHEDULE!r}")
