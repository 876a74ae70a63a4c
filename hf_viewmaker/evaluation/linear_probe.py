"""Linear evaluation of a frozen encoder (docs/method.md §5): the pieces that `training/linear_eval.py` puts together.

The protocol of the paper: the pretrained encoder is frozen and in eval mode; a single linear layer is trained with
cross-entropy on its pre-pool map (CIFAR-10, audio) or its pooled vector (Pamap2) by SGD (lr 0.01, momentum 0.9),
with the MoCo step schedule for CIFAR-10 (x0.1 at 60 % and 80 % of the epochs). Training inputs pass through the
frozen viewmaker (fresh noise every time) or the expert views first; evaluation uses clean inputs. Images are [0, 1]
pixels that are normalised *after* the views, with the encoder processor's statistics; log-mel spectrograms (speech)
and sensor spectrograms (Pamap2) come already normalised from the processor saved with the encoder.
"""

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from transformers import AutoConfig
from transformers.utils import cached_file

from ..models.encoder import ContrastiveResNetConfig, ContrastiveResNetForClassification, ContrastiveResNetModel
from ..models.pretraining.backbone_encoder import BackboneWithProjection, file_lookup_kwargs, pooled_width

logger = logging.getLogger(__name__)

FEATURE_TYPES = ("prepool", "pooled", "embeddings")
LR_SCHEDULES = ("step", "constant")


def find_file(name_or_path: str, filename: str, subfolder: str = "", **hub_kwargs) -> str | None:
    """The local path of `filename` in `subfolder` of `name_or_path` (a local folder or a Hub repo), or `None` when it
    has none or the Hub cannot be reached. `hub_kwargs` (e.g. `revision`, `cache_dir`, `token`) go to
    `transformers`' `cached_file`, which looks in the local cache before the Hub."""
    try:
        return cached_file(
            name_or_path,
            filename,
            subfolder=subfolder,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **hub_kwargs,
        )
    except OSError:
        return None


def resolve_subfolder(
    name_or_path: str, subfolder: str | None, fallback_to_root: bool = True, **hub_kwargs
) -> str | None:
    """Where a model's `config.json` lives under `name_or_path` (a local folder or a Hub repo), `from_pretrained`'s
    `subfolder` semantics: `subfolder` when it holds one, else `""` (the root) when `fallback_to_root` and the root
    holds one, else `None`. `hub_kwargs` go to `find_file`."""
    candidates = ([subfolder] if subfolder else []) + ([""] if fallback_to_root or not subfolder else [])
    for candidate in candidates:
        if find_file(name_or_path, "config.json", candidate, **hub_kwargs) is not None:
            return candidate
    return None


def build_linear_probe(
    encoder_name_or_path: str,
    num_labels: int,
    features: str = "prepool",
    subfolder: str = "",
    image_size: int | Sequence[int] | None = None,
    id2label: dict[int, str] | None = None,
    **from_pretrained_kwargs,
) -> ContrastiveResNetForClassification:
    """A pretrained `ContrastiveResNetModel` with a fresh linear head, as a `ContrastiveResNetForClassification` whose
    encoder (`.resnet`) is frozen (no gradients) and in eval mode; only `.classifier` is left to train.

    Args:
        encoder_name_or_path: a saved encoder (local folder or Hub repo), e.g. a pretraining run's `encoder/`.
        num_labels: classes of the head.
        features: `"prepool"` (the flattened last stage map, the paper's CIFAR-10 and audio probe) or `"pooled"`
            (the pooled vector, Pamap2 and the meta-dataset transfer).
        subfolder: `from_pretrained`'s subfolder (e.g. `"encoder"` for a run folder).
        image_size: the input size, which sizes a pre-pool head (default: the encoder config's).
        id2label: class names, saved in the config.
        from_pretrained_kwargs: e.g. `revision`, `cache_dir`.
    """
    if features not in ("prepool", "pooled"):
        raise ValueError(f"features must be 'prepool' or 'pooled' for a linear probe, got {features!r}")
    config = AutoConfig.from_pretrained(encoder_name_or_path, subfolder=subfolder, **from_pretrained_kwargs)
    if not isinstance(config, ContrastiveResNetConfig):  # a transformers backbone
        if features != "pooled":
            raise ValueError(
                f"{type(config).__name__} has no pre-pool map of the paper's ResNet: use --features pooled"
            )
        encoder = BackboneWithProjection.from_pretrained(
            encoder_name_or_path, subfolder=subfolder, **from_pretrained_kwargs
        )
        return BackboneLinearProbe(encoder, num_labels, id2label).freeze_encoder()
    overrides = {"num_labels": num_labels, "classifier_features": features}
    if image_size is not None:
        overrides["image_size"] = list(image_size) if not isinstance(image_size, int) else image_size
    if id2label is not None:
        overrides["id2label"] = {int(k): str(v) for k, v in id2label.items()}
        overrides["label2id"] = {str(v): int(k) for k, v in id2label.items()}
    # `ignore_mismatched_sizes`: a trained probe's head of another shape (classes, features) is not loaded either.
    model, loading = ContrastiveResNetForClassification.from_pretrained(
        encoder_name_or_path,
        subfolder=subfolder,
        output_loading_info=True,
        ignore_mismatched_sizes=True,
        **overrides,
        **from_pretrained_kwargs,
    )
    mismatched = {entry[0] if isinstance(entry, tuple) else entry for entry in loading.get("mismatched_keys", [])}
    if "classifier.weight" not in set(loading["missing_keys"]) | mismatched:
        # A trained probe given as the encoder: its head is not what a new probe starts from.
        logger.warning(f"{encoder_name_or_path} holds a trained classifier head: it is replaced by a fresh one")
        model.classifier.reset_parameters()  # what a fresh head gets (PyTorch's default, as `_init_weights`)
    elif mismatched:
        logger.warning(f"{encoder_name_or_path} holds a classifier head of another shape: a fresh one is used")
    freeze_encoder(model)
    return model


class BackboneLinearProbe(nn.Module):
    """A frozen transformers backbone (with its projection head, unused here) and a linear classifier on its pooled
    features: the linear probe of an encoder that is not the paper's ResNet. It saves as the backbone's own folder
    with `linear_head.safetensors` and `linear_head.json` (classes and their names) beside it."""

    HEAD_WEIGHTS, HEAD_CONFIG = "linear_head.safetensors", "linear_head.json"

    def __init__(self, encoder: BackboneWithProjection, num_labels: int, id2label: dict[int, str] | None = None):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(pooled_width(encoder.config), num_labels)
        self.id2label = {int(k): str(v) for k, v in (id2label or {}).items()}

    def freeze_encoder(self) -> "BackboneLinearProbe":
        """No gradients for the encoder, and the whole probe in eval mode (as `freeze_encoder`)."""
        self.encoder.requires_grad_(False)
        self.eval()
        return self

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Logits `[batch, num_labels]` of normalised inputs `[batch, channels, height, width]` (a tensor, as the
        linear-evaluation loop's head takes it, rather than a `ModelOutput`)."""
        return self.classifier(self.encoder(pixel_values).pooler_output)

    @classmethod
    def from_pretrained(cls, name_or_path: str, **from_pretrained_kwargs) -> "BackboneLinearProbe":
        """A saved probe (a folder or Hub repo written by `save_pretrained`), in eval mode."""
        from safetensors.torch import load_file

        hub = file_lookup_kwargs(from_pretrained_kwargs)
        description = json.loads(Path(cached_file(name_or_path, cls.HEAD_CONFIG, **hub)).read_text())
        encoder = BackboneWithProjection.from_pretrained(name_or_path, **from_pretrained_kwargs)
        probe = cls(encoder, description["num_labels"], description["id2label"])
        probe.classifier.load_state_dict(load_file(cached_file(name_or_path, cls.HEAD_WEIGHTS, **hub)))
        return probe.freeze_encoder()

    def save_pretrained(self, save_directory: str | Path) -> None:
        """The backbone's own folder (with its projection head), and the linear head beside it."""
        from safetensors.torch import save_file

        self.encoder.save_pretrained(save_directory)
        folder = Path(save_directory)
        save_file({k: v.contiguous() for k, v in self.classifier.state_dict().items()}, folder / self.HEAD_WEIGHTS)
        description = {"features": "pooled", "num_labels": self.classifier.out_features, "id2label": self.id2label}
        (folder / self.HEAD_CONFIG).write_text(json.dumps(description, indent=2) + "\n")


def load_encoder(name_or_path: str, subfolder: str = "", **from_pretrained_kwargs) -> nn.Module:
    """The saved encoder at `name_or_path`: a `ContrastiveResNetModel`, or a transformers backbone with its
    projection head (`BackboneWithProjection`)."""
    config = AutoConfig.from_pretrained(name_or_path, subfolder=subfolder, **from_pretrained_kwargs)
    if isinstance(config, ContrastiveResNetConfig):
        return ContrastiveResNetModel.from_pretrained(name_or_path, subfolder=subfolder, **from_pretrained_kwargs)
    return BackboneWithProjection.from_pretrained(name_or_path, subfolder=subfolder, **from_pretrained_kwargs)


def freeze_encoder(model: ContrastiveResNetForClassification) -> ContrastiveResNetForClassification:
    """No gradients for the encoder, and the whole model in eval mode (the encoder's BatchNorm statistics stay put;
    the linear head has no train-time behaviour)."""
    model.resnet.requires_grad_(False)
    model.eval()
    return model


def extract_features(encoder: nn.Module, pixel_values: torch.Tensor, features: str) -> torch.Tensor:
    """`[B, D]` features of normalised inputs: the flattened pre-pool map (`"prepool"`), the pooled vector
    (`"pooled"`) or the contrastive projection (`"embeddings"`), without gradients."""
    if features not in FEATURE_TYPES:
        raise ValueError(f"features must be one of {FEATURE_TYPES}, got {features!r}")
    with torch.no_grad():
        out = encoder(pixel_values)
    if features == "prepool":
        return torch.flatten(out.last_hidden_state, 1)
    return out.pooler_output if features == "pooled" else out.embeddings


def milestone_epochs(num_epochs: int, milestones: Sequence[float] = (0.6, 0.8)) -> list[int]:
    """The epochs at which the MoCo step schedule decays the lr: `int(m * num_epochs)` per fraction m (60 and 80 for
    100 epochs)."""
    return [int(m * num_epochs) for m in milestones]


def step_schedule(
    optimizer: torch.optim.Optimizer,
    num_epochs: int,
    milestones: Sequence[float] = (0.6, 0.8),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The authors' `MoCoLRScheduler`: the lr of epoch e is `base_lr * gamma ** (number of milestone epochs <= e)`,
    with milestone epochs `int(0.6 * E)` and `int(0.8 * E)` by default. Call `.step()` once at the end of every
    epoch (not every batch)."""
    if any(not 0.0 < m <= 1.0 for m in milestones):
        raise ValueError(f"milestones are fractions of the epochs in (0, 1], got {list(milestones)}")
    epochs = milestone_epochs(num_epochs, milestones)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: gamma ** sum(epoch >= m for m in epochs))


def constant_schedule(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """The same interface as [`step_schedule`], with the lr kept constant (audio, Pamap2 and meta-dataset probes)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def train_epoch(
    accelerator,
    head: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    to_features: Callable[[dict, int], torch.Tensor],
    max_grad_norm: float | None = None,
    on_batch: Callable[[], None] | None = None,
) -> float:
    """One epoch of the linear head: for every batch, `to_features(batch, batch_index)` (views, normalisation and the
    frozen encoder, or cached features) -> head -> cross-entropy -> step, then `on_batch()` (e.g. a progress bar's
    update). Returns the mean loss over processes and batches (one host sync, at the end)."""
    head.train()
    total = torch.zeros((), device=accelerator.device)
    batches = 0
    for index, batch in enumerate(loader):
        with accelerator.autocast():
            features = to_features(batch, index)
            logits = head(features)
        loss = F.cross_entropy(logits.float(), batch["labels"].long())
        accelerator.backward(loss)
        if max_grad_norm is not None:
            accelerator.clip_grad_norm_(head.parameters(), max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        total += loss.detach()
        batches += 1
        if on_batch is not None:
            on_batch()
    if batches == 0:
        return math.nan
    return accelerator.reduce(total, reduction="mean").item() / batches


@torch.no_grad()
def predict(
    accelerator, head: nn.Module, loader: DataLoader, to_features: Callable[[dict, int], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of a whole (sharded) split, gathered on every process in dataset order."""
    head.eval()
    logits, labels = [], []
    for index, batch in enumerate(loader):
        with accelerator.autocast():
            out = head(to_features(batch, index))
        gathered = accelerator.gather_for_metrics((out.float(), batch["labels"]))
        logits.append(gathered[0].cpu())
        labels.append(gathered[1].cpu())
    return torch.cat(logits), torch.cat(labels)


@torch.no_grad()
def gather_features(
    accelerator,
    loader: DataLoader,
    to_features: Callable[[dict, int], torch.Tensor],
    device: torch.device | str = "cpu",
    description: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of a whole (sharded, unshuffled) split, gathered on every process in dataset order and
    moved to `device`: the feature cache, or the kNN bank and queries. With a `description`, the main process shows a
    progress bar of the batches."""
    from tqdm.auto import tqdm

    features, labels = [], []
    batches = tqdm(
        loader, desc=description, leave=False, disable=description is None or not accelerator.is_local_main_process
    )
    for index, batch in enumerate(batches):
        with accelerator.autocast():
            out = to_features(batch, index)
        gathered = accelerator.gather_for_metrics((out.float(), batch["labels"]))
        features.append(gathered[0].to(device))
        labels.append(gathered[1].to(device))
    return torch.cat(features), torch.cat(labels)


class FeatureDataset(torch.utils.data.Dataset):
    """Cached `features` `[N, D]` and `labels` `[N]` as `{"features", "labels"}` items."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        if features.shape[0] != labels.shape[0]:
            raise ValueError(f"{features.shape[0]} feature rows but {labels.shape[0]} labels")
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[index], "labels": self.labels[index]}


__all__ = [
    "FEATURE_TYPES",
    "LR_SCHEDULES",
    "BackboneLinearProbe",
    "FeatureDataset",
    "build_linear_probe",
    "constant_schedule",
    "extract_features",
    "find_file",
    "freeze_encoder",
    "gather_features",
    "load_encoder",
    "milestone_epochs",
    "predict",
    "resolve_subfolder",
    "step_schedule",
    "train_epoch",
]
