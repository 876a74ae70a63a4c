#!/usr/bin/env python
"""Linear evaluation of a pretrained encoder (docs/method.md §5), with Accelerate, for images, speech and sensors.

    accelerate launch training/linear_eval.py --config training/configs/eval_quickstart.yaml \
        --model_name_or_path outputs/quickstart
    accelerate launch training/linear_eval.py --config training/configs/eval_cifar10.yaml \
        --model_name_or_path runs/c10 --cifar10c_dir data/CIFAR-10-C
    accelerate launch training/linear_eval.py --config training/configs/eval_cifar10.yaml \
        --model_name_or_path runs/c10 --knn_only true
    accelerate launch training/linear_eval.py --config training/configs/eval_librispeech_speaker_id.yaml \
        --model_name_or_path runs/librispeech100 --data_dir LibriSpeech
    accelerate launch training/linear_eval.py --config training/configs/eval_pamap2.yaml \
        --model_name_or_path runs/pamap2 --data_dir PAMAP2_Dataset

`--model_name_or_path` is a pretraining run folder (with `encoder/` and `viewmaker/`), or an encoder folder or Hub
repo. The data come through the same pipelines as pretraining (`hf_viewmaker.data.build_pipeline`), fed by the
processor saved with the encoder (`encoder/preprocessor_config.json`: the image processor's size and statistics, the
log-mel front end, or the sensor processor with its fitted per-channel statistics, never refitted), so the encoder
sees the inputs it was trained on. The encoder is frozen and in eval mode; a linear head is trained on its pre-pool or
pooled features, with training inputs passed through the frozen viewmaker (fresh noise every time), the expert views,
or nothing; evaluation uses clean inputs. At the end the output directory holds `eval_results.json` (top-1, top-5,
macro F1, and CIFAR-10-C with `--cifar10c_dir`), `eval_args.json`, and the probe itself (encoder + head) as a
`ContrastiveResNetForClassification` with the processor that makes its inputs, loadable with
`AutoModelForImageClassification`. A recipe (YAML) sets defaults for every flag below; flags on the command line
override it.
"""

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, set_seed
from datasets import ClassLabel
from torch.utils.data import DataLoader, Subset
from transformers import AutoConfig
from transformers.hf_argparser import string_to_bool
from transformers.utils import cached_file

from hf_viewmaker import ContrastiveResNetModel, ViewmakerConfig, ViewmakerImageProcessor, ViewmakerModel
from hf_viewmaker.data import (
    PACKAGED_DATASETS,
    SPEECH_TRANSFER_DATASETS,
    DataPipeline,
    ImageExamples,
    SpeechExamples,
    build_pipeline,
    fixed_items,
)
from hf_viewmaker.data.pipelines import EXPERT_VIEWS
from hf_viewmaker.evaluation.corruptions import CIFAR10C_IMAGES_PER_SEVERITY, evaluate_cifar10c
from hf_viewmaker.evaluation.knn import knn_accuracy
from hf_viewmaker.evaluation.linear_probe import (
    LR_SCHEDULES,
    FeatureDataset,
    build_linear_probe,
    constant_schedule,
    extract_features,
    gather_features,
    normalizer,
    predict,
    resolve_subfolder,
    step_schedule,
    train_epoch,
)
from hf_viewmaker.evaluation.metrics import classification_metrics
from hf_viewmaker.processing import DATASET_NORMALIZATION_STATS, LogMelFeatureExtractor, SensorSpectrogramProcessor
from hf_viewmaker.recipes import parse_args_with_recipe

logger = get_logger(__name__)

AUTO = "auto"
#: The processor class each domain's encoder is saved with (`preprocessor_config.json`).
PROCESSOR_CLASSES = {
    "image": ViewmakerImageProcessor,
    "audio": LogMelFeatureExtractor,
    "sensor": SensorSpectrogramProcessor,
}
# Pretraining's defaults for the spectral-masking views (training/pretrain.py).
MASKING_DEFAULTS = {"max_freq_mask": 40, "max_time_mask": 40, "spectral_noise_std": 0.0}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="YAML recipe whose keys are the flags below (without dashes)")

    model = parser.add_argument_group("model")
    model.add_argument("--model_name_or_path", help="a pretraining run folder (encoder/ + viewmaker/), or an encoder")
    model.add_argument(
        "--encoder_subfolder", default=AUTO, help="'auto': encoder/ when present, else the root; '' for the root"
    )
    model.add_argument("--viewmaker_name_or_path", help="default: --model_name_or_path")
    model.add_argument(
        "--viewmaker_subfolder",
        default=AUTO,
        help="'auto': viewmaker/ when present (or the root of an explicit --viewmaker_name_or_path)",
    )
    model.add_argument("--revision", help="Hub revision of the model repo")
    model.add_argument(
        "--features",
        default="prepool",
        choices=["prepool", "pooled"],
        help="the flattened pre-pool map (CIFAR-10, audio) or the pooled vector (Pamap2)",
    )
    model.add_argument("--num_labels", type=int, help="classes of the head (default: from the dataset)")
    model.add_argument(
        "--train_views",
        default="viewmaker",
        choices=["viewmaker", "expert", "none"],
        help="train-time views: the frozen viewmaker, the expert views, or clean inputs",
    )
    model.add_argument(
        "--expert_views",
        default=AUTO,
        choices=[AUTO, "simclr_image", "waveform_crop_noise", "spectral_masking"],
        help="--train_views expert: which views; 'auto': the pretraining run's (training_args.json), else simclr_image "
        "for images",
    )
    model.add_argument(
        "--max_freq_mask", type=int, help="spectral_masking: widest frequency band (default: the run's, else 40)"
    )
    model.add_argument(
        "--max_time_mask", type=int, help="spectral_masking: widest time band (default: the run's, else 40)"
    )
    model.add_argument(
        "--spectral_noise_std", type=float, help="spectral_masking: noise after masking (default: the run's, else 0)"
    )

    data = parser.add_argument_group("data")
    data.add_argument(
        "--domain",
        default="image",
        choices=["image", "audio", "sensor"],
        help="the data pipeline: image, audio (log-mel spectrograms) or sensor (Pamap2 spectrograms)",
    )
    data.add_argument("--packaged_dataset", choices=sorted(PACKAGED_DATASETS), help="data that ships with the package")
    data.add_argument(
        "--transfer_dataset",
        choices=sorted(SPEECH_TRANSFER_DATASETS),
        help="audio: a speech transfer set (docs/method.md §4.3) read from --data_dir: train on its train "
        "split, evaluate on its test split",
    )
    data.add_argument(
        "--caller_intent", choices=["action", "object", "location"], help="fluent_speech_commands: which label"
    )
    data.add_argument("--dataset_name", help="Hub dataset id (e.g. uoft-cs/cifar10) or packaged builder (imagefolder)")
    data.add_argument("--dataset_config_name")
    data.add_argument("--train_dir", help="imagefolder layout: one sub-folder per class")
    data.add_argument("--validation_dir")
    data.add_argument("--train_file", help="parquet, csv, json or arrow file; sensor: a .ts series file")
    data.add_argument("--validation_file")
    data.add_argument("--train_split", default="train")
    data.add_argument("--validation_split", help="default: 'validation' if present, else 'test'")
    data.add_argument(
        "--data_dir",
        help="a local folder in a dataset's official layout: the folder holding "
        "PAMAP2_Dataset/ (sensor), or a --transfer_dataset's folder ('' for LibriSpeech from the Hub)",
    )
    data.add_argument("--image_column_name", default="image")
    data.add_argument("--audio_column_name", default="audio")
    data.add_argument(
        "--audio_normalization",
        default=AUTO,
        choices=[AUTO, "encoder", *sorted(DATASET_NORMALIZATION_STATS)],
        help="log-mel statistics: 'auto' (the encoder's, or a --transfer_dataset's own, docs/method.md §4.3), "
        "'encoder', or a dataset's",
    )
    data.add_argument("--label_column_name", default="label")
    data.add_argument("--max_train_samples", type=int)
    data.add_argument("--max_eval_samples", type=int)
    data.add_argument("--cache_dir")
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument(
        "--skip_bad_examples",
        type=string_to_bool,
        default=False,
        help="speech: replace an unreadable clip by the next readable one, with a warning",
    )
    data.add_argument("--image_size", type=int, help="images: default the encoder processor's size")
    data.add_argument("--normalize_mean", type=float, nargs="+", help="default: the encoder processor's statistics")
    data.add_argument("--normalize_std", type=float, nargs="+")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--learning_rate", type=float, default=0.01)
    optim.add_argument("--momentum", type=float, default=0.9)
    optim.add_argument("--weight_decay", type=float, default=0.0)
    optim.add_argument(
        "--lr_scheduler_type",
        default="step",
        choices=LR_SCHEDULES,
        help="step: the MoCo schedule (x lr_gamma at each milestone); constant",
    )
    optim.add_argument("--lr_milestones", type=float, nargs="+", default=[0.6, 0.8], help="fractions of the epochs")
    optim.add_argument("--lr_gamma", type=float, default=0.1)
    optim.add_argument("--max_grad_norm", type=float, help="clip the head's gradient norm (the paper does not)")

    train = parser.add_argument_group("training")
    train.add_argument("--output_dir", default="outputs/linear_eval")
    train.add_argument("--seed", type=int, default=1337)
    train.add_argument("--per_device_train_batch_size", type=int, default=128)
    train.add_argument("--per_device_eval_batch_size", type=int, default=256)
    train.add_argument("--num_train_epochs", type=int, default=100)
    train.add_argument(
        "--eval_every_epochs", type=int, default=0, help="also evaluate every N epochs (0: only at the end)"
    )
    train.add_argument(
        "--cache_features",
        type=string_to_bool,
        default=False,
        help="extract features once, then train on them (only with --train_views none)",
    )
    train.add_argument(
        "--cpu", type=string_to_bool, default=False, help="run on the CPU even if an accelerator is present"
    )
    train.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], help="default: accelerate's config")
    train.add_argument("--report_to", default="tensorboard", help="tensorboard, wandb, all, or none")

    knn = parser.add_argument_group("kNN")
    knn.add_argument(
        "--knn_only", type=string_to_bool, default=False, help="only report the kNN accuracy; train no head"
    )
    knn.add_argument("--knn_k", type=int, default=200)
    knn.add_argument("--knn_temperature", type=float, default=0.07)
    knn.add_argument("--knn_features", default="embeddings", choices=["embeddings", "pooled", "prepool"])
    knn.add_argument("--knn_max_train_samples", type=int, help="training examples used as the kNN bank (default: all)")

    robustness = parser.add_argument_group("robustness")
    robustness.add_argument("--cifar10c_dir", help="a CIFAR-10-C folder (<corruption>.npy + labels.npy)")
    robustness.add_argument(
        "--cifar10c_images_per_severity",
        type=int,
        default=CIFAR10C_IMAGES_PER_SEVERITY,
        help="the layout of the files (10000 in the release)",
    )
    robustness.add_argument(
        "--cifar10c_max_images_per_severity", type=int, help="evaluate only the first N images of each severity"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parse_args_with_recipe(parser, argv)
    if not args.model_name_or_path:
        parser.error("--model_name_or_path is required (a run folder, or an encoder folder or Hub repo)")
    if args.cache_features and args.train_views != "none":
        parser.error(
            f"--cache_features needs --train_views none: with {args.train_views!r} views every epoch sees new inputs"
        )
    if (args.normalize_mean is None) != (args.normalize_std is None):
        parser.error("give --normalize_mean and --normalize_std together")
    if args.domain != "image":
        given = [f"--{k}" for k in ("image_size", "normalize_mean", "cifar10c_dir") if getattr(args, k) is not None]
        if given:
            parser.error(
                f"{', '.join(given)}: images only (--domain {args.domain} inputs come from the encoder's processor)"
            )
    if args.transfer_dataset and args.domain != "audio":
        parser.error("--transfer_dataset is a speech transfer set: it needs --domain audio")
    if args.transfer_dataset == "fluent_speech_commands" and not args.caller_intent:
        parser.error("--transfer_dataset fluent_speech_commands needs --caller_intent action, object or location")
    if args.data_dir == "":
        args.data_dir = None
    return args


def _hub_kwargs(args: argparse.Namespace) -> dict:
    return {k: v for k, v in {"revision": args.revision, "cache_dir": args.cache_dir}.items() if v is not None}


def _read_json(name_or_path: str, filename: str, subfolder: str = "", **hub) -> dict | None:
    """A JSON file of a local folder or Hub repo, or `None` when it has none."""
    try:
        found = cached_file(
            name_or_path,
            filename,
            subfolder=subfolder,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **hub,
        )
    except OSError:
        found = None
    return json.loads(Path(found).read_text()) if found is not None else None


def load_models(args: argparse.Namespace):
    """Where the encoder is (its `subfolder`), the frozen viewmaker (or `None`) and where it came from: resolved in a
    run folder, an encoder folder, or Hub repos."""
    hub = _hub_kwargs(args)
    encoder_subfolder = args.encoder_subfolder
    if encoder_subfolder == AUTO:
        encoder_subfolder = resolve_subfolder(args.model_name_or_path, "encoder", **hub)
        if encoder_subfolder is None:
            raise FileNotFoundError(
                f"no encoder at {args.model_name_or_path}: expected a config.json in it or in its encoder/ subfolder"
            )
    viewmaker, viewmaker_where = None, None
    if args.train_views == "viewmaker" and not args.knn_only:
        explicit = args.viewmaker_name_or_path is not None
        path = args.viewmaker_name_or_path or args.model_name_or_path
        subfolder = args.viewmaker_subfolder
        if subfolder == AUTO:
            subfolder = resolve_subfolder(path, "viewmaker", fallback_to_root=explicit, **hub)
        if subfolder is None:
            raise FileNotFoundError(
                f"--train_views viewmaker, but {path} has no viewmaker/ subfolder; give --viewmaker_name_or_path, or "
                "use --train_views expert (expert-view models) or none"
            )
        viewmaker = ViewmakerModel.from_pretrained(path, subfolder=subfolder, **hub)
        if not isinstance(viewmaker.config, ViewmakerConfig):
            raise ValueError(f"{path} (subfolder {subfolder!r}) is not a viewmaker")
        viewmaker.requires_grad_(False).eval()
        viewmaker_where = os.path.join(path, subfolder) if subfolder else path
    return encoder_subfolder, viewmaker, viewmaker_where


def load_encoder_processor(args: argparse.Namespace, encoder_subfolder: str):
    """The processor saved with the encoder (`preprocessor_config.json`), loaded with the class of `--domain`
    (`ViewmakerImageProcessor`, `LogMelFeatureExtractor` or `SensorSpectrogramProcessor`), or `None` when the
    encoder has none. A processor of another domain is an error: the encoder was trained on other inputs."""
    hub = _hub_kwargs(args)
    saved = _read_json(args.model_name_or_path, "preprocessor_config.json", encoder_subfolder, **hub)
    if saved is None:
        return None
    expected = PROCESSOR_CLASSES[args.domain]
    kind = saved.get("image_processor_type") or saved.get("feature_extractor_type")
    if kind != expected.__name__:
        domains = {cls.__name__: domain for domain, cls in PROCESSOR_CLASSES.items()}
        raise ValueError(
            f"--domain {args.domain} needs an encoder saved with a {expected.__name__}, but the encoder's "
            f"preprocessor_config.json holds a {kind}" + (f" (--domain {domains[kind]})" if kind in domains else "")
        )
    return expected.from_pretrained(args.model_name_or_path, subfolder=encoder_subfolder, **hub)


def image_processor_for(args, encoder_processor: ViewmakerImageProcessor | None, encoder_config):
    """The image processor the data go through: the encoder's (size, channels, and the statistics that normalise
    after the views), with `--image_size` / `--normalize_mean` / `--normalize_std` when given (docs/method.md §4.1)."""
    if args.normalize_mean is not None:
        mean, std = args.normalize_mean, args.normalize_std
    elif encoder_processor is not None:
        mean, std = list(encoder_processor.image_mean), list(encoder_processor.image_std)
    elif encoder_config.num_channels == 3:
        logger.warning("the encoder has no image processor: normalising with the CIFAR-10 statistics")
        mean, std = list(ViewmakerImageProcessor.image_mean), list(ViewmakerImageProcessor.image_std)
    else:
        raise ValueError("the encoder has no image processor: give --normalize_mean and --normalize_std")
    image_size = args.image_size
    if image_size is None:
        if encoder_processor is not None:
            image_size = encoder_processor.size["height"]
        else:
            size = encoder_config.image_size
            image_size = size if isinstance(size, int) else size[0]
    fields = encoder_processor.to_dict() if encoder_processor is not None else {}
    fields.update(
        num_channels=encoder_config.num_channels,
        size={"height": image_size, "width": image_size},
        image_mean=list(mean),
        image_std=list(std),
        do_normalize=False,
    )
    return ViewmakerImageProcessor.from_dict(fields)


def speech_processor_for(args, encoder_processor: LogMelFeatureExtractor | None, encoder_config):
    """The log-mel front end saved with the encoder, with a transfer set's own statistics and sampling rate under
    `--audio_normalization auto` (docs/method.md §4.3: every set shares the recipe, each has its statistics), or the
    ones `--audio_normalization` names."""
    statistics = args.audio_normalization
    if statistics == AUTO:
        statistics = SPEECH_TRANSFER_DATASETS[args.transfer_dataset][1] if args.transfer_dataset else "encoder"
    if encoder_processor is None:
        size = encoder_config.image_size if isinstance(encoder_config.image_size, int) else encoder_config.image_size[0]
        fallback = "librispeech" if statistics == "encoder" else statistics
        logger.warning(
            f"the encoder has no preprocessor_config.json: using the paper's log-mel recipe at size {size} with the "
            f"{fallback} statistics"
        )
        return LogMelFeatureExtractor.for_dataset(fallback, size=size)
    if statistics == "encoder":
        return encoder_processor
    stats = DATASET_NORMALIZATION_STATS[statistics]
    return LogMelFeatureExtractor.from_dict(
        {
            **encoder_processor.to_dict(),
            "normalize_mean": stats["mean"],
            "normalize_std": stats["std"],
            "sampling_rate": int(stats["sampling_rate"]),
        }
    )


def expert_view_settings(args, run_args: dict | None) -> dict:
    """The flags of `hf_viewmaker.data.expert_views_for`: `--expert_views` (or, with 'auto', the pretraining run's,
    else simclr_image for images) and the masking sizes (the flags, else the run's, else pretraining's defaults)."""
    if args.train_views != "expert":
        return {"view_mode": "viewmaker", "expert_views": "none", **MASKING_DEFAULTS}
    run_args = run_args or {}
    name = args.expert_views
    if name == AUTO:
        name = run_args.get("expert_views") if run_args.get("expert_views") not in (None, "none") else None
        if name is None and args.domain == "image":
            name = "simclr_image"
        if name is None:
            raise ValueError(
                f"--train_views expert on --domain {args.domain}: name the views with --expert_views "
                f"{' or '.join(EXPERT_VIEWS[args.domain])} (the run has no training_args.json that says)"
            )
    if name not in EXPERT_VIEWS[args.domain]:
        raise ValueError(
            f"--expert_views {name} does not apply to --domain {args.domain} ({EXPERT_VIEWS[args.domain]})"
        )
    masking = {
        key: getattr(args, key) if getattr(args, key) is not None else run_args.get(key, default)
        for key, default in MASKING_DEFAULTS.items()
    }
    return {"view_mode": "expert", "expert_views": name, **masking}


def describe_source(args, pipeline: DataPipeline) -> dict:
    """Where the training and evaluation data came from, for eval_results.json."""
    if args.domain == "sensor":
        train, validation = pipeline.train, pipeline.validation
        if args.train_file:
            return {"dataset": args.train_file, "train_split": "train", "split": str(validation.path)}
        return {
            "dataset": "pamap2",
            "data_dir": args.data_dir,
            "train_split": train.split,
            "split": validation.split,
            "train_subjects": train.subjects,
            "eval_subjects": validation.subjects,
        }
    if args.transfer_dataset:
        source = {"dataset": args.transfer_dataset, "data_dir": args.data_dir, "train_split": "train", "split": "test"}
        return source | ({"caller_intent": args.caller_intent} if args.caller_intent else {})
    if args.packaged_dataset:
        return {"dataset": args.packaged_dataset, "train_split": "train", "split": "test"}
    eval_split = getattr(pipeline.validation.dataset, "split", None)
    return {
        "dataset": args.dataset_name or args.train_dir or args.train_file,
        "dataset_config_name": args.dataset_config_name,
        "train_split": args.train_split if args.dataset_name else "train",
        "split": str(eval_split) if eval_split is not None else None,
    }


def label_names(args, train, validation) -> tuple[int, dict | None]:
    """The number of classes and their names when known: an image dataset's `ClassLabel` (else the largest label + 1),
    the speech training split's label map (which the evaluation split shares), the sensor activities."""
    if isinstance(train, ImageExamples):
        feature = train.dataset.features[args.label_column_name]
        if isinstance(feature, ClassLabel):
            names = dict(enumerate(feature.names))
            num_labels = len(names)
        else:
            labels = train.dataset[args.label_column_name] + validation.dataset[args.label_column_name]
            num_labels, names = int(max(labels)) + 1, None
    elif isinstance(train, SpeechExamples):
        names = {i: str(name) for i, name in enumerate(train.label_names)}
        num_labels = len(names)
    else:
        names = {i: str(name) for i, name in enumerate(train.label_names)}
        num_labels = len(names)
    if args.num_labels is not None:
        if args.num_labels < num_labels:
            raise ValueError(f"--num_labels {args.num_labels}, but the dataset has {num_labels} classes")
        if names is not None and args.num_labels > num_labels:
            names.update({i: f"LABEL_{i}" for i in range(num_labels, args.num_labels)})
        num_labels = args.num_labels
    return num_labels, names


def run_knn(args, accelerator, encoder, pipeline, clean_inputs, normalize, source, num_labels) -> dict:
    """kNN accuracy (cosine, temperature-weighted votes) of clean-input features: no training."""
    bank = pipeline.train
    if args.knn_max_train_samples is not None:
        bank = Subset(bank, range(min(args.knn_max_train_samples, len(bank))))
    loaders = accelerator.prepare(
        *(
            DataLoader(
                split,
                batch_size=args.per_device_eval_batch_size,
                num_workers=args.dataloader_num_workers,
                collate_fn=pipeline.eval_collate,
            )
            for split in (bank, pipeline.validation)
        )
    )

    def features(batch, index):
        return extract_features(encoder, normalize(clean_inputs(batch)), args.knn_features)

    bank_features, bank_labels = gather_features(accelerator, loaders[0], features, accelerator.device)
    query_features, query_labels = gather_features(accelerator, loaders[1], features, accelerator.device)
    accuracy = knn_accuracy(
        bank_features, bank_labels, query_features, query_labels, num_labels, args.knn_k, args.knn_temperature
    )
    logger.info(f"kNN accuracy {accuracy:.4f} ({len(bank_labels)} bank examples, {len(query_labels)} queries)")
    return {
        **source,
        "knn_accuracy": accuracy,
        "knn_k": args.knn_k,
        "knn_temperature": args.knn_temperature,
        "knn_features": args.knn_features,
        "num_train_examples": len(bank_labels),
        "num_eval_examples": len(query_labels),
        "num_processes": accelerator.num_processes,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report_to = None if args.report_to == "none" or args.knn_only else args.report_to
    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(
        cpu=args.cpu or (launched_processes > 1 and not torch.accelerator.is_available()),
        mixed_precision=args.mixed_precision,
        log_with=report_to,
        project_dir=args.output_dir,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    if accelerator.num_processes != launched_processes:
        raise RuntimeError(
            f"{launched_processes} processes were launched but Accelerate sees {accelerator.num_processes}"
        )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    set_seed(args.seed)
    started = time.perf_counter()
    output_dir = Path(args.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    # Models: the encoder (frozen, eval mode), its processor and, for viewmaker views, the frozen viewmaker.
    encoder_subfolder, viewmaker, viewmaker_where = load_models(args)
    encoder_where = args.model_name_or_path
    if encoder_subfolder:
        encoder_where = os.path.join(encoder_where, encoder_subfolder)
    hub = _hub_kwargs(args)
    encoder_config = AutoConfig.from_pretrained(args.model_name_or_path, subfolder=encoder_subfolder, **hub)
    encoder_processor = load_encoder_processor(args, encoder_subfolder)
    # The run's pretraining flags (beside encoder/), for the expert views it used.
    run_args = _read_json(args.model_name_or_path, "training_args.json", **hub) if encoder_subfolder else None

    # Data: the pretraining pipeline of the domain, fed by the encoder's processor.
    if args.domain == "image":
        processor = image_processor_for(args, encoder_processor, encoder_config)
        normalize = normalizer(processor.image_mean, processor.image_std)  # after the views (docs/method.md §4.1)
    elif args.domain == "audio":
        processor = speech_processor_for(args, encoder_processor, encoder_config)
        normalize = torch.nn.Identity()  # log-mels arrive normalised
    else:
        processor = encoder_processor
        if processor is None:
            logger.warning(
                "the encoder has no preprocessor_config.json: fitting the sensor statistics on training windows (the "
                "pretraining statistics are unknown, so the encoder may see other inputs than it was trained on)"
            )
        normalize = torch.nn.Identity()  # spectrograms arrive normalised
    view_settings = expert_view_settings(args, run_args)
    pipeline_args = argparse.Namespace(
        **{
            **vars(args),
            **view_settings,
            "num_channels": encoder_config.num_channels,
            "image_size": processor.size["height"] if args.domain == "image" else None,
        }
    )
    pipeline = build_pipeline(pipeline_args, processor=processor)
    if pipeline.validation is None:
        raise ValueError("linear evaluation needs an evaluation split (--validation_split, --validation_dir, ...)")
    train_examples, eval_examples = pipeline.train, pipeline.validation
    num_labels, id2label = label_names(args, train_examples, eval_examples)
    source = {
        **describe_source(args, pipeline),
        "model_name_or_path": args.model_name_or_path,
        "encoder": encoder_where,
    }

    def clean_inputs(batch):
        # The processor's front end runs in float32 whatever the mixed precision (squared mel powers overflow fp16).
        with torch.autocast(accelerator.device.type, enabled=False):
            return pipeline.make_inputs(batch, None, False)[0]

    if args.knn_only:
        encoder = ContrastiveResNetModel.from_pretrained(args.model_name_or_path, subfolder=encoder_subfolder, **hub)
        encoder.requires_grad_(False).eval().to(accelerator.device)
        results = run_knn(args, accelerator, encoder, pipeline, clean_inputs, normalize, source, num_labels)
        results["runtime_seconds"] = time.perf_counter() - started
        if accelerator.is_main_process:
            (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
            (output_dir / "eval_args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True))
        accelerator.end_training()
        return

    # The probe: the frozen encoder (eval mode, no gradients) with a fresh linear head, sized for the inputs the
    # pipeline makes (e.g. 1x64x64 log-mels, 52x32x32 sensor spectrograms).
    with torch.no_grad():
        input_shape = list(clean_inputs(pipeline.eval_batch(1, "cpu")).shape[1:])
    height, width = input_shape[1:]
    classifier = build_linear_probe(
        args.model_name_or_path,
        num_labels,
        args.features,
        subfolder=encoder_subfolder,
        image_size=height if height == width else [height, width],
        id2label=id2label,
        **hub,
    )
    classifier.to(accelerator.device)
    encoder = classifier.resnet
    if viewmaker is not None:
        viewmaker.to(accelerator.device)

    head = classifier.classifier
    optimizer = torch.optim.SGD(
        head.parameters(), lr=args.learning_rate, momentum=args.momentum, weight_decay=args.weight_decay
    )
    # Stepped once per epoch, outside Accelerate (which would step it once per process and batch).
    if args.lr_scheduler_type == "step":
        scheduler = step_schedule(optimizer, args.num_train_epochs, args.lr_milestones, args.lr_gamma)
    else:
        scheduler = constant_schedule(optimizer)
    # The evaluation split is never re-drawn: every evaluation sees the same inputs (for Pamap2, the windows of
    # epoch 0 of the validation subject).
    eval_loader = DataLoader(
        fixed_items(eval_examples),
        batch_size=args.per_device_eval_batch_size,
        num_workers=args.dataloader_num_workers,
        collate_fn=pipeline.eval_collate,
    )
    head, optimizer, eval_loader = accelerator.prepare(head, optimizer, eval_loader)

    def clean_features(batch, index):
        return extract_features(encoder, normalize(clean_inputs(batch)), args.features)

    generator = torch.Generator(device=accelerator.device)
    epoch_state = {"epoch": 0, "steps_per_epoch": 0}
    redraws = hasattr(train_examples, "set_epoch")  # Pamap2: new random windows every epoch
    if args.cache_features:
        # One pass over the clean training set; the head then trains on the cached features (same batches, order
        # and initialisation as without the cache).
        if redraws:
            logger.warning("--cache_features: the training windows of epoch 0 are used in every epoch")
        extraction_loader = accelerator.prepare(
            DataLoader(
                train_examples,
                batch_size=args.per_device_eval_batch_size,
                num_workers=args.dataloader_num_workers,
                collate_fn=pipeline.eval_collate,
            )
        )
        cached = FeatureDataset(*gather_features(accelerator, extraction_loader, clean_features))
        logger.info(f"cached {tuple(cached.features.shape)} training features")
        train_loader = DataLoader(cached, batch_size=args.per_device_train_batch_size, shuffle=True)
        redraws = False

        def train_features(batch, index):
            return batch["features"]
    else:
        # Clean inputs (--train_views none) are made as for evaluation; views start from the training collate (for
        # speech, the first-or-last crop of long clips, docs/method.md §4.2).
        train_loader = DataLoader(
            train_examples,
            batch_size=args.per_device_train_batch_size,
            shuffle=True,
            num_workers=args.dataloader_num_workers,
            collate_fn=pipeline.eval_collate if args.train_views == "none" else pipeline.train_collate,
        )

        def train_features(batch, index):
            if args.train_views == "none":
                return clean_features(batch, index)
            # Fresh noise for every batch of every epoch, reproducible from (seed, step, process).
            step = epoch_state["epoch"] * epoch_state["steps_per_epoch"] + index
            seed = (args.seed * 1_000_003 + step) * accelerator.num_processes + accelerator.process_index
            generator.manual_seed(seed)
            with torch.no_grad():
                if args.train_views == "expert":
                    with torch.autocast(accelerator.device.type, enabled=False):
                        inputs = pipeline.make_inputs(batch, generator, True, pair=False)[0]
                else:
                    inputs = viewmaker(clean_inputs(batch), generator=generator).views
            return extract_features(encoder, normalize(inputs), args.features)

    train_loader = accelerator.prepare(train_loader)
    epoch_state["steps_per_epoch"] = len(train_loader)
    if report_to:
        accelerator.init_trackers("linear_eval", {k: str(v) for k, v in vars(args).items()})
    logger.info(
        f"{len(train_examples)} training / {len(eval_examples)} evaluation examples, {num_labels} classes, "
        f"{args.features} features of {input_shape} inputs, {args.train_views} views, {args.num_train_epochs} epochs"
    )

    def evaluate_head() -> dict:
        logits, labels = predict(accelerator, head, eval_loader, clean_features)
        if len(labels) != len(eval_examples):
            raise RuntimeError(f"gathered {len(labels)} predictions for {len(eval_examples)} evaluation examples")
        metrics = classification_metrics(logits, labels)
        metrics["eval_loss"] = F.cross_entropy(logits, labels.long()).item()
        return metrics

    history, metrics = [], None
    for epoch in range(args.num_train_epochs):
        epoch_state["epoch"] = epoch
        train_loader.set_epoch(epoch)
        if redraws:
            train_examples.set_epoch(epoch)
        learning_rate = optimizer.param_groups[0]["lr"]
        loss = train_epoch(accelerator, head, optimizer, train_loader, train_features, args.max_grad_norm)
        scheduler.step()
        record = {"epoch": epoch + 1, "train_loss": loss, "learning_rate": learning_rate}
        last = epoch + 1 == args.num_train_epochs
        if last or (args.eval_every_epochs and (epoch + 1) % args.eval_every_epochs == 0):
            metrics = evaluate_head()
            record.update(metrics)
            logger.info(f"epoch {epoch + 1}: loss {loss:.4f}, top-1 {metrics['top1_accuracy']:.4f}")
        history.append(record)
        accelerator.log(
            {f"eval/{k}" if k in (metrics or {}) else f"train/{k}": v for k, v in record.items()}, step=epoch + 1
        )
    if metrics is None:  # no epochs: the untrained head
        metrics = evaluate_head()

    results = {
        **source,
        **metrics,
        "domain": args.domain,
        "num_train_examples": len(train_examples),
        "num_eval_examples": len(eval_examples),
        "num_labels": num_labels,
        "epochs": args.num_train_epochs,
        "features": args.features,
        "feature_dim": classifier.classifier.in_features,
        "input_shape": input_shape,
        "train_views": args.train_views,
        "viewmaker": viewmaker_where,
        "cache_features": args.cache_features,
        "seed": args.seed,
        "num_processes": accelerator.num_processes,
        "history": history,
    }
    if args.train_views == "expert":
        results["expert_views"] = view_settings["expert_views"]
        if view_settings["expert_views"] == "spectral_masking":
            results.update({key: view_settings[key] for key in MASKING_DEFAULTS})
    if args.domain == "audio":
        extractor = pipeline.processors["encoder"]
        results["audio_normalization"] = {"mean": extractor.normalize_mean, "std": extractor.normalize_std}
    if args.cifar10c_dir:
        with accelerator.autocast():
            results["cifar10c"] = evaluate_cifar10c(
                classifier,
                args.cifar10c_dir,
                processor.image_mean,
                processor.image_std,
                batch_size=args.per_device_eval_batch_size,
                images_per_severity=args.cifar10c_images_per_severity,
                max_images_per_severity=args.cifar10c_max_images_per_severity,
                accelerator=accelerator,
            )
        logger.info(f"CIFAR-10-C mean accuracy {results['cifar10c']['mean_accuracy']:.4f}")
    results["runtime_seconds"] = time.perf_counter() - started

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # The probe (encoder + trained head) with the processor that makes its inputs: for images one that
        # normalises (the image-classification pipeline, `AutoModelForImageClassification`), for speech and sensors
        # the encoder's log-mel / spectrogram processor.
        classifier.save_pretrained(output_dir)
        pipeline.processors["encoder"].save_pretrained(output_dir)
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
        (output_dir / "eval_args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    logger.info(f"top-1 {results['top1_accuracy']:.4f}, top-5 {results['top5_accuracy']:.4f}; saved to {output_dir}")


if __name__ == "__main__":
    main()
