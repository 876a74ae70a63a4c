"""The pretraining model and its optimizer, built from the run's argument groups."""

import torch
from transformers import AutoConfig, PreTrainedConfig

from ..arguments import ModelArguments, ObjectiveArguments, OptimizationArguments, ViewArguments
from ..models.encoder import ContrastiveResNetConfig, ContrastiveResNetModel
from ..models.pretraining import ViewmakerForContrastivePretraining, ViewmakerPretrainingConfig
from ..models.pretraining.backbone_encoder import BackboneWithProjection, check_backbone_inputs, load_encoder_config
from ..models.viewmaker import ViewmakerConfig, ViewmakerModel, convolution_saving_checkpoint_context
from .optimizer import AdversarialOptimizer


def build_pretraining_config(
    model: ModelArguments,
    objective: ObjectiveArguments,
    views: ViewArguments,
    num_channels: int,
    image_size: int,
    num_examples: int | None,
    normalize_mean: list[float] | None = None,
    normalize_std: list[float] | None = None,
    front_end: dict | None = None,
) -> ViewmakerPretrainingConfig:
    """The configuration of `ViewmakerForContrastivePretraining` for inputs of `num_channels` x `image_size` x
    `image_size`, `num_examples` training examples (the InstDisc memory bank's rows; `None` for a stream) and the
    encoder processor's statistics (`normalize_mean` / `normalize_std`, for images: applied after the viewmaker), or
    for `--viewmaker_input raw` its `to_dict()` as `front_end`, which makes the spectrograms of the 1-D viewmaker's
    views."""
    spatial_dims = 1 if model.viewmaker_input == "raw" else 2
    viewmaker = ViewmakerConfig(
        num_channels=num_channels,
        spatial_dims=spatial_dims,
        distortion_budget=model.distortion_budget,
        budget_norm=model.budget_norm,
        activation=model.viewmaker_activation,
        clamp=True if model.clamp_views is None else model.clamp_views,  # unresolved: the images' default
        frequency_domain=model.frequency_domain,
        num_res_blocks=model.num_res_blocks,
    )
    if model.viewmaker_name_or_path is not None:
        # The published viewmaker's architecture; the run's flags still set its budget, norm and clamping.
        saved = _viewmaker_config(model.viewmaker_name_or_path)
        if saved.spatial_dims != spatial_dims:
            raise ValueError(
                f"--viewmaker_name_or_path {model.viewmaker_name_or_path} holds a viewmaker with spatial_dims="
                f"{saved.spatial_dims}, but --viewmaker_input {model.viewmaker_input} needs {spatial_dims}"
            )
        viewmaker = saved.__class__(
            **{
                **saved.to_dict(),
                "distortion_budget": viewmaker.distortion_budget,
                "budget_norm": viewmaker.budget_norm,
                "clamp": viewmaker.clamp,
            }
        )
    return ViewmakerPretrainingConfig(
        viewmaker_config=viewmaker,
        encoder_config=_encoder_config(model, num_channels, image_size),
        projection_head=model.projection_head,
        embedding_dim=model.embedding_dim,
        view_mode=views.view_mode,
        objective=objective.objective,
        simclr_variant=objective.simclr_variant,
        temperature=objective.temperature,
        viewmaker_loss_weight=objective.viewmaker_loss_weight,
        viewmaker_objective=objective.viewmaker_objective,
        num_examples=num_examples if objective.objective == "instdisc" else None,
        num_negatives=objective.num_negatives,
        bank_momentum=objective.bank_momentum,
        normalize_mean=None if normalize_mean is None else list(normalize_mean),
        normalize_std=None if normalize_std is None else list(normalize_std),
        front_end=front_end,
    )


def _encoder_config(model: ModelArguments, num_channels: int, image_size: int) -> PreTrainedConfig:
    """The encoder's config: the ResNet preset with the size flags, or the backbone of `--encoder_name_or_path` /
    `--encoder_config_name`, checked against the inputs."""
    if model.uses_backbone:
        name_or_path = model.encoder_name_or_path or model.encoder_config_name
        config = load_encoder_config(name_or_path, **_subfolder_of(name_or_path))
        if isinstance(config, ContrastiveResNetConfig):  # a published ResNet encoder: its architecture and head
            if config.num_channels != num_channels:
                raise ValueError(f"the encoder has num_channels={config.num_channels}, the inputs {num_channels}")
            return config.__class__(**{**config.to_dict(), "image_size": image_size})
        check_backbone_inputs(config, num_channels)
        return config
    overrides = {
        "embedding_dim": model.embedding_dim,
        "projection_head": model.projection_head,
        "image_size": image_size,
        "depths": model.encoder_depths,
        "hidden_sizes": model.encoder_hidden_sizes,
        "stem_channels": model.encoder_stem_channels,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return getattr(ContrastiveResNetConfig, model.encoder_preset)(num_channels=num_channels, **overrides)


def _viewmaker_config(name_or_path: str) -> ViewmakerConfig:
    """The config of a published viewmaker: a viewmaker folder, or a run folder / Hub repo with a `viewmaker/`."""
    config = AutoConfig.from_pretrained(name_or_path, **_subfolder_of(name_or_path, "viewmaker"))
    if not isinstance(config, ViewmakerConfig):
        raise ValueError(
            f"--viewmaker_name_or_path {name_or_path} holds a {type(config).__name__}, and no viewmaker/ subfolder"
        )
    return config


def build_pretraining_model(
    config: ViewmakerPretrainingConfig,
    gradient_checkpointing: str = "none",
    channels_last: bool = False,
    encoder_name_or_path: str | None = None,
    viewmaker_name_or_path: str | None = None,
) -> ViewmakerForContrastivePretraining:
    """The model of `config`, its encoder's weights from `encoder_name_or_path` and its viewmaker's from
    `viewmaker_name_or_path` when given (else freshly initialised), recomputing the viewmaker's activations in
    backward with `gradient_checkpointing` (`"selective"`: all but the convolutions' outputs; `"full"`), in the
    channels-last memory format with `channels_last`."""
    model = ViewmakerForContrastivePretraining(config)
    if encoder_name_or_path is not None:
        if config.uses_backbone:
            model.encoder = BackboneWithProjection.from_pretrained(
                encoder_name_or_path,
                config.projection_head,
                config.embedding_dim,
                **_subfolder_of(encoder_name_or_path),
            )
        else:
            weights = ContrastiveResNetModel.from_pretrained(
                encoder_name_or_path, **_subfolder_of(encoder_name_or_path)
            )
            model.encoder.load_state_dict(weights.state_dict())
    if viewmaker_name_or_path is not None and model.viewmaker is not None:
        where = _subfolder_of(viewmaker_name_or_path, "viewmaker")
        model.viewmaker.load_state_dict(ViewmakerModel.from_pretrained(viewmaker_name_or_path, **where).state_dict())
    # The step's guard skips any step whose loss is not finite, non-finite inputs included, so the parts' own input
    # checks (a host sync per call) are dropped.
    for part in (model.viewmaker, model.encoder):
        if part is not None:
            part.check_input_values = False
    if gradient_checkpointing != "none":
        kwargs = {"use_reentrant": False}
        if gradient_checkpointing == "selective":
            kwargs["context_fn"] = convolution_saving_checkpoint_context
        # Only the viewmaker recomputes (a transformers backbone would otherwise be checkpointed too, under a policy
        # made for the viewmaker's convolutions). transformers 5.x renamed it activation checkpointing;
        # `gradient_checkpointing_enable` is the older alias.
        viewmaker = model.viewmaker
        getattr(viewmaker, "activation_checkpointing_enable", viewmaker.gradient_checkpointing_enable)(kwargs)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _subfolder_of(name_or_path: str, part: str = "encoder") -> dict[str, str]:
    """`{"subfolder": part}` when `name_or_path` is a run folder or repository holding `part/`, else `{}`."""
    from ..evaluation.linear_probe import resolve_subfolder  # here: evaluation imports the models this module builds

    subfolder = resolve_subfolder(name_or_path, part)
    return {"subfolder": subfolder} if subfolder else {}


def build_adversarial_optimizer(
    model: ViewmakerForContrastivePretraining, optimization: OptimizationArguments
) -> AdversarialOptimizer:
    """The encoder's SGD (the paper's, docs/method.md §3.4) or AdamW, and the viewmaker's Adam, behind one optimizer
    object."""
    fused = {"fused": True} if optimization.fused_optimizers else {}
    if optimization.encoder_optimizer == "adamw":
        encoder_optimizer = torch.optim.AdamW(
            model.encoder.parameters(), lr=optimization.learning_rate, weight_decay=optimization.weight_decay, **fused
        )
    else:
        encoder_optimizer = torch.optim.SGD(
            model.encoder.parameters(),
            lr=optimization.learning_rate,
            momentum=optimization.momentum,
            weight_decay=optimization.weight_decay,
            **fused,
        )
    return AdversarialOptimizer(
        encoder_optimizer,
        torch.optim.Adam(model.viewmaker.parameters(), lr=optimization.viewmaker_learning_rate, **fused)
        if model.viewmaker
        else None,
    )


__all__ = ["build_adversarial_optimizer", "build_pretraining_config", "build_pretraining_model"]
