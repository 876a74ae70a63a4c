"""A trained viewmaker as a data augmentation for anyone's training code: a batch in, views of it out.

    augmentation = ViewmakerAugmentation.from_pretrained("outputs/quickstart")  # a run folder, or a Hub repo id
    views = augmentation(pixel_values)  # [batch, C, H, W] [0, 1] pixels -> views of the same shape, dtype and device

It plugs into the three places where augmentations usually live:

- a tensor pipeline: `augmentation(batch, generator=..., distortion_budget=...)`, an `nn.Module` whose parameters
  are frozen, computed without gradients, in eval mode (also inside a model that is training);
- a `datasets` transform: `train_split.with_transform(augmentation.dataset_transform(image_key="image"))`;
- a `transformers.Trainer` data collator: `augmentation.collator(then_normalize=encoder_processor)`, whose
  `for_evaluation()` collates evaluation batches the same way without views.

Images are made views of as [0, 1] pixels, and normalised *after* the viewmaker (docs/method.md §4.1): the processor
saved with a viewmaker does not normalise, and `then_normalize` applies the encoder's statistics to the views.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import default_data_collator
from transformers.utils import cached_file

from .hub.layout import PUBLISHED_FOLDERS
from .models.viewmaker import ViewmakerConfig, ViewmakerModel
from .processing.image_processing_viewmaker import ViewmakerImageProcessor, normalize_channels

# Where a viewmaker is found when no subfolder is given: the folder itself (a `save_pretrained` folder), else its
# `viewmaker/` (a run folder, or a published repository whose root holds the encoder).
VIEWMAKER_FOLDER = PUBLISHED_FOLDERS["viewmaker"]
# The keyword arguments of `from_pretrained` that say how to reach the Hub; the others go to the model only.
_HUB_OPTIONS = ("cache_dir", "force_download", "proxies", "token", "local_files_only")

# `(mean, std)` per channel, or an object with `image_mean` and `image_std` (a processor).
Normalization = tuple[Sequence[float], Sequence[float]] | Any


def _check_budget(value: Any, name: str = "distortion_budget") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _normalization(then_normalize: Normalization | None, num_channels: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`then_normalize` as `(mean, std)` float32 tensors of `num_channels` values, or `None`."""
    if then_normalize is None:
        return None
    if hasattr(then_normalize, "image_mean") and hasattr(then_normalize, "image_std"):
        mean, std = then_normalize.image_mean, then_normalize.image_std
    elif isinstance(then_normalize, (tuple, list)) and len(then_normalize) == 2:
        mean, std = then_normalize
    else:
        raise ValueError(
            "then_normalize must be (mean, std) with one value per channel, or a processor with image_mean and "
            f"image_std (the encoder's), got {type(then_normalize).__name__}"
        )
    mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
    std = torch.as_tensor(std, dtype=torch.float32).flatten()
    if not mean.numel() == std.numel() == num_channels:
        raise ValueError(
            f"then_normalize needs one mean and one std per channel ({num_channels}), got {mean.numel()} means and "
            f"{std.numel()} stds"
        )
    if not (std > 0).all():
        raise ValueError(f"then_normalize's stds must be positive, got {std.tolist()}")
    return mean, std


def _normalize(values: torch.Tensor, normalization: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    return values if normalization is None else normalize_channels(values, *normalization)


class ViewmakerAugmentation(nn.Module):
    r"""
    A trained [`ViewmakerModel`] as an augmentation: each call makes a fresh view of every example of a batch.

    The views are computed without gradients and with the viewmaker in eval mode, whatever the caller's mode: the
    viewmaker's parameters are frozen (`requires_grad=False`), `train()` leaves it in eval mode, and as no graph is
    ever recorded through it an optimizer that is handed its parameters never changes them. So it can sit inside a
    model that is being trained (`nn.Sequential(augmentation, encoder)`) or in a data pipeline. Being a module, it
    moves with `.to()` and with the model it sits in; called on a batch on another device, it moves there itself
    (once: it stays there for the next calls).

    Precision: the views are computed in the viewmaker's dtype (float32 unless converted, e.g.
    `augmentation.to(torch.bfloat16)`), whatever the batch's dtype and any enclosing `torch.autocast`, and returned in
    the batch's dtype. So a bfloat16 or float16 batch gets the views a float32 batch gets, rounded to its precision;
    the distortion budget is always applied in float32.

    Args:
        viewmaker ([`ViewmakerModel`]):
            The trained viewmaker. It is frozen and put in eval mode (in place: this module holds it, not a copy).
        distortion_budget (`float`, *optional*):
            The budget of every call that does not give its own; defaults to `viewmaker.config.distortion_budget`,
            the budget it was trained with.
        processor ([`ViewmakerImageProcessor`], *optional*):
            The processor saved with the viewmaker (images to [0, 1] pixels, no normalisation), the default of
            [`~ViewmakerAugmentation.dataset_transform`]'s `processor`. `from_pretrained` loads it.

    Example:

    ```python
    >>> augmentation = ViewmakerAugmentation(ViewmakerModel(ViewmakerConfig(num_channels=1, num_res_blocks=1)))
    >>> views = augmentation(torch.rand(8, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    >>> views.shape
    torch.Size([8, 1, 28, 28])
    ```
    """

    def __init__(
        self,
        viewmaker: ViewmakerModel,
        distortion_budget: float | None = None,
        processor: ViewmakerImageProcessor | None = None,
    ):
        super().__init__()
        if not isinstance(viewmaker, ViewmakerModel):
            raise ValueError(f"viewmaker must be a ViewmakerModel, got {type(viewmaker).__name__}")
        self.viewmaker = viewmaker.eval().requires_grad_(False)
        self.default_budget = _check_budget(distortion_budget)
        self.processor = processor
        if processor is not None and getattr(processor, "num_channels", self.config.num_channels) != (
            self.config.num_channels
        ):
            raise ValueError(
                f"the processor makes {processor.num_channels}-channel images, but the viewmaker was built for "
                f"num_channels={self.config.num_channels}"
            )

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path,
        subfolder: str | None = None,
        revision: str | None = None,
        distortion_budget: float | None = None,
        **hub_kwargs: Any,
    ) -> ViewmakerAugmentation:
        """
        Load a trained viewmaker, and the image processor saved with it if there is one.

        Args:
            path_or_repo_id (`str` or `Path`):
                A local folder or a Hub repository id: a viewmaker's own `save_pretrained` folder, a run folder of
                `training/pretrain.py` (`run/viewmaker/`) or a published repository (the encoder at its root, the
                viewmaker in `viewmaker/`).
            subfolder (`str`, *optional*):
                Where in it the viewmaker is. By default, the folder itself if its `config.json` is a viewmaker's
                (`model_type` "viewmaker"), else its `viewmaker/` subfolder.
            revision (`str`, *optional*):
                A branch, tag or commit of a Hub repository (default: `main`). Ignored for local folders.
            distortion_budget (`float`, *optional*):
                The default budget of the calls (see the class); defaults to the one the viewmaker was trained with.
            hub_kwargs:
                `cache_dir`, `force_download`, `proxies`, `token`, `local_files_only`, as in every
                `from_pretrained`; any other keyword (e.g. `dtype`) goes to `ViewmakerModel.from_pretrained`.

        Raises:
            FileNotFoundError: no `config.json` where a viewmaker is looked for (the message names every place).
            ValueError: the `config.json` found is not a viewmaker's.
        """
        hub_options = {k: v for k, v in hub_kwargs.items() if k in _HUB_OPTIONS}
        path_or_repo_id = _local_folder_or_repo_id(str(path_or_repo_id))
        where = _find_viewmaker(path_or_repo_id, subfolder, revision, hub_options)
        viewmaker = ViewmakerModel.from_pretrained(path_or_repo_id, subfolder=where, revision=revision, **hub_kwargs)
        processor = _load_image_processor(path_or_repo_id, where, revision, hub_options)
        return cls(viewmaker, distortion_budget=distortion_budget, processor=processor)

    @property
    def config(self) -> ViewmakerConfig:
        return self.viewmaker.config

    @property
    def distortion_budget(self) -> float:
        """The budget of a call that does not give its own."""
        return self.config.distortion_budget if self.default_budget is None else self.default_budget

    @property
    def expected_shape(self) -> str:
        """The shape of the batches this viewmaker makes views of, in words."""
        layout = "height, width" if self.config.spatial_dims == 2 else "time"
        return f"[batch, {self.config.num_channels}, {layout}]"

    def train(self, mode: bool = True) -> ViewmakerAugmentation:
        """Set this module's flag only: the viewmaker stays in eval mode, so a model containing it may train."""
        self.training = mode
        self.viewmaker.eval()
        return self

    def check_batch(self, pixel_values: Any, name: str = "pixel_values") -> None:
        """Raise a `ValueError` naming the expected shape unless `pixel_values` is a non-empty floating-point tensor
        of shape `expected_shape`. (The viewmaker itself then checks the spatial size and the values' range.)"""
        expected = self.expected_shape
        if not isinstance(pixel_values, torch.Tensor):
            raise ValueError(
                f"{name} must be a torch.Tensor of shape {expected}, got a {type(pixel_values).__name__} "
                "(use torch.as_tensor, or torch.stack for a list of examples)"
            )
        shape = tuple(pixel_values.shape)
        if pixel_values.ndim != self.config.spatial_dims + 2:
            single = pixel_values.ndim == self.config.spatial_dims + 1
            raise ValueError(
                f"{name} must have shape {expected}, got shape {shape}"
                + (": a single example? Add the batch dimension, e.g. `x.unsqueeze(0)`." if single else "")
            )
        if shape[1] != self.config.num_channels:
            raise ValueError(
                f"{name} must have shape {expected}, got shape {shape}: {shape[1]} channels, but this viewmaker was "
                f"built for num_channels={self.config.num_channels}"
            )
        if shape[0] == 0:
            raise ValueError(f"{name} is an empty batch (shape {shape}); expected {expected}")
        if not pixel_values.is_floating_point():
            hint = ": images are [0, 1] pixels, e.g. `uint8_images / 255`" if self.config.clamp else ""
            raise ValueError(f"{name} must be floating point, got {pixel_values.dtype}{hint}")

    @torch.no_grad()
    def forward(
        self,
        pixel_values: torch.Tensor,
        generator: torch.Generator | None = None,
        distortion_budget: float | None = None,
    ) -> torch.Tensor:
        r"""
        Make one view of every example.

        Args:
            pixel_values (`torch.Tensor` of shape `(batch, num_channels, height, width)`, or
                `(batch, num_channels, time)` for a 1-D viewmaker):
                [0, 1] pixels for images (normalise the views afterwards), z-scored spectrograms otherwise, any
                floating-point dtype, on any device.
            generator (`torch.Generator`, *optional*):
                Source of the noise, on the batch's device: equally seeded generators give identical views, and the
                global RNG is left untouched. Without it, the noise comes from the global RNG: a new view each call.
            distortion_budget (`float`, *optional*):
                The budget of this call (e.g. from a schedule); defaults to `self.distortion_budget`.

        Returns:
            `torch.Tensor`: the views, of `pixel_values`' shape, dtype and device, with `requires_grad=False`.
        """
        self.check_batch(pixel_values)
        budget = _check_budget(distortion_budget)
        device = pixel_values.device
        if generator is not None and torch.device(generator.device) != device:
            raise ValueError(
                f"generator is on {generator.device} but pixel_values is on {device}: make it with "
                f"torch.Generator(device={str(device)!r})"
            )
        if self.viewmaker.device != device:
            self.viewmaker.to(device)
        # An enclosing autocast (a training step's mixed precision) would run the convolutions in half precision:
        # the views must not depend on where they are made.
        no_autocast = (
            torch.autocast(device_type=device.type, enabled=False)
            if torch.amp.is_autocast_available(device.type)
            else contextlib.nullcontext()
        )
        with no_autocast:
            output = self.viewmaker(
                pixel_values,
                generator=generator,
                distortion_budget=self.distortion_budget if budget is None else budget,
                return_dict=True,
            )
        return output.views

    def dataset_transform(
        self,
        input_key: str = "pixel_values",
        output_key: str | None = None,
        image_key: str | None = None,
        processor: Callable | None = None,
        then_normalize: Normalization | None = None,
        generator: torch.Generator | None = None,
    ) -> ViewmakerDatasetTransform:
        """
        A transform for `datasets.Dataset.with_transform` (or `set_transform`) that makes views of every batch it is
        asked for: a DataLoader over the dataset gets fresh views at every epoch, made one batch at a time.

        Args:
            input_key (`str`, defaults to `"pixel_values"`):
                The column of [0, 1] pixels (or spectrograms) to make views of: a list of `[C, ...]` examples
                (tensors, arrays or nested lists, of one shape) or a stacked tensor.
            output_key (`str`, *optional*):
                Where the views go; defaults to `input_key` (replaced). Another key keeps the clean input beside them.
            image_key (`str`, *optional*):
                A column of images (PIL, or arrays) to turn into the input with `processor` first, e.g. `"image"`.
                The images are left out of the output (the processed pixels replace them).
            processor (*optional*):
                For `image_key`: an image processor that does not normalise (`do_normalize=False`): the viewmaker
                perturbs [0, 1] pixels. Defaults to the processor loaded with the viewmaker.
            then_normalize (`(mean, std)` or a processor, *optional*):
                Normalise the views with these per-channel statistics (the encoder processor's `image_mean` /
                `image_std`), for an encoder that expects normalised inputs.
            generator (`torch.Generator`, *optional*):
                Noise source (on the CPU) for reproducible views; a DataLoader worker holds its own copy of it.

        Returns:
            A [`ViewmakerDatasetTransform`]: `batch dict -> batch dict`, with the other keys as they were.
        """
        return ViewmakerDatasetTransform(
            self,
            input_key=input_key,
            output_key=output_key,
            image_key=image_key,
            processor=processor,
            then_normalize=then_normalize,
            generator=generator,
        )

    def collator(
        self,
        base_collator: Callable[[list], dict] = default_data_collator,
        input_key: str = "pixel_values",
        output_key: str | None = None,
        then_normalize: Normalization | None = None,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        training: bool = True,
    ) -> ViewmakerCollator:
        """
        A data collator (e.g. `Trainer(data_collator=...)`) that collates with `base_collator`, then replaces the
        batch's `input_key` with views, normalised with `then_normalize` if given.

        Trainer hands its one `data_collator` to the evaluation DataLoaders too: collate those with
        `collator.for_evaluation()` (the same collation and normalisation, no views), e.g. by overriding
        `get_eval_dataloader` (see examples/trainer_with_viewmaker_augmentation.py), or give the views to the training
        split only with `dataset_transform`.

        Args:
            base_collator (`Callable`, defaults to `transformers.default_data_collator`):
                Turns a list of examples into a batch dict with a `[batch, C, ...]` tensor under `input_key`.
            input_key (`str`, defaults to `"pixel_values"`):
                The collated key of [0, 1] pixels (or spectrograms) to make views of.
            output_key (`str`, *optional*):
                Where the views go; defaults to `input_key` (replaced). Another key keeps the clean input beside them.
            then_normalize (`(mean, std)` or a processor, *optional*):
                Normalise the views (and, for evaluation, the clean inputs) with these per-channel statistics: the
                encoder processor's `image_mean` / `image_std`. Images are normalised after the viewmaker.
            device (`str` or `torch.device`, *optional*):
                Make the views there (e.g. `"cuda"`) instead of on the batch's device (the CPU, in a DataLoader), and
                bring them back, so that the DataLoader can pin them. Only with `dataloader_num_workers=0`: CUDA does
                not run in forked DataLoader workers.
            generator (`torch.Generator`, *optional*):
                Noise source, on `device`, for reproducible views. With several DataLoader workers each holds a copy
                of it and they draw the same noise: leave it `None` there (Trainer seeds every worker).
            training (`bool`, defaults to `True`):
                Make views; `False` only collates and normalises (what `for_evaluation()` returns).
        """
        return ViewmakerCollator(
            self,
            base_collator=base_collator,
            input_key=input_key,
            output_key=output_key,
            then_normalize=then_normalize,
            device=device,
            generator=generator,
            training=training,
        )

    def __repr__(self) -> str:
        config = self.config
        return (
            f"{type(self).__name__}(num_channels={config.num_channels}, spatial_dims={config.spatial_dims}, "
            f"distortion_budget={self.distortion_budget:g}, budget_norm={config.budget_norm!r}, clamp={config.clamp}, "
            f"device={self.viewmaker.device}, dtype={self.viewmaker.dtype})"
        )


def _stack_examples(values: Any, key: str) -> tuple[torch.Tensor, bool]:
    """A dataset batch's column as one `[batch, ...]` tensor, and whether it came as a list of examples."""
    if isinstance(values, torch.Tensor):
        return values, False
    if isinstance(values, np.ndarray):
        return torch.from_numpy(values), False
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(
            f"batch[{key!r}] must be a stacked tensor or a non-empty list of examples, got {type(values).__name__}"
        )
    examples = [torch.as_tensor(v) for v in values]
    shapes = {tuple(e.shape) for e in examples}
    if len(shapes) > 1:
        raise ValueError(
            f"the examples of batch[{key!r}] have different shapes {sorted(shapes)}: resize them to one size (e.g. "
            "with the processor) before making views"
        )
    return torch.stack(examples), True


class ViewmakerDatasetTransform:
    """`batch dict -> batch dict` for `datasets.Dataset.with_transform`; made by
    [`ViewmakerAugmentation.dataset_transform`], whose arguments it keeps as attributes."""

    def __init__(
        self,
        augmentation: ViewmakerAugmentation,
        input_key: str = "pixel_values",
        output_key: str | None = None,
        image_key: str | None = None,
        processor: Callable | None = None,
        then_normalize: Normalization | None = None,
        generator: torch.Generator | None = None,
    ):
        self.augmentation = augmentation
        self.input_key = input_key
        self.output_key = input_key if output_key is None else output_key
        self.image_key = image_key
        self.processor = None
        if image_key is not None:
            self.processor = augmentation.processor if processor is None else processor
            if self.processor is None:
                raise ValueError(
                    f"image_key={image_key!r} needs a processor (images to [0, 1] pixel_values): pass processor=, "
                    "e.g. ViewmakerImageProcessor(num_channels=..., size=...), or load the viewmaker with "
                    "ViewmakerAugmentation.from_pretrained from a folder that holds its processor"
                )
            if getattr(self.processor, "do_normalize", False):
                raise ValueError(
                    "the processor normalises (do_normalize=True), but the viewmaker perturbs [0, 1] pixels: use the "
                    "processor saved with the viewmaker (do_normalize=False) and then_normalize= for the encoder's "
                    "statistics"
                )
        elif processor is not None:
            raise ValueError("processor= is used with image_key= (the column of images it processes)")
        self.normalization = _normalization(then_normalize, augmentation.config.num_channels)
        self.generator = generator

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """
        Args:
            batch (`dict`): columns of one batch of examples, as `datasets` passes them (lists, or tensors).

        Returns:
            `dict`: `batch` (not modified in place) with the views under `output_key`: a list of `[C, ...]` tensors
            when the input was a list of examples, else a `[batch, C, ...]` tensor.
        """
        batch = dict(batch)
        if self.image_key is not None:
            if self.image_key not in batch:
                raise ValueError(f"the batch has no {self.image_key!r} column (it has {sorted(batch)})")
            images = batch.pop(self.image_key)
            pixel_values = self.processor(list(images), return_tensors="pt")["pixel_values"]
            as_list = True
        else:
            if self.input_key not in batch:
                raise ValueError(f"the batch has no {self.input_key!r} column (it has {sorted(batch)})")
            pixel_values, as_list = _stack_examples(batch[self.input_key], self.input_key)
        views = _normalize(self.augmentation(pixel_values, generator=self.generator), self.normalization)
        if self.output_key != self.input_key:
            batch[self.input_key] = list(pixel_values) if as_list else pixel_values
        batch[self.output_key] = list(views) if as_list else views
        return batch


class ViewmakerCollator:
    """A data collator that makes views of the collated batch; made by [`ViewmakerAugmentation.collator`], whose
    arguments it keeps as attributes (`training` may be switched at any time)."""

    def __init__(
        self,
        augmentation: ViewmakerAugmentation,
        base_collator: Callable[[list], dict] = default_data_collator,
        input_key: str = "pixel_values",
        output_key: str | None = None,
        then_normalize: Normalization | None = None,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        training: bool = True,
    ):
        if not callable(base_collator):
            raise ValueError(f"base_collator must be callable, got {type(base_collator).__name__}")
        self.augmentation = augmentation
        self.base_collator = base_collator
        self.input_key = input_key
        self.output_key = input_key if output_key is None else output_key
        self.normalization = _normalization(then_normalize, augmentation.config.num_channels)
        self.device = None if device is None else torch.device(device)
        self.generator = generator
        self.training = training

    def for_evaluation(self) -> ViewmakerCollator:
        """This collator without views: the same collation and normalisation, for evaluation batches."""
        evaluation = copy.copy(self)
        evaluation.training = False
        return evaluation

    def __call__(self, features: list[Any]) -> dict[str, Any]:
        """
        Args:
            features (`list`): the examples of one batch, as the DataLoader passes them to a collate function.

        Returns:
            `dict`: `base_collator(features)` with the views (`training`) or the clean inputs, normalised if asked,
            under `output_key`.
        """
        batch = self.base_collator(features)
        if self.input_key not in batch:
            raise ValueError(f"the collated batch has no {self.input_key!r} (it has {sorted(batch)})")
        pixel_values = batch[self.input_key]
        self.augmentation.check_batch(pixel_values, name=f"batch[{self.input_key!r}]")
        outputs = pixel_values
        if self.training:
            on_device = pixel_values if self.device is None else pixel_values.to(self.device)
            outputs = self.augmentation(on_device, generator=self.generator).to(pixel_values.device)
        batch[self.output_key] = _normalize(outputs, self.normalization)
        return batch


def _local_folder_or_repo_id(path_or_repo_id: str) -> str:
    """`path_or_repo_id` with `~` expanded if it is a local folder; a Hub repository id as it is."""
    local = Path(path_or_repo_id).expanduser()
    if local.is_dir():
        return str(local)
    # A Hub id is `name` or `namespace/name`: anything else is a local path, which transformers would report as a
    # malformed repository id.
    looks_local = local.is_absolute() or path_or_repo_id.startswith((".", "~")) or path_or_repo_id.count("/") > 1
    if local.exists() or looks_local:
        raise FileNotFoundError(f"{path_or_repo_id} is not a folder (nor a Hub repository id, namespace/name)")
    return path_or_repo_id


def _find_viewmaker(path_or_repo_id: str, subfolder: str | None, revision: str | None, hub_options: dict) -> str:
    """The subfolder of `path_or_repo_id` that holds a viewmaker: `subfolder`, or "" / "viewmaker" (see
    `ViewmakerAugmentation.from_pretrained`)."""
    candidates = [subfolder] if subfolder is not None else ["", VIEWMAKER_FOLDER]
    found = {}  # {subfolder: the model_type of its config.json}
    for candidate in candidates:
        model_type = _model_type_at(path_or_repo_id, candidate, revision, hub_options)
        if model_type == ViewmakerConfig.model_type:
            return candidate
        found[candidate] = model_type
    at_revision = f" (revision {revision!r})" if revision else ""

    def place(candidate: str) -> str:
        return f"{path_or_repo_id}/{candidate + '/' if candidate else ''}config.json"

    what = [
        f"{place(c)} does not exist" if t is None else f"{place(c)} is a {t!r} config, not a 'viewmaker' one"
        for c, t in found.items()
    ]
    message = f"no viewmaker in {path_or_repo_id}{at_revision}: " + "; ".join(what)
    if all(t is None for t in found.values()):
        raise FileNotFoundError(message)
    raise ValueError(message)


def _model_type_at(path_or_repo_id: str, subfolder: str, revision: str | None, hub_options: dict) -> str | None:
    """The `model_type` of `subfolder/config.json` (`""` when it has none), or `None` if there is no such file."""
    resolved = cached_file(
        path_or_repo_id,
        "config.json",
        subfolder=subfolder,
        revision=revision,
        _raise_exceptions_for_missing_entries=False,
        **hub_options,
    )
    if resolved is None:
        return None
    return json.loads(Path(resolved).read_text()).get("model_type", "")


def _load_image_processor(
    path_or_repo_id: str, subfolder: str, revision: str | None, hub_options: dict
) -> ViewmakerImageProcessor | None:
    """The `ViewmakerImageProcessor` saved beside the viewmaker, or `None` (none saved, or a speech or sensor
    viewmaker's feature extractor, which `dataset_transform` does not use)."""
    resolved = cached_file(
        path_or_repo_id,
        "preprocessor_config.json",
        subfolder=subfolder,
        revision=revision,
        _raise_exceptions_for_missing_entries=False,
        **hub_options,
    )
    if resolved is None:
        return None
    saved = json.loads(Path(resolved).read_text())
    if saved.get("image_processor_type") != ViewmakerImageProcessor.__name__:
        return None
    return ViewmakerImageProcessor.from_dict(saved)


__all__ = ["ViewmakerAugmentation", "ViewmakerCollator", "ViewmakerDatasetTransform"]
