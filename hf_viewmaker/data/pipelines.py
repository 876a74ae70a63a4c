"""One data pipeline per domain: datasets, batching, and the model's inputs made on the training device.

Images arrive as [0, 1] pixels; speech as fitted waveforms whose log-mel spectrogram is computed batched on the device
(docs/method.md §4.2); Pamap2 as raw 52-channel windows turned into log-spectrograms on the device (§4.4), or, for a
viewmaker of the raw windows, standardised windows whose spectrogram the model computes (§4.6). Handcrafted views act
where the original applied them: on pixels, on waveforms (crop + noise), or on the mel power spectrogram before the
log (masking); the IMU views on the raw sensor windows.

Pretraining builds each domain's processor from its `InputArguments` (and fits the sensor statistics on training
windows); evaluation passes the processor saved with the pretrained encoder instead (`build_pipeline(data,
processor=...)`), so the encoder sees exactly the inputs it was trained on.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset as HFDataset
from datasets import IterableDataset
from PIL import Image
from torch.utils.data import Dataset, Subset, default_collate

from ..arguments import DataArguments, InputArguments, ViewArguments
from ..processing import LogMelFeatureExtractor, SensorSpectrogramProcessor, ViewmakerImageProcessor
from ..views import ImuViews, SimCLRImageViews, SpectralMaskingViews, WaveformCropNoiseViews
from ..visualization import make_view_grid
from .images import ImageExamples, load_image_splits, read_image
from .packaged import FASHION_MNIST_SAMPLE_FILES
from .pamap2 import Pamap2Windows
from .sources import undecoded
from .speech import (
    SamplingRateError,
    SpeechCollator,
    SpeechExamples,
    extend_label_map,
    load_speech_splits,
    read_clip,
)
from .speech_transfer import load_speech_transfer_split
from .streaming import StreamedExamples, leading_rows
from .time_series import SeriesExamples

PACKAGED_DATASETS = {"fashion_mnist_sample": FASHION_MNIST_SAMPLE_FILES}
EXPERT_VIEWS = {
    "image": ("simclr_image",),
    "audio": ("waveform_crop_noise", "spectral_masking"),
    "sensor": ("spectral_masking", "imu"),
}
#: What the sensor viewmaker perturbs (`--viewmaker_input`).
VIEWMAKER_INPUTS = ("spectrogram", "raw")
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
        encoder_views: `(encoder inputs, generator) -> views`, the handcrafted views that act after the model's front
            end (`ViewmakerForContrastivePretraining.normalize`), or `None`: the spectral masking of a sensor run whose
            viewmaker perturbs the raw windows, since its spectrograms exist only there.
        leading_train_examples: `count -> the first count training examples, unshuffled`, as an indexable dataset
            (the kNN monitor's bank); for a stream, read from its start once.
    """

    train: Dataset
    validation: Dataset | None
    train_collate: Callable
    eval_collate: Callable
    make_inputs: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
    processors: dict[str, Any]
    grid_origin: str = "upper"
    leading_train_examples: Callable[[int], Dataset] | None = None
    encoder_views: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.leading_train_examples is None:
            self.leading_train_examples = lambda count: Subset(self.train, range(min(count, len(self.train))))

    @property
    def streaming(self) -> bool:
        """Whether `train` is a stream (`StreamedExamples`: no length, no indexing)."""
        return isinstance(self.train, StreamedExamples)

    def eval_batch(self, count: int, device: torch.device) -> dict[str, torch.Tensor]:
        """The first `count` validation (else training) items as a batch on `device`, for pictures."""
        source = self.validation if self.validation is not None else self.train
        batch = self.eval_collate([source[i] for i in range(min(count, len(source)))])
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    @torch.no_grad()
    def view_grid(
        self,
        viewmaker: torch.nn.Module,
        count: int = 8,
        seed: int = 0,
        scale: int = 4,
        distortion_budget: float | None = None,
    ) -> Image.Image:
        """`make_view_grid` of `viewmaker` (a `ViewmakerModel`) on the first `count` validation items, the clean
        inputs it was trained on, with the viewmaker's noise drawn from a generator seeded with `seed`, at
        `distortion_budget` (default: the viewmaker's own)."""
        device = next(viewmaker.parameters()).device
        inputs = self.make_inputs(self.eval_batch(count, device), None, False)[0]
        generator = torch.Generator(device=device).manual_seed(seed)
        views = viewmaker(inputs, generator=generator, distortion_budget=distortion_budget)
        return make_view_grid(
            inputs, views.views, views.perturbation, max_examples=count, scale=scale, origin=self.grid_origin
        )


def _source(data: DataArguments) -> dict[str, Any]:
    """The arguments `load_image_splits` and `load_speech_splits` share: where the splits come from."""
    names = (
        "dataset_name", "dataset_config_name", "train_dir", "validation_dir", "train_file", "validation_file",
        "train_split", "validation_split", "cache_dir", "data_dir",
    )  # fmt: skip
    return {name: getattr(data, name) for name in names}


def _limit(dataset, limit: int | None):
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def _streamed_splits(
    data: DataArguments,
    splits: dict[str, IterableDataset],
    columns: tuple[str | None, ...],
    decode: Callable[[dict], dict],
    validation_examples: Callable[[HFDataset], Dataset],
    bank_examples: Callable[[HFDataset], Dataset],
    seed: int,
) -> tuple[StreamedExamples, Dataset | None, Callable[[int], Dataset]]:
    """The training stream (`--max_train_samples`: its first N rows, epoch after epoch), the validation stream's
    first `--max_eval_samples` rows (all of them without) as fixed examples, and the training stream's leading rows
    as fixed examples (the kNN bank). `columns`' first is the media column, left undecoded."""
    streams = {split: undecoded(stream, columns[0]) for split, stream in splits.items()}
    for split, stream in streams.items():
        for column in columns:
            if column is not None and stream.features is not None and column not in stream.features:
                raise ValueError(f"column {column!r} is not in the streamed {split} split ({list(stream.features)})")
    train = streams["train"]
    if data.max_train_samples is not None:
        train = train.take(data.max_train_samples)
    validation = None
    if "validation" in streams:
        validation = validation_examples(leading_rows(streams["validation"], data.max_eval_samples))
    stream = StreamedExamples(
        train, decode, data.shuffle_buffer_size, seed, data.skip_bad_examples, never_skip=(SamplingRateError,)
    )
    return stream, validation, lambda count: bank_examples(leading_rows(train, count))


def fixed_items(dataset: Dataset) -> Dataset:
    """`dataset` as a fixed set of items for evaluation. Accelerate's data loaders call a dataset's `set_epoch` with
    their pass count, so random windows (Pamap2) would be redrawn at every evaluation; seen through a `Subset`, which
    has no `set_epoch`, they stay those of the dataset's current epoch."""
    return Subset(dataset, range(len(dataset))) if hasattr(dataset, "set_epoch") else dataset


def expert_views_for(views: ViewArguments | None, domain: str, image_size: int | None = None) -> torch.nn.Module | None:
    """The handcrafted views `views` asks for (`view_mode`, `expert_views`) on `domain`, or `None`. `image_size` is
    the size of the SimCLR crops (images only)."""
    if views is None or not views.uses_expert_views:
        return None
    if views.expert_views not in EXPERT_VIEWS[domain]:
        raise ValueError(
            f"--view_mode {views.view_mode} on --domain {domain} needs --expert_views in {EXPERT_VIEWS[domain]}, "
            f"got {views.expert_views!r}"
        )
    if views.expert_views == "simclr_image":
        if image_size is None:
            raise ValueError("simclr_image views need the image size of their crops (`image_size`)")
        return SimCLRImageViews(size=image_size)
    if views.expert_views == "waveform_crop_noise":
        return WaveformCropNoiseViews()
    if views.expert_views == "imu":  # the time-domain half: the sensor pipeline adds the spectral masking
        return ImuViews(views.imu_max_rotation_degrees, views.imu_scale_std, views.imu_jitter_std)
    return SpectralMaskingViews(views.max_freq_mask, views.max_time_mask, views.spectral_noise_std)


def _two_or_one(view, pair: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Two independent draws of `view()`, or one and `None`."""
    return (view(), view()) if pair else (view(), None)


def image_processor(inputs: InputArguments) -> ViewmakerImageProcessor:
    """The image processor of `inputs` (size, channels, statistics: CIFAR-10's unless given), as pretraining builds
    it: its statistics are what the encoder's inputs are normalised with, after any views."""
    statistics = (
        {"image_mean": inputs.normalize_mean, "image_std": inputs.normalize_std} if inputs.normalize_mean else {}
    )
    processor = ViewmakerImageProcessor(
        num_channels=inputs.num_channels, size={"height": inputs.image_size, "width": inputs.image_size}, **statistics
    )
    if len(processor.image_mean) != inputs.num_channels:
        raise ValueError(
            f"{inputs.num_channels}-channel images need their own --normalize_mean and --normalize_std (the default "
            f"statistics are CIFAR-10's, for 3 channels)"
        )
    return processor


def image_pipeline(
    data: DataArguments,
    inputs: InputArguments,
    processor: ViewmakerImageProcessor | None,
    views: ViewArguments | None,
    seed: int,
) -> DataPipeline:
    if processor is None:
        processor = image_processor(inputs)
    else:
        if not isinstance(processor, ViewmakerImageProcessor):
            raise TypeError(f"--domain image needs a ViewmakerImageProcessor, got {type(processor).__name__}")
        # The data are [0, 1] pixels: the statistics are applied after the views.
        processor = ViewmakerImageProcessor.from_dict({**processor.to_dict(), "do_normalize": False})
    if data.packaged_dataset:
        files = PACKAGED_DATASETS[data.packaged_dataset]
        splits = load_image_splits(
            train_file=files["train"], validation_file=files["test"], cache_dir=data.cache_dir, streaming=data.streaming
        )
    else:
        splits = load_image_splits(**_source(data), streaming=data.streaming)

    def examples(dataset: HFDataset) -> ImageExamples:
        return ImageExamples(dataset, processor, data.image_column_name, data.label_column_name, data.skip_bad_examples)

    leading_train_examples = None
    if data.streaming:

        def decode(row: dict) -> dict[str, torch.Tensor]:
            image = read_image(
                row[data.image_column_name], "a streamed row", data.image_column_name, data.skip_bad_examples
            )
            return {"pixel_values": processor(image, return_tensors="pt")["pixel_values"][0]}

        columns = (data.image_column_name, data.label_column_name)
        train, validation, leading_train_examples = _streamed_splits(
            data, splits, columns, decode, examples, examples, seed
        )
    else:
        train = examples(_limit(splits["train"], data.max_train_samples))
        validation = examples(_limit(splits["validation"], data.max_eval_samples)) if "validation" in splits else None
    expert = expert_views_for(views, "image", image_size=processor.size["height"])

    def make_inputs(batch, generator, augment, pair=True):
        pixels = batch["pixel_values"]
        if augment and expert is not None:
            return _two_or_one(lambda: expert(pixels, generator=generator), pair)
        return pixels, None

    # The viewmaker sees [0, 1] pixels, the encoder normalised ones (docs/method.md §4.1).
    parts = {
        part: ViewmakerImageProcessor.from_dict({**processor.to_dict(), "do_normalize": normalizes})
        for part, normalizes in (("viewmaker", False), ("encoder", True))
    }
    return DataPipeline(
        train,
        validation,
        default_collate,
        default_collate,
        make_inputs,
        parts,
        leading_train_examples=leading_train_examples,
    )


def _extractor_from_inputs(inputs: InputArguments) -> LogMelFeatureExtractor:
    """The paper's log-mel recipe for `audio_normalization`'s dataset (docs/method.md §4.2-4.3), with any STFT,
    length or rate `inputs` set instead; `fit` leaves the statistics to be fitted on the training clips."""
    given = {
        "sampling_rate": inputs.sampling_rate,
        "n_fft": inputs.n_fft,
        "hop_length": inputs.hop_length,
        "max_length": inputs.audio_max_length,
    }
    fields = {key: value for key, value in given.items() if value is not None}
    if inputs.audio_normalization == "fit":
        return LogMelFeatureExtractor(size=inputs.image_size, **fields)
    return LogMelFeatureExtractor.for_dataset(inputs.audio_normalization, size=inputs.image_size, **fields)


def speech_pipeline(
    data: DataArguments,
    inputs: InputArguments,
    processor: LogMelFeatureExtractor | None,
    views: ViewArguments | None,
    seed: int,
) -> DataPipeline:
    if processor is None:
        extractor = _extractor_from_inputs(inputs)
    elif not isinstance(processor, LogMelFeatureExtractor):
        raise TypeError(f"--domain audio needs a LogMelFeatureExtractor, got {type(processor).__name__}")
    else:
        extractor = processor
    transfer = data.transfer_dataset
    audio_column, label_column = data.audio_column_name, data.label_column_name
    if transfer:
        # A transfer set of docs/method.md §4.3 from its official layout: "train" and "test" splits, columns audio and
        # label (a ClassLabel shared by both splits).
        options = {"caller_intent": data.caller_intent} if data.caller_intent else {}
        if transfer == "librispeech_speaker_id" and data.cache_dir and not data.data_dir:
            options["cache_dir"] = data.cache_dir
        splits = {
            split: load_speech_transfer_split(transfer, data.data_dir, source, **options)
            for split, source in (("train", "train"), ("validation", "test"))
        }
        audio_column, label_column = "audio", "label"
    else:
        splits = load_speech_splits(**_source(data), audio_column=audio_column, streaming=data.streaming)
    common = {
        "sampling_rate": extractor.sampling_rate,
        "audio_column": audio_column,
        "label_column": label_column,
        "skip_bad_examples": data.skip_bad_examples,
    }
    leading_train_examples = None
    if data.streaming:

        def decode(row: dict) -> dict[str, torch.Tensor]:
            waveform = read_clip(row[audio_column], extractor.sampling_rate, "a streamed row")
            return {"waveform": torch.from_numpy(waveform)}

        def bank_examples(rows: HFDataset) -> SpeechExamples:
            # The validation split's label ids, and new ones after them for speakers only the bank has, so that
            # the kNN monitor compares like with like.
            known = validation.label_map if validation is not None else {}
            return SpeechExamples(rows, label_map=extend_label_map(known, rows, label_column), **common)

        train, validation, leading_train_examples = _streamed_splits(
            data,
            splits,
            (audio_column, label_column),
            decode,
            lambda rows: SpeechExamples(rows, **common),
            bank_examples,
            seed,
        )
    else:
        train = SpeechExamples(_limit(splits["train"], data.max_train_samples), **common)
        validation = None
        if "validation" in splits:
            # One label map for both splits, so that the kNN monitor compares like with like.
            validation = SpeechExamples(
                _limit(splits["validation"], data.max_eval_samples), label_map=train.label_map, **common
            )
    if processor is None and inputs.audio_normalization == "fit":
        # Clips spread over the whole split: files are often sorted by speaker or class.
        step = max(1, len(train) // AUDIO_STATISTICS_CLIPS)
        extractor.fit_statistics(Subset(train, range(0, len(train), step)), max_clips=AUDIO_STATISTICS_CLIPS)
    expert = expert_views_for(views, "audio")

    def make_inputs(batch, generator, augment, pair=True):
        waveforms = batch["input_values"]
        if not augment or expert is None:
            return extractor.log_mel(waveforms), None
        if isinstance(expert, WaveformCropNoiseViews):
            return _two_or_one(lambda: extractor.log_mel(expert(waveforms, generator, batch["lengths"])), pair)
        # Masks act on the mel power spectrogram, noise after the log (docs/method.md §4.2).
        power = extractor.mel_power(waveforms)
        return _two_or_one(
            lambda: expert.add_noise(extractor.to_log_normalized(expert.mask(power, generator)), generator), pair
        )

    return DataPipeline(
        train,
        validation,
        SpeechCollator(extractor, training=True),
        SpeechCollator(extractor, training=False),
        make_inputs,
        {"viewmaker": extractor, "encoder": extractor},
        grid_origin="lower",
        leading_train_examples=leading_train_examples,
    )


def _sensor_splits(data: DataArguments, seed: int) -> tuple[Dataset, Dataset | None]:
    """Pamap2 windows from `--data_dir`, or whole series from `.ts` files (`--train_file`, `--validation_file`)."""
    if data.train_file:
        train = SeriesExamples(data.train_file, max_examples=data.max_train_samples)
        validation = None
        if data.validation_file:
            validation = SeriesExamples(data.validation_file, train.label_names, max_examples=data.max_eval_samples)
        return train, validation
    if data.data_dir is None:
        raise ValueError(
            "--domain sensor needs --data_dir (the folder holding PAMAP2_Dataset/, see download_pamap2) or "
            "--train_file (a .ts series file)"
        )
    train = Pamap2Windows(data.data_dir, split=data.train_split, seed=seed, examples_per_epoch=data.max_train_samples)
    validation = Pamap2Windows(
        data.data_dir,
        split=data.validation_split or "validation",
        seed=seed,
        examples_per_epoch=data.max_eval_samples,
    )
    return train, validation


def sensor_pipeline(
    data: DataArguments,
    inputs: InputArguments,
    processor: SensorSpectrogramProcessor | None,
    views: ViewArguments | None,
    seed: int,
    viewmaker_input: str = "spectrogram",
) -> DataPipeline:
    """Sensor windows turned into normalised log-spectrograms (docs/method.md §4.4), or with `viewmaker_input="raw"`
    into per-channel standardised windows [B, C, T], whose spectrogram the pretraining model computes after its
    viewmaker (its `normalize`, the processor's `front_end`; §4.6).

    Handcrafted views, in order: the `imu` views on the raw windows (a rotation needs the physical axes, so before
    the standardisation); then the spectral masking on the spectrograms, in `make_inputs` (before any viewmaker) or,
    with raw windows, as `encoder_views` after the model's front end (after the viewmaker)."""
    train, validation = _sensor_splits(data, seed)
    num_channels = train.num_channels
    raw = viewmaker_input == "raw"
    if processor is None:
        # The paper's STFT (docs/method.md §4.4) unless `inputs` set another, e.g. for series shorter than 1,000.
        stft = {k: v for k, v in (("n_fft", inputs.n_fft), ("hop_length", inputs.hop_length)) if v is not None}
        statistics_windows = Subset(train, range(min(SENSOR_STATISTICS_WINDOWS, len(train))))
        processor = SensorSpectrogramProcessor(num_channels=num_channels, standardize_windows=raw, **stft)
        processor.fit_statistics(statistics_windows)
    elif not isinstance(processor, SensorSpectrogramProcessor):
        raise TypeError(f"--domain sensor needs a SensorSpectrogramProcessor, got {type(processor).__name__}")
    elif processor.do_normalize and processor.channel_means is None:
        raise ValueError("the given SensorSpectrogramProcessor has no channel statistics (it is never refitted here)")
    elif processor.num_channels != num_channels:
        raise ValueError(f"the processor expects {processor.num_channels} channels, the data have {num_channels}")
    expert = expert_views_for(views, "sensor")
    time_views = expert if isinstance(expert, ImuViews) else None
    if time_views is not None and num_channels % 3:
        raise ValueError(
            f"--expert_views imu rotates triplets of channels (ax ay az, wx wy wz, ...), but the data have "
            f"{num_channels} channels (--num_channels), not a multiple of 3: use --expert_views spectral_masking"
        )
    masking = None
    if expert is not None:
        masking = SpectralMaskingViews(views.max_freq_mask, views.max_time_mask, views.spectral_noise_std)
    encode = processor.standardize if raw else processor.process

    def make_inputs(batch, generator, augment, pair=True):
        windows = batch["values"]
        if not augment or expert is None:
            return encode(windows), None

        clean = encode(windows) if time_views is None else None  # computed once for both views

        def view():
            x = clean if time_views is None else encode(time_views(windows, generator))
            return x if raw else masking(x, generator)

        return _two_or_one(view, pair)

    return DataPipeline(
        train,
        validation,
        default_collate,
        default_collate,
        make_inputs,
        {"viewmaker": processor, "encoder": processor},
        grid_origin="lower",
        encoder_views=masking if raw else None,
    )


def describe_data(data: DataArguments, pipeline: DataPipeline) -> dict[str, Any]:
    """What a pipeline actually read, for a run's logs and results: the dataset, its splits (and Pamap2's subjects),
    and the number of examples of each split."""
    train, validation = pipeline.train, pipeline.validation
    if data.domain == "sensor" and data.train_file:
        source = {"dataset": data.train_file, "train_split": "train"}
        source["split"] = str(validation.path) if validation is not None else None
    elif data.domain == "sensor":
        source = {"dataset": "pamap2", "data_dir": data.data_dir, "train_split": train.split}
        source |= {"split": validation.split, "eval_subjects": validation.subjects} if validation is not None else {}
        source["train_subjects"] = train.subjects
    elif data.transfer_dataset:
        source = {"dataset": data.transfer_dataset, "data_dir": data.data_dir, "train_split": "train", "split": "test"}
        source |= {"caller_intent": data.caller_intent} if data.caller_intent else {}
    elif data.packaged_dataset:
        source = {"dataset": data.packaged_dataset, "train_split": "train", "split": "test"}
    else:
        eval_split = getattr(getattr(validation, "dataset", None), "split", None)
        source = {
            "dataset": data.dataset_name or data.train_dir or data.train_file,
            "dataset_config_name": data.dataset_config_name,
            "train_split": data.train_split if data.dataset_name else "train",
            "split": str(eval_split) if eval_split is not None else None,
        }
        source |= {"data_dir": data.data_dir} if data.data_dir else {}
    counts = {
        "num_train_examples": None if pipeline.streaming else len(train),
        "num_validation_examples": len(validation) if validation else 0,
    }
    if pipeline.streaming:
        counts |= {"streaming": True, "shuffle_buffer_size": data.shuffle_buffer_size}
    return source | counts


def build_pipeline(
    data: DataArguments,
    inputs: InputArguments | None = None,
    processor: Any | None = None,
    views: ViewArguments | None = None,
    seed: int = 0,
    viewmaker_input: str = "spectrogram",
) -> DataPipeline:
    """The data pipeline of `data.domain` ("image", "audio" or "sensor").

    Args:
        data: where the data come from and which part of it is used.
        inputs: how to build the domain's processor when `processor` is not given (default: `InputArguments()`).
        processor: use this data processor instead, e.g. the one saved with a pretrained encoder
            (`encoder/preprocessor_config.json`), so evaluation feeds the encoder what it was trained on (see below).
        views: the handcrafted views `make_inputs(..., augment=True)` makes, when `views.view_mode` uses them.
        seed: seeds the random windows of Pamap2.
        viewmaker_input: sensors: `"raw"` makes standardised windows for a viewmaker of the raw signal, whose
            spectrogram the model computes (`sensor_pipeline`); `"spectrogram"` (the default) the spectrograms.

    What `processor` must be per domain:

    * image: a `ViewmakerImageProcessor`; its size and channels are used, and its statistics are what the
      `"encoder"` processor normalises with (the data stay [0, 1] pixels: normalise after any views);
    * audio: a `LogMelFeatureExtractor` (size, hop, sampling rate and dB statistics);
    * sensor: a `SensorSpectrogramProcessor` with its fitted per-channel statistics, used as is: never refitted.

    Speech data may also name a transfer set (`data.transfer_dataset`, read from `data.data_dir` with
    `load_speech_transfer_split`: its "train" split trains, its "test" split is the validation split, both with the
    `label` column).
    """
    if viewmaker_input not in VIEWMAKER_INPUTS:
        raise ValueError(f"--viewmaker_input must be one of {VIEWMAKER_INPUTS}, got {viewmaker_input!r}")
    if data.domain == "sensor":
        return sensor_pipeline(data, inputs or InputArguments(), processor, views, seed, viewmaker_input)
    if viewmaker_input != "spectrogram":
        raise ValueError(f"--viewmaker_input {viewmaker_input} needs --domain sensor, got --domain {data.domain}")
    builders = {"image": image_pipeline, "audio": speech_pipeline}
    return builders[data.domain](data, inputs or InputArguments(), processor, views, seed)


__all__ = [
    "PACKAGED_DATASETS",
    "DataPipeline",
    "build_pipeline",
    "describe_data",
    "expert_views_for",
    "fixed_items",
    "image_processor",
]
