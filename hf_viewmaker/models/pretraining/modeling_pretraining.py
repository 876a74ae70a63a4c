"""Contrastive pretraining of a viewmaker and an encoder: adversarial, in one forward and one backward pass (or the
original's two), or Divmaker's alternating update."""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from ...objectives import DivmakerLoss, InstDiscLoss, SimCLRLoss
from ...processing.image_processing_viewmaker import normalize_channels
from ...processing.sensor_processing import SensorSpectrogramProcessor
from ..encoder import ContrastiveResNetModel
from ..viewmaker import ViewmakerModel
from .backbone_encoder import BackboneWithProjection
from .configuration_pretraining import ViewmakerPretrainingConfig


@dataclass
class ViewmakerPretrainingOutput(ModelOutput):
    """
    Output of [`ViewmakerForContrastivePretraining`].

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            The loss of this phase, with its graph. With `adversarial_phase="both"` one `backward()` trains both
            players: the encoder's parameters get the gradient of the contrastive loss, the viewmaker's get
            `-viewmaker_loss_weight` times theirs (gradient reversal). Otherwise the loss of the phase's player.
        encoder_loss (`torch.FloatTensor` of shape `()`):
            The loss the encoder minimises (detached), for logging.
        viewmaker_loss (`torch.FloatTensor` of shape `()`, *optional*):
            The loss the viewmaker minimises (detached): `-viewmaker_loss_weight * encoder_loss` for the adversarial
            objective, the diversity loss for Divmaker (in its `"viewmaker"` phase; `None` in its `"encoder"` phase,
            which does not compute it); `None` without a viewmaker.
        views (`tuple(torch.FloatTensor)`):
            The views the encoder saw, before normalisation, one `[batch, ...]` tensor per view (2 for SimCLR, 1 for
            InstDisc).
        embeddings (`tuple(torch.FloatTensor)`):
            The encoder's projections of the views, one `[batch, embedding_dim]` tensor per view (not normalised).
    """

    loss: torch.FloatTensor | None = None
    encoder_loss: torch.FloatTensor | None = None
    viewmaker_loss: torch.FloatTensor | None = None
    views: tuple[torch.FloatTensor, ...] | None = None
    embeddings: tuple[torch.FloatTensor, ...] | None = None


class _GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by `-weight` backward, so that descending on the encoder's loss
    ascends on it for everything before this point."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad_output, None


@contextlib.contextmanager
def _without_weight_gradients(module: nn.Module, enabled: bool):
    """Record no gradients for `module`'s parameters (the inputs' gradients still flow through it), as the original
    skipped the frozen player's weight gradients in each of its two passes."""
    if not enabled:
        yield
        return
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class ViewmakerForContrastivePretraining(PreTrainedModel):
    """
    A viewmaker and an encoder trained against each other with a contrastive objective (docs/method.md §3), or, with
    `config.viewmaker_objective="divmaker"`, a viewmaker trained for diverse views (docs/method.md §3.6).

    The encoder minimises the objective on the views; the viewmaker maximises it, with weight
    `config.viewmaker_loss_weight`. Both get their gradients from ONE forward and ONE backward: a gradient-reversal
    layer sits between the viewmaker and the encoder, so a single `loss.backward()` gives the encoder the gradient of
    the loss and the viewmaker minus that gradient, and each player's optimizer then steps on its own parameters.

    How this differs from the original update (docs/method.md §3.4): the original ran two full passes per batch, an
    encoder step, then a fresh forward with new noise through the *updated* encoder and a viewmaker step (alternating
    gradient descent-ascent, about 2x the compute, BN statistics and the memory bank updated twice). Here both players
    take a simultaneous step from the same parameters and the same views. One forward and one backward also keeps
    DistributedDataParallel correct: two backwards through one DDP forward would desynchronise the processes' gradient
    reductions, and stepping the encoder before the viewmaker's backward would invalidate the saved graph.

    Every phase computes the views and embeddings as the original did: each view's noise is drawn in turn (view 1's
    maps, then view 2's, the order of the original's one viewmaker call per view), and the encoder is called once per
    view, so its BatchNorm normalises each view's batch on its own (and moves its running statistics once per view).
    How the viewmaker's work is batched does not change its views: it normalises per example (InstanceNorm), and the
    noise is drawn per view whatever the batching (`ViewmakerModel.draw_noise`). `"both"` makes all the views in one
    viewmaker call; `"encoder"` and `"viewmaker"` make them in one call per view, as the original's two passes did.

    Divmaker (Bayrooti et al. 2023) is not a game: the encoder minimises the contrastive objective on the views, the
    viewmaker minimises `DivmakerLoss` (each view close to the encoder's embedding of its clean input, far from the
    other view). The players' losses differ, so one backward cannot train both: only the alternating phases run.
    """

    config_class = ViewmakerPretrainingConfig
    config: ViewmakerPretrainingConfig
    base_model_prefix = "pretraining"
    main_input_name = "pixel_values"
    # Activation checkpointing recomputes the viewmaker (see `ViewmakerModel`); the encoder keeps its activations.
    supports_gradient_checkpointing = True
    # The loss is a batch mean that does not use `num_items_in_batch`: `transformers.Trainer` must divide it by the
    # gradient-accumulation steps itself (it would not, seeing `**kwargs` in `forward` and a `labels` column).
    accepts_loss_kwargs = False

    def __init__(self, config: ViewmakerPretrainingConfig):
        super().__init__(config)
        self.viewmaker = ViewmakerModel(config.viewmaker_config) if config.uses_viewmaker else None
        self.encoder = (
            BackboneWithProjection.from_config(config.encoder_config, config.projection_head, config.embedding_dim)
            if config.uses_backbone
            else ContrastiveResNetModel(config.encoder_config)
        )
        if config.objective == "simclr":
            self.objective = SimCLRLoss(temperature=config.temperature, variant=config.simclr_variant)
            if config.viewmaker_objective == "divmaker":
                self.diversity_objective = DivmakerLoss(temperature=config.temperature)
        else:
            self.objective = InstDiscLoss(
                num_examples=config.num_examples,
                embedding_dim=config.encoder_embedding_dim,
                num_negatives=config.num_negatives,
                temperature=config.temperature,
                momentum=config.bank_momentum,
            )
            # Every process applies the same gathered update to its bank, so DDP's per-step broadcast of this
            # [num_examples, D] buffer from rank 0 would only cost bandwidth.
            self._ddp_params_and_buffers_to_ignore = ["objective.memory_bank"]
        if config.normalize_mean is not None:
            self.register_buffer("normalize_mean", torch.tensor(config.normalize_mean), persistent=False)
            self.register_buffer("normalize_std", torch.tensor(config.normalize_std), persistent=False)
        # Not a module: the processor holds only configuration and statistics, and runs on the views' device.
        self.front_end = SensorSpectrogramProcessor.from_dict(config.front_end) if config.front_end else None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # The viewmaker and the encoder initialise themselves (both keep PyTorch's default layer init); the objective
        # initialises its own memory bank, which transformers' generic init must not touch.
        return

    def normalize(self, views: torch.Tensor) -> torch.Tensor:
        """What the encoder sees of `views`: normalised with the encoder processor's statistics (images), turned into
        normalised log-spectrograms by the sensor processor's `front_end` (views of raw windows, differentiably),
        else as they are."""
        if self.front_end is not None:
            # In float32 whatever the mixed precision, as the processor makes them in evaluation (squared powers
            # overflow fp16).
            with torch.autocast(views.device.type, enabled=False):
                return self.front_end.front_end(views)
        if self.config.normalize_mean is None:
            return views
        return normalize_channels(views, self.normalize_mean, self.normalize_std)

    def _make_views(
        self,
        inputs: tuple[torch.Tensor, ...],
        generator: torch.Generator | None,
        distortion_budget: float | None,
        together: bool,
    ) -> tuple[torch.Tensor, ...]:
        """The viewmaker's view of each input, with each view's noise drawn in turn as the original's one call per
        view drew it; `together` makes all the views in one call (the viewmaker normalises per example, so this
        gives the same views: only the speed differs)."""
        noise = [self.viewmaker.draw_noise(x, generator) for x in inputs]
        if not together or len(inputs) == 1:
            return tuple(
                self.viewmaker(x, noise=n, distortion_budget=distortion_budget).views for x, n in zip(inputs, noise)
            )
        joint_noise = [torch.cat(maps) for maps in zip(*noise)]
        views = self.viewmaker(torch.cat(inputs), noise=joint_noise, distortion_budget=distortion_budget).views
        return views.chunk(len(inputs))

    def forward(
        self,
        pixel_values: torch.Tensor,
        pixel_values_2: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        distortion_budget: float | None = None,
        adversarial_phase: str = "both",
        encoder_views: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ViewmakerPretrainingOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, channels, height, width)` or `(batch, channels, time)`):
                The inputs: [0, 1] pixels for images (normalisation happens here, after the viewmaker), normalised
                spectrograms otherwise, or per-channel standardised raw sensor windows `(batch, channels, time)` when
                `config.front_end` is set (the spectrogram is made here, after the viewmaker). In `"expert"` and
                `"viewmaker+expert"` modes, the first handcrafted view.
            pixel_values_2 (`torch.FloatTensor` of the same shape, *optional*):
                SimCLR only: the second input (the second handcrafted view, or for speech the other crop of the same
                clip). Defaults to `pixel_values`, whose two viewmaker calls then differ only by their noise.
            indices (`torch.LongTensor` of shape `(batch,)`, *optional*):
                InstDisc only (required): each example's index in the training set, its memory-bank row. In training
                mode the bank is updated once per call.
            generator (`torch.Generator`, *optional*):
                Source of the viewmaker's noise (and of InstDisc's negatives), for reproducible steps.
            distortion_budget (`float`, *optional*):
                The viewmaker's budget for this step (a schedule's value); defaults to its config's.
            adversarial_phase (`str`, defaults to `"both"`):
                `"both"`: one pass trains both players (gradient reversal). `"encoder"` and `"viewmaker"` reproduce
                the original's two passes per batch (docs/method.md §3.4): `"encoder"` makes the views without
                gradients and `loss` trains the encoder only; `"viewmaker"` records no gradients for the encoder's
                weights and `loss` is `-viewmaker_loss_weight` times the objective, so minimising it trains the
                viewmaker to maximise the objective. With `config.viewmaker_objective="divmaker"`, `"viewmaker"`'s
                `loss` is the diversity loss instead, and `"both"` is an error (the players' losses differ).
            encoder_views (`Callable`, *optional*):
                Handcrafted views applied to each view after `normalize`, before the encoder, with `generator`
                (`DataPipeline.encoder_views`): the spectral masking of sensor runs whose viewmaker perturbs the raw
                windows, since the spectrograms exist only after the front end.
        """
        if adversarial_phase not in ("both", "encoder", "viewmaker"):
            raise ValueError(f"adversarial_phase must be 'both', 'encoder' or 'viewmaker', got {adversarial_phase!r}")
        if adversarial_phase != "both" and self.viewmaker is None:
            raise ValueError(
                f"adversarial_phase={adversarial_phase!r} needs a viewmaker (view_mode={self.config.view_mode!r})"
            )
        divmaker = self.config.viewmaker_objective == "divmaker"
        if divmaker and adversarial_phase == "both":
            raise ValueError(
                "viewmaker_objective='divmaker' trains the encoder and the viewmaker on different losses, which one "
                "pass cannot do: call with adversarial_phase='encoder', then 'viewmaker' (--adversarial_update "
                "two_pass)"
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        simclr = self.config.objective == "simclr"
        if simclr:
            inputs = (pixel_values, pixel_values if pixel_values_2 is None else pixel_values_2)
            if inputs[0].shape != inputs[1].shape:
                raise ValueError(
                    f"pixel_values and pixel_values_2 must have one shape, got {tuple(inputs[0].shape)} and "
                    f"{tuple(inputs[1].shape)}"
                )
        else:
            if indices is None:
                raise ValueError("objective='instdisc' needs `indices`: each example's row in the memory bank")
            inputs = (pixel_values,)
        if self.viewmaker is None:
            views = encoder_inputs = inputs
        elif adversarial_phase == "encoder":
            with torch.no_grad():
                views = encoder_inputs = self._make_views(inputs, generator, distortion_budget, together=False)
        else:
            views = self._make_views(inputs, generator, distortion_budget, together=adversarial_phase == "both")
            weight = self.config.viewmaker_loss_weight
            encoder_inputs = (
                tuple(_GradientReversal.apply(v, weight) for v in views) if adversarial_phase == "both" else views
            )
        # One encoder call per view, as in the original: its BatchNorm normalises each view's batch on its own.
        with _without_weight_gradients(self.encoder, adversarial_phase == "viewmaker"):
            encoded = (self.normalize(v) for v in encoder_inputs)
            if encoder_views is not None:
                encoded = (encoder_views(x, generator) for x in encoded)
            embeddings = tuple(self.encoder(x).embeddings for x in encoded)

        if divmaker and adversarial_phase == "viewmaker":
            return self._diversity_output(inputs, views, embeddings, return_dict)
        if simclr:
            loss = self.objective(*embeddings)
        else:
            loss = self.objective(embeddings[0], indices, generator=generator)
            if self.training:
                self.objective.update_memory(embeddings[0].detach(), indices)
        encoder_loss = loss.detach()
        if adversarial_phase == "viewmaker":
            loss = -self.config.viewmaker_loss_weight * loss
        viewmaker_loss = (
            -self.config.viewmaker_loss_weight * encoder_loss if self.viewmaker is not None and not divmaker else None
        )
        output = ViewmakerPretrainingOutput(
            loss=loss,
            encoder_loss=encoder_loss,
            viewmaker_loss=viewmaker_loss,
            views=tuple(views),
            embeddings=embeddings,
        )
        return output if return_dict else output.to_tuple()

    def _diversity_output(
        self,
        inputs: tuple[torch.Tensor, ...],
        views: tuple[torch.Tensor, ...],
        embeddings: tuple[torch.Tensor, ...],
        return_dict: bool,
    ) -> ViewmakerPretrainingOutput | tuple:
        """Divmaker's viewmaker phase: the diversity loss of the views' `embeddings` against the encoder's embeddings
        of their clean `inputs`, one per distinct input (two crops of a clip, or two handcrafted views, are each
        their own view's anchor).

        The anchors go through `self.normalize` and the encoder exactly as the views do: the authors' code embedded
        the clean input without the normalisation its views got, comparing embeddings of differently scaled images.
        The encoder's weights record no gradients (as for the views): the anchors need none at all."""
        distinct = inputs[:1] if inputs[1] is inputs[0] else inputs
        with torch.no_grad():
            anchors = [self.encoder(self.normalize(x)).embeddings for x in distinct]
        loss = self.diversity_objective(anchors, embeddings)
        with torch.no_grad():
            encoder_loss = self.objective(*embeddings)
        output = ViewmakerPretrainingOutput(
            loss=loss,
            encoder_loss=encoder_loss,
            viewmaker_loss=loss.detach(),
            views=tuple(views),
            embeddings=embeddings,
        )
        return output if return_dict else output.to_tuple()


__all__ = ["ViewmakerForContrastivePretraining", "ViewmakerPretrainingOutput"]
