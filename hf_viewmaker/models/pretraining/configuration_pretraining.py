"""Configuration of the adversarial contrastive pretraining model: a viewmaker, an encoder and an objective."""

from typing import ClassVar

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from ..encoder import ContrastiveResNetConfig
from ..viewmaker import ViewmakerConfig


@strict
class ViewmakerPretrainingConfig(PreTrainedConfig):
    r"""
    Configuration of [`ViewmakerForContrastivePretraining`].

    Args:
        viewmaker_config (`dict` or [`ViewmakerConfig`], *optional*):
            The viewmaker. Used only when `view_mode` contains `"viewmaker"`.
        encoder_config (`dict` or `PreTrainedConfig`, *optional*):
            The encoder trained with the contrastive objective: a [`ContrastiveResNetConfig`] (the default: the paper's
            ResNets, with their own projection head) or the config of any transformers backbone that takes an
            image-like tensor (ViT, ConvNeXt, Swin, an audio spectrogram transformer, ...), which gets the projection
            head below. A dict is resolved by its `model_type` (a ResNet without one).
        view_mode (`str`, defaults to `"viewmaker"`):
            `"viewmaker"`: the two views are two viewmaker calls (fresh noise each) on the inputs. `"expert"`: the
            inputs already are the two handcrafted views, encoded as they are. `"viewmaker+expert"`: the viewmaker
            perturbs handcrafted views (the paper's robustness result, docs/method.md §7). Handcrafted views are made by
            the data pipeline (`hf_viewmaker.views`), since some of them (waveform crops) act before the model's input.
        objective (`str`, defaults to `"simclr"`):
            `"simclr"` (two views per example) or `"instdisc"` (one view, memory-bank NCE; docs/method.md §3.2).
        simclr_variant (`str`, defaults to `"nt_xent"`):
            `"nt_xent"` (standard symmetric SimCLR) or `"original"` (the authors' asymmetric loss, docs/method.md §3.1).
        temperature (`float`, defaults to 0.07):
            Softmax temperature of both objectives (every original config, docs/method.md §6).
        viewmaker_loss_weight (`float`, defaults to 1.0):
            The viewmaker maximises `viewmaker_loss_weight` times the encoder's loss (1 in the paper, §3.3). Used by
            the adversarial viewmaker objective only.
        viewmaker_objective (`str`, defaults to `"adversarial"`):
            What the viewmaker minimises. `"adversarial"`: minus the encoder's loss (the Viewmaker paper, §3.3).
            `"divmaker"`: Divmaker's diversity loss (`DivmakerLoss`, docs/method.md §3.6), each view close to its
            clean input's embedding and far from the other view; it needs a viewmaker, `objective="simclr"`, and the
            alternating update (`adversarial_phase` `"encoder"` then `"viewmaker"`), since the players optimise
            different losses.
        num_examples (`int`, *optional*):
            Training-set size: rows of the InstDisc memory bank. Required for `"instdisc"`.
        num_negatives (`int`, defaults to 4096) / bank_momentum (`float`, defaults to 0.5):
            InstDisc's negatives per example and memory-bank momentum (§3.2).
        projection_head (`str`, defaults to `"linear"`), embedding_dim (`int`, defaults to 128):
            The contrastive projection on a transformers backbone's pooled output (`"linear"` or `"mlp"`, of
            `embedding_dim` outputs). A [`ContrastiveResNetConfig`] carries its own and ignores these.
        normalize_mean, normalize_std (`list[float]`, *optional*):
            Per-channel statistics applied to the views *after* the viewmaker, which works on [0, 1] pixels
            (docs/method.md §4.1). `None` for inputs that arrive normalised (spectrograms, sensors).
        front_end (`dict`, *optional*):
            A sensor processor (`SensorSpectrogramProcessor.to_dict()`) whose `front_end` turns the views into the
            encoder's inputs: the STFT, log and z-score of views of standardised raw windows, made by a viewmaker with
            `spatial_dims=1` (`--viewmaker_input raw`, docs/method.md §4.6). `None`: the views are the encoder's
            inputs (after `normalize_mean` / `normalize_std` for images).
    """

    model_type = "viewmaker_pretraining"
    sub_configs_defaults = {
        "viewmaker_config": ViewmakerConfig,
        "encoder_config": SubConfigSpec(AutoConfig, model_type=ContrastiveResNetConfig.model_type),
    }
    view_modes: ClassVar[tuple[str, ...]] = ("viewmaker", "expert", "viewmaker+expert")
    objectives: ClassVar[tuple[str, ...]] = ("simclr", "instdisc")
    viewmaker_objectives: ClassVar[tuple[str, ...]] = ("adversarial", "divmaker")

    viewmaker_config: dict | ViewmakerConfig | None = None
    encoder_config: dict | PreTrainedConfig | None = None
    view_mode: str = "viewmaker"
    objective: str = "simclr"
    simclr_variant: str = "nt_xent"
    temperature: float = 0.07
    viewmaker_loss_weight: float = 1.0
    viewmaker_objective: str = "adversarial"
    num_examples: int | None = None
    num_negatives: int = 4096
    bank_momentum: float = 0.5
    projection_head: str = "linear"
    embedding_dim: int = 128
    normalize_mean: list[float] | None = None
    normalize_std: list[float] | None = None
    front_end: dict | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.validate_values()

    def validate_values(self):
        """Check every field's value; `@strict` also runs this before saving."""
        if self.view_mode not in self.view_modes:
            raise ValueError(f"view_mode must be one of {self.view_modes}, got {self.view_mode!r}.")
        if self.objective not in self.objectives:
            raise ValueError(f"objective must be one of {self.objectives}, got {self.objective!r}.")
        if self.viewmaker_objective not in self.viewmaker_objectives:
            raise ValueError(
                f"viewmaker_objective must be one of {self.viewmaker_objectives}, got {self.viewmaker_objective!r}."
            )
        if self.viewmaker_objective == "divmaker" and not (self.uses_viewmaker and self.objective == "simclr"):
            raise ValueError(
                "viewmaker_objective='divmaker' trains a viewmaker's two views with SimCLR: it needs view_mode "
                f"'viewmaker' or 'viewmaker+expert' and objective 'simclr', got view_mode={self.view_mode!r} and "
                f"objective={self.objective!r}."
            )
        if self.objective == "instdisc" and not (self.num_examples or 0) > 0:
            raise ValueError("num_examples (the training-set size) must be a positive int for objective='instdisc'.")
        if self.projection_head not in ("linear", "mlp"):
            raise ValueError(f"projection_head must be 'linear' or 'mlp', got {self.projection_head!r}.")
        # An audio spectrogram transformer has no channels: it reads one-channel log-mels.
        channels = getattr(self.encoder_config, "num_channels", 1)
        if self.uses_viewmaker and self.viewmaker_config.num_channels != channels:
            raise ValueError(
                f"viewmaker_config.num_channels={self.viewmaker_config.num_channels} differs from "
                f"encoder_config.num_channels={channels}."
            )
        if (self.normalize_mean is None) != (self.normalize_std is None):
            raise ValueError("normalize_mean and normalize_std must be given together.")
        if self.normalize_mean is not None and not len(self.normalize_mean) == len(self.normalize_std) == channels:
            raise ValueError(
                f"normalize_mean and normalize_std need one value per channel ({channels}), got "
                f"{len(self.normalize_mean)} and {len(self.normalize_std)}."
            )

        if self.front_end is not None:
            if self.front_end.get("feature_extractor_type") != "SensorSpectrogramProcessor":
                raise ValueError("front_end must be a SensorSpectrogramProcessor's to_dict().")
            if self.normalize_mean is not None:
                raise ValueError(
                    "give front_end (sensor windows) or normalize_mean / normalize_std (images), not both."
                )

    @property
    def uses_viewmaker(self) -> bool:
        return "viewmaker" in self.view_mode

    @property
    def uses_backbone(self) -> bool:
        """Whether the encoder is a transformers backbone with a projection head, not the paper's ResNet."""
        return not isinstance(self.encoder_config, ContrastiveResNetConfig)

    @property
    def encoder_embedding_dim(self) -> int:
        """The width of the encoder's contrastive embeddings."""
        return self.embedding_dim if self.uses_backbone else self.encoder_config.embedding_dim


__all__ = ["ViewmakerPretrainingConfig"]
