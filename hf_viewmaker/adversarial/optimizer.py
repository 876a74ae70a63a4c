"""Optimisation pieces of adversarial pretraining: one optimizer object for two players, and the budget schedule."""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


class AdversarialOptimizer(torch.optim.Optimizer):
    """The encoder's and the viewmaker's optimizers behind one `torch.optim.Optimizer`.

    The paper trains the encoder with SGD and the viewmaker with Adam (docs/method.md §3.4). Handing Accelerate two
    optimizers under fp16 would make each of them call the shared `GradScaler.update()`, so the loss scale would be
    updated twice per step (halved twice after an overflow, grown twice as fast). Behind this one object, the scaler
    unscales every gradient once, checks them for inf/NaN once, and steps or skips both players together, which is
    right since both gradients come from the same backward pass.

    `param_groups` holds the inner optimizers' own group dicts, so learning-rate changes reach them. `state_dict()` is
    `{"encoder": ..., "viewmaker": ..., "viewmaker_frozen": ...}`. `skipping_if` makes a step conditional on a flag
    that stays on the device.

    Args:
        encoder_optimizer: steps the encoder's parameters.
        viewmaker_optimizer: steps the viewmaker's parameters; `None` for runs without a viewmaker.
    """

    def __init__(self, encoder_optimizer: torch.optim.Optimizer, viewmaker_optimizer: torch.optim.Optimizer | None):
        self.encoder_optimizer = encoder_optimizer
        self.viewmaker_optimizer = viewmaker_optimizer
        # After `viewmaker_freeze_epoch` the viewmaker's gradients are still computed (keeping DDP's set of
        # gradient-receiving parameters fixed) but no longer applied.
        self.viewmaker_frozen = False
        self._skip_flag: torch.Tensor | None = None
        params = [p for optimizer in self._optimizers() for group in optimizer.param_groups for p in group["params"]]
        super().__init__(params, defaults={})
        self.param_groups = [group for optimizer in self._optimizers() for group in optimizer.param_groups]

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.encoder_optimizer, self.viewmaker_optimizer) if o is not None]

    @contextmanager
    def skipping_if(self, flag: torch.Tensor) -> Iterator[None]:
        """Within the block, `step()` leaves every parameter and optimizer state unchanged where `flag` (a 0-d bool
        tensor, e.g. "this step's loss was not finite") is true.

        Fused optimizers apply the flag inside their kernels (as for a gradient scaler's `found_inf`), so the decision
        never leaves the device and the step needs no host sync. Other optimizers, and a fused optimizer's first step,
        read it on the host: torch's fused SGD leaves its momentum buffers uninitialised when its first step is skipped.
        """
        self._skip_flag = flag
        try:
            yield
        finally:
            self._skip_flag = None

    @staticmethod
    def _skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
        return bool(optimizer.defaults.get("fused")) and len(optimizer.state) > 0

    @torch.no_grad()
    def step(self, closure=None) -> None:
        if closure is not None:
            raise ValueError("AdversarialOptimizer.step does not take a closure")
        skip = self._skip_flag
        stepping = [self.encoder_optimizer]
        if self.viewmaker_optimizer is not None and not self.viewmaker_frozen:
            stepping.append(self.viewmaker_optimizer)
        for optimizer in stepping:
            if skip is None:
                optimizer.step()
            elif self._skips_on_device(optimizer):
                optimizer.found_inf = skip.float()
                optimizer.step()
                del optimizer.found_inf
            elif not skip.item():
                optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self._optimizers():
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder_optimizer.state_dict(),
            "viewmaker": None if self.viewmaker_optimizer is None else self.viewmaker_optimizer.state_dict(),
            "viewmaker_frozen": self.viewmaker_frozen,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if (state_dict["viewmaker"] is None) != (self.viewmaker_optimizer is None):
            raise ValueError("the saved optimizer state and this run disagree on whether there is a viewmaker")
        self.encoder_optimizer.load_state_dict(state_dict["encoder"])
        if self.viewmaker_optimizer is not None:
            self.viewmaker_optimizer.load_state_dict(state_dict["viewmaker"])
        self.viewmaker_frozen = state_dict["viewmaker_frozen"]


def distortion_budget_at(
    epoch: float, budget: float, start_budget: float | None = None, warmup_epochs: float = 0
) -> float:
    """The distortion budget at a (fractional) epoch: `budget` throughout, or a linear ramp from `start_budget` to
    `budget` over the first `warmup_epochs`. (The original's schedule wrote to an attribute the viewmaker never read,
    so it did nothing; docs/method.md §3.4.)"""
    if start_budget is None or warmup_epochs <= 0 or epoch >= warmup_epochs:
        return budget
    return start_budget + (budget - start_budget) * max(epoch, 0.0) / warmup_epochs


def learning_rate_at(
    step: int, max_steps: int, learning_rate: float, schedule: str = "constant", warmup_steps: int = 0
) -> float:
    """The encoder's learning rate at optimizer step `step` (0-based) of `max_steps`: a linear warm-up over the first
    `warmup_steps` steps (`learning_rate * (step + 1) / warmup_steps`), then `learning_rate` (`"constant"`) or a cosine decay to 0 at `max_steps` (`"cosine"`). A
    function of the step alone, so that a resumed run follows the uninterrupted run's schedule."""
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    if schedule == "constant":
        return learning_rate
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
    return learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


__all__ = ["AdversarialOptimizer", "distortion_budget_at", "learning_rate_at"]
