"""The pretraining model and its optimizer, built from the run's argument groups."""

import torch

from ..arguments import ModelArguments, ObjectiveArguments, OptimizationArguments, ViewArguments
from ..models.encoder import ContrastiveResNetConfig
from ..models.pretraining import ViewmakerForContrastivePretraining, ViewmakerPretrainingConfig
from ..models.viewmaker import ViewmakerConfig, convolution_saving_checkpoint_context
from .optimizer import AdversarialOptimizer


def build_pretraining_config(
    model: ModelArguments,
    objective: ObjectiveArguments,
    views: ViewArguments,
    num_channels: int,
    image_size: int,
    num_examples: int,
    normalize_mean: list[float] | None = None,
    normalize_std: list[float] | None = None,
) -> ViewmakerPretrainingConfig:
    """The configuration of `ViewmakerForContrastivePretraining` for inputs of `num_channels` x `image_size` x
    `image_size`, `num_examples` training examples (the InstDisc memory bank's rows) and the encoder processor's
    statistics (`normalize_mean` / `normalize_std`, for images: applied after the viewmaker)."""
    overrides = {
        "embedding_dim": model.embedding_dim,
        "projection_head": model.projection_head,
        "image_size": image_size,
        "depths": model.encoder_depths,
        "hidden_sizes": model.encoder_hidden_sizes,
        "stem_channels": model.encoder_stem_channels,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    encoder = getattr(ContrastiveResNetConfig, model.encoder_preset)(num_channels=num_channels, **overrides)
    viewmaker = ViewmakerConfig(
        num_channels=num_channels,
        distortion_budget=model.distortion_budget,
        budget_norm=model.budget_norm,
        activation=model.viewmaker_activation,
        clamp=True if model.clamp_views is None else model.clamp_views,  # unresolved: the images' default
        frequency_domain=model.frequency_domain,
        num_res_blocks=model.num_res_blocks,
    )
    return ViewmakerPretrainingConfig(
        viewmaker_config=viewmaker,
        encoder_config=encoder,
        view_mode=views.view_mode,
        objective=objective.objective,
        simclr_variant=objective.simclr_variant,
        temperature=objective.temperature,
        viewmaker_loss_weight=objective.viewmaker_loss_weight,
        num_examples=num_examples if objective.objective == "instdisc" else None,
        num_negatives=objective.num_negatives,
        bank_momentum=objective.bank_momentum,
        normalize_mean=None if normalize_mean is None else list(normalize_mean),
        normalize_std=None if normalize_std is None else list(normalize_std),
    )


def build_pretraining_model(
    config: ViewmakerPretrainingConfig, gradient_checkpointing: str = "none", channels_last: bool = False
) -> ViewmakerForContrastivePretraining:
    """The model of `config`, recomputing the viewmaker's activations in backward with `gradient_checkpointing`
    (`"selective"`: all but the convolutions' outputs; `"full"`), in the channels-last memory format with
    `channels_last`."""
    model = ViewmakerForContrastivePretraining(config)
    # The step's guard skips any step whose loss is not finite, non-finite inputs included, so the parts' own input
    # checks (a host sync per call) are dropped.
    for part in (model.viewmaker, model.encoder):
        if part is not None:
            part.check_input_values = False
    if gradient_checkpointing != "none":
        kwargs = {"use_reentrant": False}
        if gradient_checkpointing == "selective":
            kwargs["context_fn"] = convolution_saving_checkpoint_context
        # transformers 5.x renamed it activation checkpointing; `gradient_checkpointing_enable` is the older alias.
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)(kwargs)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def build_adversarial_optimizer(
    model: ViewmakerForContrastivePretraining, optimization: OptimizationArguments
) -> AdversarialOptimizer:
    """Encoder SGD and viewmaker Adam (docs/method.md §3.4) behind one optimizer object."""
    fused = {"fused": True} if optimization.fused_optimizers else {}
    return AdversarialOptimizer(
        torch.optim.SGD(
            model.encoder.parameters(),
            lr=optimization.learning_rate,
            momentum=optimization.momentum,
            weight_decay=optimization.weight_decay,
            **fused,
        ),
        torch.optim.Adam(model.viewmaker.parameters(), lr=optimization.viewmaker_learning_rate, **fused)
        if model.viewmaker
        else None,
    )


__all__ = ["build_adversarial_optimizer", "build_pretraining_config", "build_pretraining_model"]
