"""Alternating mini-batches: a strong-batch optimizer step, then a weak-batch optimizer step, per iteration.

Each step has its own optimizer (the authors' code: two Adam optimizers). The weak optimizer holds the
backbone and ROI-head parameters only: weak batches give the RPN no loss, so it must not move it either
(no momentum, no weight decay from weak steps). Its learning-rate schedule is stepped here, once per weak step;
the strong optimizer's schedule is Detectron2's LRScheduler hook. One trainer iteration = one strong step +
one weak step, so alpha, counted in weak steps, is a function of the iteration.
"""
import time

from detectron2.engine import SimpleTrainer


class AlternatingTrainer(SimpleTrainer):
    """SimpleTrainer over batches ``{"strong": [...], "weak": [...]}`` (see wssdl_d2.data.streams).

    Logged losses: the strong step's losses, with ``loss_mil`` taken from the weak step when there is one.
    ``state_dict`` holds both optimizers and the weak scheduler.
    """

    def __init__(self, model, data_loader, optimizer, weak_optimizer, weak_scheduler, **kwargs):
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.weak_optimizer = weak_optimizer
        self.weak_scheduler = weak_scheduler

    def _optimizer_step(self, data, optimizer):
        loss_dict = self.model(data)
        losses = sum(loss_dict.values())
        optimizer.zero_grad()
        losses.backward()
        self.after_backward()
        optimizer.step()
        return {k: v.detach() for k, v in loss_dict.items()}

    def run_step(self) -> None:
        assert self.model.training, "[AlternatingTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        batch = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        if not isinstance(batch, dict) or set(batch) != {"strong", "weak"}:
            raise TypeError("AlternatingTrainer needs batches {'strong': [...], 'weak': [...]} "
                            "(WSSDL.BATCH_MODE: alternating in the data loader)")
        loss_dict = {}
        if batch["strong"]:
            loss_dict.update(self._optimizer_step(batch["strong"], self.optimizer))
        if batch["weak"]:
            weak_losses = self._optimizer_step(batch["weak"], self.weak_optimizer)
            self.weak_scheduler.step()
            loss_dict["loss_mil"] = weak_losses["loss_mil"]
        self._write_metrics(loss_dict, data_time)

    def state_dict(self) -> dict:
        ret = super().state_dict()
        ret["weak_optimizer"] = self.weak_optimizer.state_dict()
        ret["weak_scheduler"] = self.weak_scheduler.state_dict()
        return ret

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        missing = [k for k in ("weak_optimizer", "weak_scheduler") if k not in state_dict]
        if missing:
            raise KeyError(f"checkpoint has no {missing}: it was not written by an alternating run")
        self.weak_optimizer.load_state_dict(state_dict["weak_optimizer"])
        self.weak_scheduler.load_state_dict(state_dict["weak_scheduler"])
