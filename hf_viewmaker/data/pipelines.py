"""One data pipeline per domain: datasets, batching, and the model's inputs made on the training device.

Images arrive as [0, 1] pixels; speech as fitted waveforms whose log-mel spectrogram is computed batched on the device
(docs/method.md §4.2); Pamap2 as raw 52-channel windows turned into log-spectrograms on the device (§4.4). Handcrafted
views act where the original applied them: on pixels, on waveforms (crop + noise), or on the mel power spectrogram
before the log (masking).

Pretraining builds each domain's processor from the flags (and fits the sensor statistics on training windows);
evaluation passes the processor saved with the pretrained encoder instead (`build_pipeline(args, processor=...)`),
so the encoder sees exactly the inputs it was trained on.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset, Subset, default_collate

from ..processing import LogMelFeatureExtractor, SensorSpectrogramProcessor, ViewmakerImageProcessor
from ..views import SimCLRImageViews, SpectralMaskingViews, WaveformCropNoiseViews
from ..visualization import make_view_grid
from .images import ImageExamples, load_image_splits
from .packaged import FASHION_MNIST_SAMPLE_FILES
from .pamap2 import Pamap2Windows
from .speech import SpeechCollator, SpeechExamples, load_speech_splits
from .speech_transfer import load_speech_transfer_split
from .time_series import SeriesExamples

PACKAGED_DATASETS = {"fashion_mnist_sample": FASHION_MNIST_SAMPLE_FILES}
EXPERT_VIEWS = {
    "image": ("simclr_image",),
    "audio": ("waveform_crop_noise", "spectral_masking"),
    "sensor": ("spectral_masking",),
}
# Windows used to fit the sensor processor's per-channel statistics, and clips for `--audio_normalization fit`.
SENSOR_STATISTICS_WINDOWS = 2000
AUDIO_STATISTICS_CLIPS = 500


@dataclass
class DataPipeline:
    """What a training or evaluation loop needs from a domain.

    Attributes:
        train, validation: datasets of dict items (`labels`, `indices` and the raw input).
        train_collate, eval_collate: `DataLoader` collate functions.
        make_inputs: `(batch on the device, generator, augment, pair=True) -> (inputs, second_inputs or None)`: the
            model's inputs, `[B, C, H, W]`; with `augment`, two handcrafted views when the run uses them (one, and
            `None`, with `pair=False`). Without `augment`, the clean inputs (images in [0, 1], to be normalised after
            any viewmaker; log-mels and sensor spectrograms already normalised by their processor).
        processors: what to save beside each part (`"viewmaker"`, `"encoder"`), e.g. with `save_pretrained`.
        grid_origin: how to draw the inputs (`"lower"` puts spectrograms' low frequencies at the bottom).
    """

    train: Dataset
    validation: Dataset | None
    train_collate: Callable
    eval_collate: Callable
    make_inputs: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
    processors: dict[str, Any]
    grid_origin: str = "upper"

    def eval_batch(self, count: int, device: torch.device) -> dict[str, torch.Tensor]:
        """The first `count` validation (else training) items as a batch on `device`, for pictures."""
        source = self.validation if self.validation is not None else self.train
        batch = self.eval_collate([source[i] for i in range(min(count, len(source)))])
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    @torch.no_grad()
    def view_grid(self, viewmaker: torch.nn.Module, count: int = 8, seed: int = 0, scale: int = 4) -> Image.Image:
        """`make_view_grid` of `viewmaker` (a `ViewmakerModel`) on the first `count` validation items, the clean
        inputs it was trained on, with the viewmaker's noise drawn from a generator seeded with `seed`."""
        device = next(viewmaker.parameters()).device
        inputs = self.make_inputs(self.eval_batch(count, device), None, False)[0]
        views = viewmaker(inputs, generator=torch.Generator(device=device).manual_seed(seed))
        return make_view_grid(
            inputs, views.views, views.perturbation, max_examples=count, scale=scale, origin=self.grid_origin
        )


def _limit(dataset, limit: int | None):
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def fixed_items(dataset: Dataset) -> Dataset:
    """`dataset` as a fixed set of items for evaluation. Accelerate's data loaders call a dataset's `set_epoch` with
    their pass count, so random windows (Pamap2) would be redrawn at every evaluation; seen through a `Subset`, which
    has no `set_epoch`, they stay those of the dataset's current epoch."""
    return Subset(dataset, range(len(dataset))) if hasattr(dataset, "set_epoch") else dataset


def expert_views_for(args, domain: str, image_size: int | None = None) -> torch.nn.Module | None:
    """The handcrafted views a run's flags ask for (`--view_mode`, `--expert_views`), or `None`. `image_size` (for
    the SimCLR crops) defaults to `args.image_size`."""
    if "expert" not in args.view_mode:
        return None
    if args.expert_views not in EXPERT_VIEWS[domain]:
        raise ValueError(
            f"--view_mode {args.view_mode} on --domain {domain} needs --expert_views in {EXPERT_VIEWS[domain]}, "
            f"got {args.expert_views!r}"
        )
    if args.expert_views == "simclr_image":
        return SimCLRImageViews(size=image_size or args.image_size)
    if args.expert_views == "waveform_crop_noise":
        return WaveformCropNoiseViews()
    return SpectralMaskingViews(args.max_freq_mask, args.max_time_mask, args.spectral_noise_std)


def _two_or_one(view, pair: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Two independent draws of `view()`, or one and `None`."""
    return (view(), view()) if pair else (view(), None)


def image_pipeline(args, processor: ViewmakerImageProcessor | None = None) -> DataPipeline:
    if processor is None:
        processor = ViewmakerImageProcessor(
            num_channels=args.num_channels,
            size={"height": args.image_size, "width": args.image_size},
            **({"image_mean": args.normalize_mean, "image_std": args.normalize_std} if args.normalize_mean else {}),
        )
    else:
        if not isinstance(processor, ViewmakerImageProcessor):
            raise TypeError(f"--domain image needs a ViewmakerImageProcessor, got {type(processor).__name__}")
        # The data are [0, 1] pixels: the statistics are applied after the views.
        processor = ViewmakerImageProcessor.from_dict({**processor.to_dict(), "do_normalize": False})
    if args.packaged_dataset:
        files = PACKAGED_DATASETS[args.packaged_dataset]
        splits = load_image_splits(train_file=files["train"], validation_file=files["test"], cache_dir=args.cache_dir)
    else:
        splits = load_image_splits(
            dataset_name=args.dataset_name,
            dataset_config_name=args.dataset_config_name,
            train_dir=args.train_dir,
            validation_dir=args.validation_dir,
            train_file=args.train_file,
            validation_file=args.validation_file,
            train_split=args.train_split,
            validation_split=args.validation_split,
            cache_dir=args.cache_dir,
        )
    limits = {"train": args.max_train_samples, "validation": args.max_eval_samples}
    examples = {
        split: ImageExamples(_limit(dataset, limits[split]), processor, args.image_column_name, args.label_column_name)
        for split, dataset in splits.items()
    }
    views = expert_views_for(args, "image", image_size=processor.size["height"])

    def make_inputs(batch, generator, augment, pair=True):
        pixels = batch["pixel_values"]
        if augment and views is not None:
            return _two_or_one(lambda: views(pixels, generator=generator), pair)
        return pixels, None

    # The viewmaker sees [0, 1] pixels, the encoder normalised ones (docs/method.md §4.1).
    parts = {
        part: ViewmakerImageProcessor.from_dict({**processor.to_dict(), "do_normalize": normalizes})
        for part, normalizes in (("viewmaker", False), ("encoder", True))
    }
    return DataPipeline(
        examples["train"], examples.get("validation"), default_collate, default_collate, make_inputs, parts
    )


def _extractor_from_flags(args) -> LogMelFeatureExtractor:
    """The paper's log-mel recipe for `--audio_normalization`'s dataset (docs/method.md §4.2-4.3), with any STFT,
    length or rate the flags set instead; `fit` leaves the statistics to be fitted on the training clips."""
    fields = {key: value for key in ("sampling_rate", "n_fft", "hop_length") if (value := getattr(args, key, None))}
    if getattr(args, "audio_max_length", None):
        fields["max_length"] = args.audio_max_length
    if args.audio_normalization == "fit":
        return LogMelFeatureExtractor(size=args.image_size, **fields)
    return LogMelFeatureExtractor.for_dataset(args.audio_normalization, size=args.image_size, **fields)


def speech_pipeline(args, processor: LogMelFeatureExtractor | None = None) -> DataPipeline:
    if processor is None:
        extractor = _extractor_from_flags(args)
    elif not isinstance(processor, LogMelFeatureExtractor):
        raise TypeError(f"--domain audio needs a LogMelFeatureExtractor, got {type(processor).__name__}")
    else:
        extractor = processor
    transfer = getattr(args, "transfer_dataset", None)
    audio_column, label_column = args.audio_column_name, args.label_column_name
    if transfer:
        # A transfer set of docs/method.md §4.3 from its official layout: "train" and "test" splits, columns audio and
        # label (a ClassLabel shared by both splits).
        options = {"caller_intent": args.caller_intent} if getattr(args, "caller_intent", None) else {}
        if transfer == "librispeech_speaker_id" and args.cache_dir and not args.data_dir:
            options["cache_dir"] = args.cache_dir
        splits = {
            split: load_speech_transfer_split(transfer, args.data_dir or None, source, **options)
            for split, source in (("train", "train"), ("validation", "test"))
        }
        audio_column, label_column = "audio", "label"
    else:
        splits = load_speech_splits(
            dataset_name=args.dataset_name,
            dataset_config_name=args.dataset_config_name,
            train_dir=args.train_dir,
            validation_dir=args.validation_dir,
            train_file=args.train_file,
            validation_file=args.validation_file,
            train_split=args.train_split,
            validation_split=args.validation_split,
            audio_column=audio_column,
            cache_dir=args.cache_dir,
        )
    common = {
        "sampling_rate": extractor.sampling_rate,
        "audio_column": audio_column,
        "label_column": label_column,
        "skip_bad_examples": args.skip_bad_examples,
    }
    train = SpeechExamples(_limit(splits["train"], args.max_train_samples), **common)
    validation = None
    if "validation" in splits:
        # One label map for both splits, so that the kNN monitor compares like with like.
        validation = SpeechExamples(
            _limit(splits["validation"], args.max_eval_samples), label_map=train.label_map, **common
        )
    if processor is None and args.audio_normalization == "fit":
        # Clips spread over the whole split: files are often sorted by speaker or class.
        step = max(1, len(train) // AUDIO_STATISTICS_CLIPS)
        extractor.fit_statistics(Subset(train, range(0, len(train), step)), max_clips=AUDIO_STATISTICS_CLIPS)
    views = expert_views_for(args, "audio")

    def make_inputs(batch, generator, augment, pair=True):
        waveforms = batch["input_values"]
        if not augment or views is None:
            return extractor.log_mel(waveforms), None
        if isinstance(views, WaveformCropNoiseViews):
            return _two_or_one(lambda: extractor.log_mel(views(waveforms, generator, batch["lengths"])), pair)
        # Masks act on the mel power spectrogram, noise after the log (docs/method.md §4.2).
        power = extractor.mel_power(waveforms)
        return _two_or_one(
            lambda: views.add_noise(extractor.to_log_normalized(views.mask(power, generator)), generator), pair
        )

    return DataPipeline(
        train,
        validation,
        SpeechCollator(extractor, training=True),
        SpeechCollator(extractor, training=False),
        make_inputs,
        {"viewmaker": extractor, "encoder": extractor},
        grid_origin="lower",
    )


def _sensor_splits(args) -> tuple[Dataset, Dataset | None]:
    """Pamap2 windows from `--data_dir`, or whole series from `.ts` files (`--train_file`, `--validation_file`)."""
    if getattr(args, "train_file", None):
        train = SeriesExamples(args.train_file, max_examples=args.max_train_samples)
        validation = None
        if args.validation_file:
            validation = SeriesExamples(args.validation_file, train.label_names, max_examples=args.max_eval_samples)
        return train, validation
    if args.data_dir is None:
        raise ValueError(
            "--domain sensor needs --data_dir (the folder holding PAMAP2_Dataset/, see download_pamap2) or "
            "--train_file (a .ts series file)"
        )
    train = Pamap2Windows(
        args.data_dir, split=args.train_split, seed=args.seed, examples_per_epoch=args.max_train_samples
    )
    validation = Pamap2Windows(
        args.data_dir,
        split=args.validation_split or "validation",
        seed=args.seed,
        examples_per_epoch=args.max_eval_samples,
    )
    return train, validation


def sensor_pipeline(args, processor: SensorSpectrogramProcessor | None = None) -> DataPipeline:
    train, validation = _sensor_splits(args)
    num_channels = train.num_channels
    if processor is None:
        # The paper's STFT (docs/method.md §4.4) unless the flags set another, e.g. for series shorter than 1,000.
        stft = {k: v for k in ("n_fft", "hop_length") if (v := getattr(args, k, None)) is not None}
        statistics_windows = Subset(train, range(min(SENSOR_STATISTICS_WINDOWS, len(train))))
        processor = SensorSpectrogramProcessor(num_channels=num_channels, **stft).fit_statistics(statistics_windows)
    elif not isinstance(processor, SensorSpectrogramProcessor):
        raise TypeError(f"--domain sensor needs a SensorSpectrogramProcessor, got {type(processor).__name__}")
    elif processor.do_normalize and processor.channel_means is None:
        raise ValueError("the given SensorSpectrogramProcessor has no channel statistics (it is never refitted here)")
    elif processor.num_channels != num_channels:
        raise ValueError(f"the processor expects {processor.num_channels} channels, the data have {num_channels}")
    views = expert_views_for(args, "sensor")

    def make_inputs(batch, generator, augment, pair=True):
        spectrograms = processor.process(batch["values"])
        if augment and views is not None:
            return _two_or_one(lambda: views(spectrograms, generator=generator), pair)
        return spectrograms, None

    return DataPipeline(
        train,
        validation,
        default_collate,
        default_collate,
        make_inputs,
        {"viewmaker": processor, "encoder": processor},
        grid_origin="lower",
    )


def build_pipeline(args, processor: Any | None = None) -> DataPipeline:
    """The data pipeline of `args.domain` ("image", "audio" or "sensor") from the scripts' data flags.

    `processor`: use this data processor instead of building one from the flags, e.g. the one saved with a
    pretrained encoder (`encoder/preprocessor_config.json`), so evaluation feeds the encoder what it was trained on:

    * image: a `ViewmakerImageProcessor`; its size and channels are used, and its statistics are what the
      `"encoder"` processor normalises with (the data stay [0, 1] pixels: normalise after any views);
    * audio: a `LogMelFeatureExtractor` (size, hop, sampling rate and dB statistics);
    * sensor: a `SensorSpectrogramProcessor` with its fitted per-channel statistics, used as is: never refitted.

    Speech args may also name a transfer set (`args.transfer_dataset`, read from `args.data_dir` with
    `load_speech_transfer_split`: its "train" split trains, its "test" split is the validation split, both with the
    `label` column).
    """
    builders = {"image": image_pipeline, "audio": speech_pipeline, "sensor": sensor_pipeline}
    return builders[args.domain](args, processor)


__all__ = ["DataPipeline", "PACKAGED_DATASETS", "build_pipeline", "expert_views_for", "fixed_items"]
