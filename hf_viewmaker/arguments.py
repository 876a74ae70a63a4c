"""Typed argument groups shared by the training scripts, and the arguments a pretraining run saves.

Each group is a dataclass, as in the transformers examples (`ModelArguments`, `DataTrainingArguments`): the scripts
parse flags into them with `parse_arguments` (a `--config` YAML recipe supplies defaults, flags override it), pass
them on field by field, and a pretraining run saves its groups (`PretrainingRun.save`) so that evaluation, model
cards and `tools/draw_views.py` read them back by field instead of re-parsing flags.

Sentinels follow one convention: a field left at `None` means "decide automatically" (each field's help says how);
the string `"none"` means "explicitly nothing" (no labels, no handcrafted views, no tracker, no local folder). (A
`subfolder` of `""` is transformers' own spelling of a repository's root.)
"""

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from transformers import HfArgumentParser

# The choices of the flags, kept in step with what the library provides (tests/test_arguments.py compares each with
# its registry) and listed here so that this module imports nothing of ours.
DOMAINS = ("image", "audio", "sensor")
PACKAGED_DATASETS = ("fashion_mnist_sample",)
#: `hf_viewmaker.processing.DATASET_NORMALIZATION_STATS`
SPEECH_DATASETS = ("audio_mnist", "fluent_speech_commands", "google_speech_commands", "librispeech", "voxceleb1")
#: `hf_viewmaker.data.SPEECH_TRANSFER_DATASETS`
TRANSFER_DATASETS = (
    "audio_mnist",
    "fluent_speech_commands",
    "google_speech_commands",
    "librispeech_speaker_id",
    "voxceleb1",
)
#: `hf_viewmaker.data.pipelines.EXPERT_VIEWS`, all domains
EXPERT_VIEWS = ("simclr_image", "waveform_crop_noise", "spectral_masking", "imu")
#: the `ContrastiveResNetConfig` presets
ENCODER_PRESETS = ("resnet18_cifar", "resnet18_audio", "resnet50_audio")
#: `hf_viewmaker.evaluation.linear_probe.LR_SCHEDULES` and `FEATURE_TYPES`
LR_SCHEDULES = ("step", "constant")
FEATURE_TYPES = ("prepool", "pooled", "embeddings")


def _help(text: str, **metadata: Any) -> Any:
    return {"help": text, **metadata}


def _check_statistics(mean: list[float] | None, std: list[float] | None) -> None:
    if (mean is None) != (std is None):
        raise ValueError("give --normalize_mean and --normalize_std together")
    if mean is not None and len(mean) != len(std):
        raise ValueError(
            f"--normalize_mean has {len(mean)} values and --normalize_std {len(std)}: one per channel each"
        )


#: The trackers `--report_to` accepts (Accelerate's), besides "all" and "none".
TRACKERS = ("tensorboard", "trackio", "wandb", "comet_ml", "mlflow", "aim", "clearml", "dvclive", "swanlab")
REPORT_TO_HELP = (
    "tensorboard, trackio (local-first, works offline), wandb, comet_ml, mlflow, aim, clearml, dvclive or swanlab; "
    "several comma-separated; all (every installed one); or none"
)


def _trackers(report_to: str) -> list[str] | str | None:
    """`--report_to` for `Accelerator(log_with=...)`; an unknown tracker is an error naming the accepted ones."""
    if report_to in ("none", "all"):
        return None if report_to == "none" else "all"
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    unknown = [name for name in names if name not in TRACKERS]
    if unknown or not names:
        raise ValueError(f"--report_to {report_to!r}: not a tracker ({', '.join(unknown)}); accepted: {REPORT_TO_HELP}")
    return names


def _number_types(annotation: Any) -> set:
    """The scalar types a field's annotation admits (`float` for `list[float] | None`)."""
    union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    kinds = set()
    for kind in typing.get_args(annotation) if union else (annotation,):
        kinds |= set(typing.get_args(kind)) if typing.get_origin(kind) is list else {kind}
    return kinds & {int, float}


class _Arguments:
    """Numbers as their fields declare them: an integer where a float is meant (`distortion_budget: 1` in a recipe)
    becomes a float, a whole float where an integer is meant becomes an int, anything else is an error naming the
    field. Then each field of `MINIMA` must be at least its minimum, and each of `POSITIVE` a positive finite
    number (every value of a list), where set."""

    MINIMA: ClassVar[dict[str, float]] = {}
    POSITIVE: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self._coerce_numbers()
        for name, minimum in self.MINIMA.items():
            value = getattr(self, name)
            if value is not None and not value >= minimum:
                raise ValueError(f"--{name} must be >= {minimum}, got {value}")
        for name in self.POSITIVE:
            value = getattr(self, name)
            values = value if isinstance(value, list) else [value]
            if value is not None and not all(0 < v < float("inf") for v in values):
                raise ValueError(f"--{name} must be a positive finite number, got {value}")

    def _coerce_numbers(self) -> None:
        hints = typing.get_type_hints(type(self))
        for name in (f.name for f in dataclasses.fields(self)):
            annotation, value = hints[name], getattr(self, name)
            kinds = _number_types(annotation)
            if not kinds or value is None:
                continue
            values = value if isinstance(value, list) else [value]
            if float in kinds:
                values = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values]
            elif int in kinds:
                if any(isinstance(v, float) and not v.is_integer() for v in values):
                    raise ValueError(f"--{name} must be an integer, got {value}")
                values = [int(v) if isinstance(v, float) else v for v in values]
            setattr(self, name, values if isinstance(value, list) else values[0])


@dataclass
class DataArguments(_Arguments):
    """Where the data come from and which part of it is used: what `hf_viewmaker.data.build_pipeline` reads.

    Exactly one source: `packaged_dataset`, `transfer_dataset`, `dataset_name`, `train_dir` or `train_file` (or, for
    Pamap2, `data_dir` alone). `train_dir` implies the imagefolder builder, so `--dataset_name imagefolder` may stand
    beside it. A source named on the command line replaces a recipe's: its source and the fields that describe it
    (`SOURCE_DETAILS`) are dropped (`parse_arguments`).
    """

    _argument_group_name = "data"
    MINIMA: ClassVar[dict[str, float]] = {
        "max_train_samples": 1,
        "max_eval_samples": 1,
        "dataloader_num_workers": 0,
        "shuffle_buffer_size": 0,
    }
    # What names a source, and what only makes sense with the source it was given with.
    SOURCE_FIELDS: ClassVar[tuple[str, ...]] = (
        "packaged_dataset",
        "transfer_dataset",
        "dataset_name",
        "train_dir",
        "train_file",
    )
    SOURCE_DETAILS: ClassVar[tuple[str, ...]] = (
        "caller_intent",
        "dataset_config_name",
        "validation_dir",
        "validation_file",
        "data_dir",
        "train_split",
        "validation_split",
    )

    domain: Literal[DOMAINS] = field(
        default="image",
        metadata=_help(
            "the data pipeline: image, audio (log-mel spectrograms) or sensor (spectrograms of sensor windows); in "
            "evaluation it must match the encoder's processor"
        ),
    )
    packaged_dataset: Literal[PACKAGED_DATASETS] | None = field(
        default=None, metadata=_help("data that ships with the package (fashion_mnist_sample)")
    )
    transfer_dataset: Literal[TRANSFER_DATASETS] | None = field(
        default=None,
        metadata=_help(
            "audio: a speech transfer set (docs/method.md §4.3) read from --data_dir: its train split trains, its "
            "test split evaluates"
        ),
    )
    caller_intent: Literal["action", "object", "location"] | None = field(
        default=None, metadata=_help("fluent_speech_commands: which label")
    )
    dataset_name: str | None = field(
        default=None, metadata=_help("Hub dataset id (e.g. uoft-cs/cifar10) or packaged builder (imagefolder)")
    )
    dataset_config_name: str | None = field(
        default=None, metadata=_help("the dataset's configuration, e.g. `clean` for LibriSpeech")
    )
    train_dir: str | None = field(default=None, metadata=_help("imagefolder layout: one sub-folder per class"))
    validation_dir: str | None = field(default=None, metadata=_help("imagefolder validation folder"))
    train_file: str | None = field(
        default=None,
        metadata=_help(
            "parquet, csv, json or arrow file; sensor: a `.ts` series file (sktime/aeon format, e.g. BasicMotions)"
        ),
    )
    validation_file: str | None = field(default=None, metadata=_help("validation file, same formats"))
    train_split: str = field(default="train", metadata=_help("the split to train on"))
    validation_split: str | None = field(default=None, metadata=_help("default: 'validation' if present, else 'test'"))
    data_dir: str | None = field(
        default=None,
        metadata=_help(
            "a local folder in a dataset's official layout: the one holding `PAMAP2_Dataset/`, or a transfer set's "
            "(`none`: LibriSpeech dev-clean from the Hub)"
        ),
    )
    image_column_name: str = field(default="image", metadata=_help("image column (`img` for `uoft-cs/cifar10`)"))
    audio_column_name: str = field(default="audio", metadata=_help("audio column (speech data)"))
    label_column_name: str | None = field(
        default="label", metadata=_help("label column (`speaker_id` for LibriSpeech); `none`: no labels")
    )
    max_train_samples: int | None = field(default=None, metadata=_help("use only the first N training examples"))
    max_eval_samples: int | None = field(default=None, metadata=_help("use only the first N validation examples"))
    cache_dir: str | None = field(default=None, metadata=_help("`datasets` / Hub cache folder"))
    streaming: bool = field(
        default=False,
        metadata=_help(
            "pretraining on images or speech: read the training split as it is iterated instead of downloading it "
            "first (needs --max_steps); shuffled in windows of --shuffle_buffer_size, split between processes and "
            "workers, resumed exactly; the kNN monitor's bank and queries are the leading rows of the training and "
            "validation streams (`hf_viewmaker.data.streaming`)"
        ),
    )
    shuffle_buffer_size: int = field(
        default=1000,
        metadata=_help(
            "--streaming: rows read and shuffled at once (held in memory, undecoded); 0 or 1 keep the stream's order"
        ),
    )
    dataloader_num_workers: int = field(default=0, metadata=_help("data-loading worker processes"))
    skip_bad_examples: bool = field(
        default=False,
        metadata=_help(
            "images and speech: replace an unreadable image or clip by the next readable one, with a warning and a "
            "count (otherwise an error naming the file)"
        ),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label_column_name == "none":
            self.label_column_name = None
        if self.data_dir == "":
            raise ValueError("--data_dir '': write --data_dir none for no local folder (or leave it unset)")
        if self.data_dir == "none":
            self.data_dir = None
        if self.streaming and self.domain == "sensor":
            raise ValueError("--streaming reads images or speech: sensor windows are cut from whole local series")
        if self.streaming and self.transfer_dataset:
            raise ValueError("--streaming reads Hub datasets, data files and folders; a --transfer_dataset is local")
        if self.transfer_dataset and self.domain != "audio":
            raise ValueError("--transfer_dataset is a speech transfer set: it needs --domain audio")
        if self.transfer_dataset == "fluent_speech_commands" and not self.caller_intent:
            raise ValueError(
                "--transfer_dataset fluent_speech_commands needs --caller_intent action, object or location"
            )
        if self.dataset_name == "imagefolder" and self.train_dir is not None:
            self.dataset_name = None  # --train_dir reads with the imagefolder builder
        named = [f"--{name}" for name in self.SOURCE_FIELDS if getattr(self, name) is not None]
        if self.domain == "sensor" and self.data_dir is not None:
            named.append("--data_dir")
        if len(named) > 1:
            raise ValueError(f"give one data source, not {' and '.join(named)}")


@dataclass
class InputArguments(_Arguments):
    """How pretraining turns the data into model inputs: the processors it builds (and saves with the models)."""

    _argument_group_name = "inputs"
    MINIMA: ClassVar[dict[str, float]] = {
        "image_size": 1,
        "num_channels": 1,
        "sampling_rate": 1,
        "audio_max_length": 1,
        "n_fft": 1,
        "hop_length": 1,
    }
    POSITIVE: ClassVar[tuple[str, ...]] = ("normalize_std",)

    image_size: int = field(default=32, metadata=_help("inputs are resized to image_size x image_size"))
    num_channels: int = field(default=3, metadata=_help("input channels (1 greyscale / spectrogram, 3 RGB, 52 Pamap2)"))
    normalize_mean: list[float] | None = field(
        default=None,
        metadata=_help(
            "images: per-channel mean, applied after the viewmaker (default: CIFAR-10's, for 3 channels; other channel "
            "counts must give theirs)"
        ),
    )
    normalize_std: list[float] | None = field(
        default=None, metadata=_help("images: per-channel std, with `--normalize_mean`")
    )
    audio_normalization: Literal[(*SPEECH_DATASETS, "fit")] = field(
        default="librispeech",
        metadata=_help(
            "speech: log-mel statistics and sampling rate of this dataset (docs/method.md §4.3), or `fit`: "
            "measured on up to 500 training clips spread over the split"
        ),
    )
    sampling_rate: int | None = field(
        default=None,
        metadata=_help("speech: the clips' rate (default: `--audio_normalization`'s; nothing is resampled)"),
    )
    audio_max_length: int | None = field(
        default=None,
        metadata=_help("speech: samples each clip is cut or padded to (default 150,526, docs/method.md §4.2)"),
    )
    n_fft: int | None = field(
        default=None, metadata=_help("speech / sensor STFT size (default: the paper's, 2048 / 63)")
    )
    hop_length: int | None = field(
        default=None, metadata=_help("speech / sensor STFT hop (default: the paper's for the size / 32)")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_statistics(self.normalize_mean, self.normalize_std)


@dataclass
class ViewArguments(_Arguments):
    """Which views the encoder is trained on, and the settings of the handcrafted ("expert") ones."""

    _argument_group_name = "views"
    MINIMA: ClassVar[dict[str, float]] = {
        "max_freq_mask": 0,
        "max_time_mask": 0,
        "spectral_noise_std": 0,
        "imu_max_rotation_degrees": 0,
        "imu_scale_std": 0,
        "imu_jitter_std": 0,
    }

    view_mode: Literal["viewmaker", "expert", "viewmaker+expert"] = field(
        default="viewmaker",
        metadata=_help("viewmaker views, handcrafted (expert) views, or the viewmaker applied to expert views"),
    )
    expert_views: Literal[("none", *EXPERT_VIEWS)] = field(
        default="none",
        metadata=_help(
            "which handcrafted views: simclr_image, waveform_crop_noise, spectral_masking, imu (sensors: rotation, "
            "scaling and jitter of the raw windows, then spectral_masking; `hf_viewmaker.views`)"
        ),
    )
    max_freq_mask: int = field(default=40, metadata=_help("spectral_masking, imu: widest frequency band"))
    max_time_mask: int = field(default=40, metadata=_help("spectral_masking, imu: widest time band"))
    spectral_noise_std: float = field(default=0.0, metadata=_help("spectral_masking, imu: noise after masking"))
    imu_max_rotation_degrees: float = field(
        default=30.0,
        metadata=_help("imu: largest angle of the random rotation of each channel triplet (at most 180)"),
    )
    imu_scale_std: float = field(default=0.1, metadata=_help("imu: std of the per-channel scaling factors ~ N(1, s)"))
    imu_jitter_std: float = field(
        default=0.05, metadata=_help("imu: std of the added noise, relative to each window's std per channel")
    )

    @property
    def uses_expert_views(self) -> bool:
        return "expert" in self.view_mode

    @property
    def uses_viewmaker(self) -> bool:
        return "viewmaker" in self.view_mode


@dataclass
class ModelArguments(_Arguments):
    """The two players: the viewmaker network and the encoder.

    The encoder is the paper's ResNet of `encoder_preset` (its size fields override the preset), or any transformers
    backbone: `encoder_name_or_path` (a Hub id or saved folder, whose weights pretraining starts from) or
    `encoder_config_name` (a config, randomly initialised). A backbone named on the command line replaces a recipe's
    encoder, preset and ResNet size fields included, as a data source does (`parse_arguments`)."""

    _argument_group_name = "model"
    MINIMA: ClassVar[dict[str, float]] = {"embedding_dim": 1, "encoder_stem_channels": 1, "num_res_blocks": 0}
    POSITIVE: ClassVar[tuple[str, ...]] = ("distortion_budget", "encoder_depths", "encoder_hidden_sizes")
    SOURCE_FIELDS: ClassVar[tuple[str, ...]] = ("encoder_name_or_path", "encoder_config_name")
    SOURCE_DETAILS: ClassVar[tuple[str, ...]] = (
        "encoder_preset",
        "encoder_depths",
        "encoder_hidden_sizes",
        "encoder_stem_channels",
    )

    encoder_name_or_path: str | None = field(
        default=None,
        metadata=_help(
            "start the encoder from this model (Hub id or folder: a run's encoder/, a transformers backbone such as "
            "a ViT, ConvNeXt, Swin or AST); replaces the ResNet preset"
        ),
    )
    encoder_config_name: str | None = field(
        default=None,
        metadata=_help("a transformers config (Hub id, folder or config.json) for a randomly initialised encoder"),
    )
    viewmaker_name_or_path: str | None = field(
        default=None,
        metadata=_help(
            "start the viewmaker from this one (Hub id, run folder or viewmaker folder); --viewmaker_freeze_epoch 0 "
            "keeps it fixed"
        ),
    )
    encoder_preset: Literal[ENCODER_PRESETS] = field(
        default="resnet18_cifar",
        metadata=_help("resnet18_cifar (3×3 stem), resnet18_audio (7×7 stem), resnet50_audio (bottleneck + MLP head)"),
    )
    encoder_depths: list[int] | None = field(default=None, metadata=_help("blocks per stage (overrides the preset)"))
    encoder_hidden_sizes: list[int] | None = field(default=None, metadata=_help("stage widths (overrides the preset)"))
    encoder_stem_channels: int | None = field(default=None, metadata=_help("stem width (overrides the preset)"))
    embedding_dim: int = field(default=128, metadata=_help("width of the contrastive projection"))
    projection_head: Literal["linear", "mlp"] = field(
        default="linear", metadata=_help("linear (as the original) or mlp")
    )
    distortion_budget: float = field(
        default=0.05, metadata=_help("epsilon, the viewmaker's budget (docs/method.md §1)")
    )
    budget_norm: Literal["l1", "l2", "linf"] = field(
        default="l1", metadata=_help("how the budget bounds the perturbation (see `ViewmakerConfig`)")
    )
    num_res_blocks: int = field(default=3, metadata=_help("viewmaker residual blocks (0–5)"))
    viewmaker_activation: Literal["relu", "leaky_relu"] = field(default="relu", metadata=_help("relu or leaky_relu"))
    clamp_views: bool | None = field(
        default=None,
        metadata=_help("clamp views to [0, 1] (default: true for images, false for spectrograms, which are z-scored)"),
    )
    frequency_domain: bool = field(default=False, metadata=_help("bound the perturbation in the DCT domain"))
    viewmaker_input: Literal["spectrogram", "raw"] = field(
        default="spectrogram",
        metadata=_help(
            "sensors: the viewmaker perturbs the normalised spectrogram, or (raw) the per-channel standardised raw "
            "windows, whose spectrogram the model then computes (docs/method.md §4.6)"
        ),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder_name_or_path is not None and self.encoder_config_name is not None:
            raise ValueError(
                "give one encoder, not --encoder_name_or_path and --encoder_config_name: the first starts from "
                "weights, the second from a config"
            )

    @property
    def uses_backbone(self) -> bool:
        """Whether the encoder comes from `encoder_name_or_path` / `encoder_config_name` rather than the preset."""
        return self.encoder_name_or_path is not None or self.encoder_config_name is not None


@dataclass
class ObjectiveArguments(_Arguments):
    """The contrastive objective both players play on."""

    _argument_group_name = "objective"
    MINIMA: ClassVar[dict[str, float]] = {"num_negatives": 1, "bank_momentum": 0}
    POSITIVE: ClassVar[tuple[str, ...]] = ("temperature", "viewmaker_loss_weight")

    objective: Literal["simclr", "instdisc"] = field(
        default="simclr", metadata=_help("simclr or instdisc (memory bank)")
    )
    simclr_variant: Literal["nt_xent", "original"] = field(
        default="nt_xent", metadata=_help("standard NT-Xent, or the authors' asymmetric loss")
    )
    temperature: float = field(default=0.07, metadata=_help("softmax temperature"))
    viewmaker_loss_weight: float = field(
        default=1.0, metadata=_help("the viewmaker maximises this times the encoder's loss")
    )
    viewmaker_objective: Literal["adversarial", "divmaker"] = field(
        default="adversarial",
        metadata=_help(
            "adversarial: the viewmaker maximises the encoder's loss; divmaker: it minimises Divmaker's diversity "
            "loss (views close to the clean input, far from each other; docs/method.md §3.6), alternating with the "
            "encoder's steps"
        ),
    )
    num_negatives: int = field(default=4096, metadata=_help("InstDisc negatives per example"))
    bank_momentum: float = field(default=0.5, metadata=_help("InstDisc memory-bank momentum"))


@dataclass
class OptimizationArguments(_Arguments):
    """How the two players are updated: the encoder's SGD, the viewmaker's Adam, the budget schedule."""

    _argument_group_name = "optimization"
    MINIMA: ClassVar[dict[str, float]] = {
        "learning_rate": 0,
        "momentum": 0,
        "weight_decay": 0,
        "num_warmup_steps": 0,
        "viewmaker_learning_rate": 0,
        "viewmaker_freeze_epoch": 0,
        "distortion_budget_start": 0,
        "distortion_budget_warmup_epochs": 0,
    }
    POSITIVE: ClassVar[tuple[str, ...]] = ("max_grad_norm",)

    encoder_optimizer: Literal["sgd", "adamw"] = field(
        default="sgd", metadata=_help("sgd (the paper's) or adamw (what transformer backbones train with)")
    )
    learning_rate: float = field(default=0.03, metadata=_help("encoder learning rate"))
    momentum: float = field(default=0.9, metadata=_help("encoder SGD momentum"))
    weight_decay: float = field(default=1e-4, metadata=_help("encoder weight decay"))
    lr_scheduler_type: Literal["constant", "cosine"] = field(
        default="constant",
        metadata=_help("encoder learning rate over the steps: constant (the paper's) or cosine decay to 0"),
    )
    num_warmup_steps: int = field(default=0, metadata=_help("linear warm-up of the encoder learning rate from 0"))
    viewmaker_learning_rate: float = field(default=1e-3, metadata=_help("viewmaker Adam"))
    viewmaker_freeze_epoch: int | None = field(
        default=None, metadata=_help("stop updating the viewmaker from this epoch on")
    )
    distortion_budget_start: float | None = field(
        default=None, metadata=_help("ramp the budget linearly from this value ...")
    )
    distortion_budget_warmup_epochs: float = field(default=0.0, metadata=_help("... over these epochs"))
    adversarial_update: Literal["one_pass", "two_pass"] | None = field(
        default=None,
        metadata=_help(
            "one_pass: one forward/backward trains both players; two_pass: the original's update (encoder step, "
            "then a fresh pass for the viewmaker; docs/method.md §3.4). Default: one_pass, two_pass for "
            "--viewmaker_objective divmaker (which needs it)"
        ),
    )
    fused_optimizers: bool = field(default=False, metadata=_help("fused SGD and Adam kernels"))
    max_grad_norm: float | None = field(
        default=None, metadata=_help("clip the global gradient norm (the paper does not)")
    )


@dataclass
class PretrainingArguments(_Arguments):
    """The pretraining loop: batches, steps, precision and speed options, checkpoints, logging, the kNN monitor,
    publishing."""

    _argument_group_name = "training"
    MINIMA: ClassVar[dict[str, float]] = {
        "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1,
        "num_train_epochs": 1,
        "max_steps": 0,
        "gradient_accumulation_steps": 1,
        "checkpoints_total_limit": 1,
        "logging_steps": 1,
        "knn_k": 1,
        "knn_max_train_samples": 1,
        "max_nonfinite_steps": 1,
    }
    POSITIVE: ClassVar[tuple[str, ...]] = ("knn_temperature",)

    output_dir: str = field(
        default="outputs/pretrain", metadata=_help("where models, pictures, logs and checkpoints go")
    )
    seed: int = field(default=0, metadata=_help("seeds initialisation, data order and viewmaker noise"))
    per_device_train_batch_size: int = field(
        default=256, metadata=_help("examples per process per step (each gives 2 views for SimCLR)")
    )
    per_device_eval_batch_size: int = field(default=256, metadata=_help("batch size of the kNN monitor"))
    num_train_epochs: int = field(default=200, metadata=_help("epochs over the training set"))
    max_steps: int | None = field(
        default=None,
        metadata=_help(
            "optimizer steps; overrides num_train_epochs; 0 saves the untrained models (the random-initialised "
            "baseline)"
        ),
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata=_help("micro-batches per optimizer step, for both players")
    )
    channels_last: bool = field(
        default=False,
        metadata=_help(
            "channels-last (NHWC) memory format for the model and its inputs (faster convolutions on GPUs, and "
            "on CPUs: see benchmarks/RESULTS.md)"
        ),
    )
    gradient_checkpointing: Literal["none", "selective", "full"] = field(
        default="none",
        metadata=_help(
            "recompute the viewmaker's activations in backward instead of keeping them "
            "(`model.activation_checkpointing_enable()`): selective keeps the convolutions' outputs and recomputes "
            "the cheap rest, full recomputes the whole network; lower peak memory for more compute (see "
            "benchmarks/RESULTS.md)"
        ),
    )
    torch_compile: bool = field(
        default=False, metadata=_help("compile the model with `torch.compile` (through Accelerate's dynamo backend)")
    )
    torch_compile_backend: str = field(default="inductor", metadata=_help("the `torch.compile` backend"))
    data_on_device: bool = field(
        default=False,
        metadata=_help(
            "images: decode the training set once and hold it on the device as uint8 `[N, C, H, W]` "
            "(`hf_viewmaker.data.DeviceImageLoader`); every batch, seeded per epoch, sharded over the processes and "
            "resumable mid-epoch, and its expert views are made there (for sets that fit in device memory: "
            "CIFAR-10's takes 147 MiB)"
        ),
    )
    cpu: bool = field(default=False, metadata=_help("train on the CPU even if an accelerator is present"))
    mixed_precision: Literal["no", "fp16", "bf16"] | None = field(
        default=None, metadata=_help("default: accelerate's config (no / fp16 / bf16)")
    )
    checkpointing_steps: str | None = field(default=None, metadata=_help("an integer N (every N steps) or 'epoch'"))
    checkpoints_total_limit: int = field(default=2, metadata=_help("keep the newest K checkpoints"))
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata=_help(
            "'latest' (the newest intact checkpoint in output_dir; damaged newer ones are passed over with a "
            "warning) or a checkpoint folder"
        ),
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata=_help("start a new run in an output_dir that holds another one, deleting its checkpoints"),
    )
    resume_with_changed_arguments: bool = field(
        default=False,
        metadata=_help(
            "resume although arguments that change the results (seed, batch, data, model, ...) differ from the "
            "checkpoint's"
        ),
    )
    resume_without_rng_states: bool = field(
        default=False,
        metadata=_help(
            "resume a checkpoint that lacks its RNG states (the run then no longer reproduces an uninterrupted one)"
        ),
    )
    report_to: str = field(default="tensorboard", metadata=_help(REPORT_TO_HELP))
    tracker_project_name: str = field(
        default="viewmaker_pretraining", metadata=_help("the trackers' project the run is logged to")
    )
    run_name: str | None = field(
        default=None, metadata=_help("the run's name in the trackers (default: the output folder's)")
    )
    logging_steps: int = field(
        default=10, metadata=_help("log the loss every N steps (the only time it is read from the device)")
    )
    knn_k: int = field(default=200, metadata=_help("neighbours of the per-epoch kNN monitor on the validation split"))
    knn_temperature: float = field(default=0.07, metadata=_help("vote temperature of the kNN monitor"))
    knn_max_train_samples: int = field(default=10000, metadata=_help("training examples used as the kNN bank"))
    push_to_hub: bool = field(
        default=False,
        metadata=_help(
            "publish the run at the end: `viewmaker/`, `encoder/`, the model card, `views.png`, results (see "
            '"Sharing on the Hub")'
        ),
    )
    hub_model_id: str | None = field(default=None, metadata=_help("NAMESPACE/NAME of the model repository"))
    hub_private: bool = field(default=False, metadata=_help("create the repository private"))
    max_nonfinite_steps: int = field(
        default=5, metadata=_help("stop after this many non-finite steps in a row (checked at logging steps)")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        steps = self.checkpointing_steps
        if steps not in (None, "epoch") and not (str(steps).isdigit() and int(steps) >= 1):
            raise ValueError(f"--checkpointing_steps must be a positive integer or 'epoch', got {steps!r}")
        _trackers(self.report_to)

    @property
    def checkpoint_every(self) -> int | None:
        """`--checkpointing_steps` as a step count, `None` for none or 'epoch'."""
        return int(self.checkpointing_steps) if str(self.checkpointing_steps).isdigit() else None

    @property
    def trackers(self) -> list[str] | str | None:
        """`--report_to` for `Accelerator(log_with=...)`."""
        return _trackers(self.report_to)


class _Groups:
    """A script's argument groups as one object (a dataclass with a field per group), saved as `FILENAME`."""

    FILENAME: str

    @classmethod
    def group_types(cls) -> tuple[type, ...]:
        return tuple(f.default_factory for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def flat(self) -> dict[str, Any]:
        """Every field of every group by its flag name (the names are distinct across groups), e.g. for trackers."""
        return {name: value for fields in self.to_dict().values() for name, value in fields.items()}

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / self.FILENAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))
        return path

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> "_Groups":
        """The groups of a saved run: `{group: {field: value}}`, or the flat `{flag: value}` layout of runs saved
        before the groups existed. A field this version does not know is an error naming it."""
        if not all(isinstance(values, dict) for values in saved.values()):
            saved = cls._grouped({k: v for k, v in saved.items() if k != "config"})
        groups = {}
        for group in dataclasses.fields(cls):
            values = dict(saved.get(group.name, {}))
            known = {f.name for f in dataclasses.fields(group.default_factory)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"{cls.FILENAME}: unknown fields {unknown} in group {group.name!r}")
            groups[group.name] = group.default_factory(**values)
        unknown_groups = sorted(set(saved) - set(groups))
        if unknown_groups:
            raise ValueError(f"{cls.FILENAME}: unknown groups {unknown_groups}")
        return cls(**groups)

    @classmethod
    def _grouped(cls, flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
        owner = {
            f.name: group.name for group in dataclasses.fields(cls) for f in dataclasses.fields(group.default_factory)
        }
        unknown = sorted(set(flat) - set(owner))
        if unknown:
            raise ValueError(f"{cls.FILENAME}: unknown fields {unknown}")
        grouped: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            grouped.setdefault(owner[name], {})[name] = value
        return grouped

    @classmethod
    def load(cls, folder: str | Path) -> "_Groups":
        """The arguments a run saved in `folder/FILENAME`."""
        path = Path(folder) / cls.FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {cls.FILENAME}")
        return cls.from_dict(json.loads(path.read_text()))


@dataclass
class PretrainingRun(_Groups):
    """Every argument group of a pretraining run: what `training/pretrain.py` parses and saves as
    `training_args.json`, one object per group."""

    data: DataArguments = field(default_factory=DataArguments)
    inputs: InputArguments = field(default_factory=InputArguments)
    views: ViewArguments = field(default_factory=ViewArguments)
    model: ModelArguments = field(default_factory=ModelArguments)
    objective: ObjectiveArguments = field(default_factory=ObjectiveArguments)
    optimization: OptimizationArguments = field(default_factory=OptimizationArguments)
    training: PretrainingArguments = field(default_factory=PretrainingArguments)

    FILENAME = "training_args.json"

    def __post_init__(self) -> None:
        # Resolved here, so that the run saves what it trained with.
        if self.model.clamp_views is None:
            self.model.clamp_views = self.data.domain == "image"
        if self.optimization.adversarial_update is None:  # Divmaker's players minimise different losses: alternating
            divmaker = self.objective.viewmaker_objective == "divmaker"
            self.optimization.adversarial_update = "two_pass" if divmaker else "one_pass"

    # What a resumed run may change without changing what it computes: where it reads from and how fast, how long it
    # runs, how it logs and saves. Everything else (the data, the model, the objective, the optimisation, the seed
    # and the batch) must match the checkpoint's.
    RESUMABLE_CHANGES: ClassVar[dict[str, tuple[str, ...]]] = {
        "data": ("cache_dir", "dataloader_num_workers", "skip_bad_examples"),
        "training": tuple(
            f.name
            for f in dataclasses.fields(PretrainingArguments)
            if f.name not in ("seed", "per_device_train_batch_size", "gradient_accumulation_steps")
        ),
    }

    def changes_from(self, saved: "PretrainingRun") -> list[str]:
        """The fields whose value differs from `saved`'s (a checkpoint's run) and would change the results, as
        `--name saved -> current`."""
        changes = []
        current, before = self.to_dict(), saved.to_dict()
        for group, fields in current.items():
            for name, value in fields.items():
                resumable = name in self.RESUMABLE_CHANGES.get(group, ())
                # Data-loader workers each read their own shards of a stream, so their number orders its examples.
                resumable &= not (self.data.streaming and name == "dataloader_num_workers")
                if not resumable and before[group][name] != value:
                    changes.append(f"--{name} {before[group][name]!r} -> {value!r}")
        # A decaying learning rate follows the run's length: another length changes every step after the resume.
        if self.optimization.lr_scheduler_type != "constant":
            for name in ("max_steps", "num_train_epochs"):
                if before["training"][name] != current["training"][name]:
                    changes.append(
                        f"--{name} {before['training'][name]!r} -> {current['training'][name]!r} (the "
                        f"{self.optimization.lr_scheduler_type} schedule's length)"
                    )
        return changes


@dataclass
class ProbeArguments(_Arguments):
    """The encoder to evaluate, where its viewmaker is, and what the linear head trains on."""

    _argument_group_name = "model"

    model_name_or_path: str | None = field(
        default=None,
        metadata=_help("a run folder (encoder/ + viewmaker/), or an encoder folder or Hub repo (required)"),
    )
    encoder_subfolder: str | None = field(
        default=None, metadata=_help("default: encoder/ when present, else the root; `''` for the root")
    )
    viewmaker_name_or_path: str | None = field(default=None, metadata=_help("default: `--model_name_or_path`"))
    viewmaker_subfolder: str | None = field(
        default=None,
        metadata=_help("default: viewmaker/ when present (or the root of an explicit `--viewmaker_name_or_path`)"),
    )
    revision: str | None = field(default=None, metadata=_help("Hub revision of the model repo"))
    features: Literal[FEATURE_TYPES[:2]] = field(
        default="prepool",
        metadata=_help("prepool (flattened pre-pool map: CIFAR-10, audio) or pooled (Pamap2, meta transfer)"),
    )
    num_labels: int | None = field(
        default=None,
        metadata=_help("classes of the head (default: from the dataset; 11 for Pamap2, 12 reproduces the original)"),
    )
    train_views: Literal["viewmaker", "expert", "none"] = field(
        default="viewmaker",
        metadata=_help("train-time views: the frozen viewmaker, the expert views, or clean inputs"),
    )
    expert_views: Literal[EXPERT_VIEWS] | None = field(
        default=None,
        metadata=_help(
            "`--train_views expert`: simclr_image, waveform_crop_noise, spectral_masking or imu (with the run's imu "
            "settings); default: the run's (`training_args.json`), else simclr_image for images"
        ),
    )
    max_freq_mask: int | None = field(
        default=None, metadata=_help("spectral_masking: widest frequency band (default: the run's, else 40)")
    )
    max_time_mask: int | None = field(
        default=None, metadata=_help("spectral_masking: widest time band (default: the run's, else 40)")
    )
    spectral_noise_std: float | None = field(
        default=None, metadata=_help("spectral_masking: noise after masking (default: the run's, else 0)")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("encoder_subfolder", "viewmaker_subfolder"):
            if getattr(self, name) == "auto":
                raise ValueError(f"--{name} auto: leave --{name} unset to find the subfolder automatically")


@dataclass
class EvaluationInputArguments(_Arguments):
    """Changes to the inputs the encoder's saved processor makes (by default none: the encoder sees what it was
    trained on)."""

    _argument_group_name = "inputs"

    image_size: int | None = field(default=None, metadata=_help("images: default the encoder processor's size"))
    normalize_mean: list[float] | None = field(
        default=None, metadata=_help("images: default the encoder processor's statistics")
    )
    normalize_std: list[float] | None = field(default=None, metadata=_help("with `--normalize_mean`"))
    audio_normalization: Literal[(*SPEECH_DATASETS, "encoder")] | None = field(
        default=None,
        metadata=_help(
            "log-mel statistics: `encoder` (the encoder processor's), or a dataset's; default: a transfer set's own "
            "(docs/method.md §4.3), else the encoder's"
        ),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_statistics(self.normalize_mean, self.normalize_std)


@dataclass
class ProbeOptimizationArguments(_Arguments):
    """The linear head's SGD and its schedule."""

    _argument_group_name = "optimization"
    MINIMA: ClassVar[dict[str, float]] = {"learning_rate": 0, "momentum": 0, "weight_decay": 0, "lr_gamma": 0}
    POSITIVE: ClassVar[tuple[str, ...]] = ("max_grad_norm",)

    learning_rate: float = field(default=0.01, metadata=_help("SGD on the head"))
    momentum: float = field(default=0.9, metadata=_help("SGD momentum"))
    weight_decay: float = field(default=0.0, metadata=_help("SGD weight decay"))
    lr_scheduler_type: Literal[LR_SCHEDULES] = field(
        default="step", metadata=_help("step (MoCo: ×`lr_gamma` at each milestone) or constant")
    )
    lr_milestones: list[float] = field(
        default_factory=lambda: [0.6, 0.8], metadata=_help("milestones as fractions of the epochs (`int(m·E)`)")
    )
    lr_gamma: float = field(default=0.1, metadata=_help("decay factor at each milestone"))
    max_grad_norm: float | None = field(
        default=None, metadata=_help("clip the head's gradient norm (the paper does not)")
    )


@dataclass
class EvaluationArguments(_Arguments):
    """The evaluation loop: batches, epochs, precision, logging."""

    _argument_group_name = "training"
    MINIMA: ClassVar[dict[str, float]] = {
        "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1,
        "num_train_epochs": 0,
        "eval_every_epochs": 0,
    }

    output_dir: str = field(default="outputs/linear_eval", metadata=_help("probe, eval_results.json, logs"))
    overwrite_output_dir: bool = field(
        default=False, metadata=_help("evaluate into an output_dir that holds another evaluation, replacing it")
    )
    seed: int = field(default=1337, metadata=_help("head init, data order and view noise"))
    per_device_train_batch_size: int = field(default=128, metadata=_help("per process"))
    per_device_eval_batch_size: int = field(default=256, metadata=_help("per process"))
    num_train_epochs: int = field(default=100, metadata=_help("epochs of the head"))
    eval_every_epochs: int = field(default=0, metadata=_help("also evaluate every N epochs (0: only at the end)"))
    cache_features: bool = field(
        default=False,
        metadata=_help(
            "extract features once and train on them (only with `--train_views none`; Pamap2 then reuses the first "
            "epoch's windows)"
        ),
    )
    cpu: bool = field(default=False, metadata=_help("run on the CPU even if an accelerator is present"))
    mixed_precision: Literal["no", "fp16", "bf16"] | None = field(
        default=None, metadata=_help("default: accelerate's config (no / fp16 / bf16)")
    )
    report_to: str = field(default="tensorboard", metadata=_help(REPORT_TO_HELP))
    tracker_project_name: str = field(
        default="linear_eval", metadata=_help("the trackers' project the run is logged to")
    )
    run_name: str | None = field(
        default=None, metadata=_help("the run's name in the trackers (default: the output folder's)")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _trackers(self.report_to)

    @property
    def trackers(self) -> list[str] | str | None:
        """`--report_to` for `Accelerator(log_with=...)`."""
        return _trackers(self.report_to)


@dataclass
class KnnArguments(_Arguments):
    """k-nearest-neighbour evaluation of the encoder's features, without training."""

    _argument_group_name = "kNN"
    MINIMA: ClassVar[dict[str, float]] = {"knn_k": 1, "knn_max_train_samples": 1}
    POSITIVE: ClassVar[tuple[str, ...]] = ("knn_temperature",)

    knn_only: bool = field(
        default=False, metadata=_help("only report kNN accuracy (cosine, weighted votes); train no head")
    )
    knn_k: int = field(default=200, metadata=_help("neighbours"))
    knn_temperature: float = field(default=0.07, metadata=_help("vote temperature"))
    knn_features: Literal[FEATURE_TYPES] = field(default="embeddings", metadata=_help("embeddings, pooled or prepool"))
    knn_max_train_samples: int | None = field(
        default=None, metadata=_help("training examples in the bank (default: all)")
    )


@dataclass
class RobustnessArguments(_Arguments):
    """Accuracy under the CIFAR-10-C corruptions (the release, or a folder in its layout with a manifest)."""

    _argument_group_name = "robustness"
    MINIMA: ClassVar[dict[str, float]] = {"cifar10c_images_per_severity": 1, "cifar10c_max_images_per_severity": 1}

    cifar10c_dir: str | None = field(
        default=None,
        metadata=_help(
            "evaluate the trained probe on this CIFAR-10-C folder (`<corruption>.npy` + `labels.npy`), or one in its "
            "layout whose `manifest.json` names its corruptions (`tools/make_corrupted_images.py`: Fashion-MNIST-C)"
        ),
    )
    cifar10c_images_per_severity: int | None = field(
        default=None, metadata=_help("the layout of the files (default: the manifest's, else 10000 as in the release)")
    )
    cifar10c_max_images_per_severity: int | None = field(
        default=None, metadata=_help("evaluate only the first N images of each severity")
    )


@dataclass
class LinearEvalRun(_Groups):
    """Every argument group of `training/linear_eval.py`, saved as `eval_args.json`."""

    model: ProbeArguments = field(default_factory=ProbeArguments)
    data: DataArguments = field(default_factory=DataArguments)
    inputs: EvaluationInputArguments = field(default_factory=EvaluationInputArguments)
    optimization: ProbeOptimizationArguments = field(default_factory=ProbeOptimizationArguments)
    training: EvaluationArguments = field(default_factory=EvaluationArguments)
    knn: KnnArguments = field(default_factory=KnnArguments)
    robustness: RobustnessArguments = field(default_factory=RobustnessArguments)

    FILENAME = "eval_args.json"


def build_parser(group_types: Sequence[type], description: str | None = None) -> HfArgumentParser:
    """One flag per field of `group_types` (dataclasses with distinct field names), plus `--config`."""
    # No abbreviated flags: `--train_di` must not silently mean --train_dir (or, with a recipe, keep the recipe's
    # source beside it).
    parser = HfArgumentParser(list(group_types), description=description, allow_abbrev=False)
    parser.add_argument("--config", help="YAML recipe whose keys are the flags below (without dashes)")
    return parser


def _flags_given(argv: Sequence[str]) -> set[str]:
    """The fields that `argv` names (`--name value`, `--name=value`, `--name-with-dashes`)."""
    return {token[2:].split("=", 1)[0].replace("-", "_") for token in argv if token.startswith("--")}


def _without_replaced_sources(
    recipe: dict[str, Any], parser: HfArgumentParser, argv: Sequence[str], cli: Any
) -> dict[str, Any]:
    """`recipe` less its data source (or encoder) and the fields describing it when the command line (`argv`, parsed
    as `cli`) names another, so that the two are never combined. For sensor data `--data_dir` (Pamap2's folder) is a
    source of its own; naming the recipe's own source again changes nothing."""
    given = _flags_given(argv)
    for group in parser.dataclass_types:
        sources = set(getattr(group, "SOURCE_FIELDS", ()))
        if not sources:
            continue
        domain = getattr(cli, "domain", None) if "domain" in given else recipe.get("domain")
        if domain == "sensor" and "data_dir" in {f.name for f in dataclasses.fields(group)}:
            sources.add("data_dir")
        named = given & sources
        if named and any(getattr(cli, name) != recipe.get(name) for name in named):
            dropped = sources | set(getattr(group, "SOURCE_DETAILS", ()))
            recipe = {key: value for key, value in recipe.items() if key not in dropped or key in given}
    return recipe


def parse_arguments(parser: HfArgumentParser, argv: Sequence[str] | None = None) -> tuple[Any, ...]:
    """The dataclasses of `parser` (see `build_parser`) from `argv`, with the keys of the `--config` YAML recipe (if
    any) as the defaults, so that command-line flags override the recipe. A recipe key that is no field, or an
    invalid value, is a command-line error naming it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    known, _ = parser.parse_known_args(argv)
    if known.config:
        path = Path(known.config)
        if not path.is_file():
            parser.error(f"--config {path}: no such file")
        try:
            recipe = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            parser.error(f"--config {path}: not valid YAML ({error})")
        if not isinstance(recipe, dict):
            parser.error(f"--config {path}: a recipe is a mapping of flag names to values")
        fields = {f.name for group in parser.dataclass_types for f in dataclasses.fields(group)}
        unknown = sorted(set(recipe) - fields)
        if unknown:
            parser.error(f"unknown keys in {path}: {unknown}")
        parser.set_defaults(**_without_replaced_sources(recipe, parser, argv, known))
    try:
        *groups, _extra = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    except ValueError as error:
        parser.error(str(error))
    return tuple(groups)


def flag_rows(group_type: type) -> list[tuple[str, str, str]]:
    """`(flag, default, help)` of each field of `group_type`, as the README's flag tables list them."""
    rows = []
    for f in dataclasses.fields(group_type):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, list):
            default = " ".join(str(v) for v in default)
        rows.append((f"--{f.name}", "" if default is None else str(default), f.metadata.get("help", "")))
    return rows


def flag_table(group_type: type) -> str:
    """The README's markdown table of `group_type`'s flags."""
    title = getattr(group_type, "_argument_group_name", group_type.__name__)
    lines = [f"| {title} flag | default | meaning |", "|---|---|---|"]
    lines += [f"| `{flag}` | {default} | {text} |" for flag, default, text in flag_rows(group_type)]
    return "\n".join(lines)


__all__ = [
    "DataArguments",
    "EvaluationArguments",
    "EvaluationInputArguments",
    "InputArguments",
    "KnnArguments",
    "LinearEvalRun",
    "ModelArguments",
    "ObjectiveArguments",
    "OptimizationArguments",
    "PretrainingArguments",
    "PretrainingRun",
    "ProbeArguments",
    "ProbeOptimizationArguments",
    "RobustnessArguments",
    "ViewArguments",
    "build_parser",
    "flag_rows",
    "flag_table",
    "parse_arguments",
]
