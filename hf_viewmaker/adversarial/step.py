"""One step of the adversarial game, as `training/pretrain.py` and `training/benchmark.py` both take it."""

from collections.abc import Callable

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger

from .optimizer import AdversarialOptimizer

logger = get_logger(__name__)

#: `(batch on the device, generator, augment) -> (inputs, second inputs or None)`: see `DataPipeline.make_inputs`.
MakeInputs = Callable[[dict[str, torch.Tensor], torch.Generator | None, bool], tuple[torch.Tensor, torch.Tensor | None]]


def noise_seed(seed: int, micro_step: int, num_processes: int, process_index: int) -> int:
    """The seed of the viewmaker's noise at a micro-step on a process: a function of the run's seed and position
    only, so that a resumed run draws what an uninterrupted one would have, whatever the global RNG did."""
    return (seed * 1_000_003 + micro_step) * num_processes + process_index


def in_channels_last(make_inputs: MakeInputs) -> MakeInputs:
    """`make_inputs` whose 4-D outputs are in the channels-last memory format, to match a channels-last model."""

    def convert(tensor):
        return (
            tensor.contiguous(memory_format=torch.channels_last) if tensor is not None and tensor.ndim == 4 else tensor
        )

    return lambda batch, generator, augment: tuple(convert(t) for t in make_inputs(batch, generator, augment))


class AdversarialStep:
    """The forward and backward pass(es) of a batch and the optimizer step of both players, on models and optimizers
    prepared by `accelerator`.

    Args:
        accelerator: the run's `Accelerator`.
        model: the prepared `ViewmakerForContrastivePretraining`.
        optimizer: the prepared optimizer (Accelerate's wrapper of `players`).
        players: the `AdversarialOptimizer` that `optimizer` wraps: its skipping and freezing are set here.
        make_inputs: the model's inputs of a batch (see `DataPipeline.make_inputs`).
        update: `"one_pass"` (one forward and one backward train both players) or `"two_pass"` (the original update,
            docs/method.md §3.4; the only one of Divmaker, §3.6).
        max_grad_norm: clip the global gradient norm to this, if given.
        encoder_views: handcrafted views the model applies after its front end (see `DataPipeline.encoder_views`).
    """

    def __init__(
        self,
        accelerator: Accelerator,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        players: AdversarialOptimizer,
        make_inputs: MakeInputs,
        update: str = "one_pass",
        max_grad_norm: float | None = None,
        encoder_views: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None,
    ):
        if update not in ("one_pass", "two_pass"):
            raise ValueError(f"update must be 'one_pass' or 'two_pass', got {update!r}")
        self.accelerator = accelerator
        self.model = model
        self.optimizer = optimizer
        self.players = players
        self.make_inputs = make_inputs
        self.update = update
        self.max_grad_norm = max_grad_norm
        self.encoder_views = encoder_views

    def freeze_viewmaker(self, frozen: bool) -> None:
        """Stop (or resume) applying the viewmaker's updates; its gradients are still computed."""
        self.players.viewmaker_frozen = frozen

    def forward_backward(
        self,
        batch: dict[str, torch.Tensor],
        generator: torch.Generator,
        distortion_budget: float | None = None,
        update: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pass(es) of one batch, leaving the gradients for `apply`. Returns the encoder's and the viewmaker's
        losses, detached, on the device (the viewmaker's `None` without a viewmaker).

        `"one_pass"` runs one forward and one backward that train both players. `"two_pass"` is the original update
        (and Divmaker's): an encoder pass and step here, then a fresh pass, with new noise, through the updated
        encoder, whose gradients (the viewmaker's only) `apply` then applies. `update` overrides the step's own for
        this batch (the benchmark times both on one model)."""
        pixel_values, pixel_values_2 = self.make_inputs(batch, generator, True)
        inputs = {
            "pixel_values": pixel_values,
            "pixel_values_2": pixel_values_2,
            "indices": batch["indices"],
            "generator": generator,
            "distortion_budget": distortion_budget,
        }
        if self.encoder_views is not None:
            inputs["encoder_views"] = self.encoder_views
        if (update or self.update) == "one_pass":
            out = self.model(**inputs)
            self.accelerator.backward(out.loss)
            return out.encoder_loss, out.viewmaker_loss
        out = self.model(**inputs, adversarial_phase="encoder")
        self.accelerator.backward(out.loss)
        self.optimizer.step()
        self.optimizer.zero_grad()
        viewmaker_out = self.model(**inputs, adversarial_phase="viewmaker")
        self.accelerator.backward(viewmaker_out.loss)
        return out.encoder_loss, viewmaker_out.viewmaker_loss

    def apply(self, nonfinite_losses: torch.Tensor) -> torch.Tensor:
        """Clip and step both players, unless a loss of this step was not finite on some process: then the step is
        skipped, leaving the weights and the optimizers' states as they were.

        The decision stays on the device (fused optimizers apply it in their kernels; see
        `AdversarialOptimizer.skipping_if`), so the step does not wait for the device.

        Args:
            nonfinite_losses: 0-d count of this process's non-finite losses over the step's micro-batches.

        Returns:
            0-d bool tensor on the device: whether the step was skipped. Read it at logging steps only.
        """
        skipped = self.accelerator.reduce(nonfinite_losses, reduction="sum") > 0
        if self.max_grad_norm is not None:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        with self.players.skipping_if(skipped):
            self.optimizer.step()
        return skipped


def report_skipped_steps(skipped: list[bool], first_step: int, in_a_row: int, max_in_a_row: int) -> int:
    """Warn about each skipped step among steps `first_step`, `first_step + 1`, ... and stop the run once
    `max_in_a_row` were skipped in a row. Returns how many were skipped in a row at the end."""
    for step, was_skipped in enumerate(skipped, start=first_step):
        in_a_row = in_a_row + 1 if was_skipped else 0
        if was_skipped:
            logger.warning(f"non-finite loss at step {step}: step skipped ({in_a_row} in a row)")
        if in_a_row >= max_in_a_row:
            raise RuntimeError(
                f"{in_a_row} non-finite steps in a row: stopping without saving weights; "
                f"resume from the last checkpoint with a smaller learning rate or budget"
            )
    return in_a_row


__all__ = ["AdversarialStep", "MakeInputs", "in_channels_last", "noise_seed", "report_skipped_steps"]
