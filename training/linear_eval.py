#!/usr/bin/env python
"""Linear evaluation of a pretrained encoder (REFERENCE.md §5), with Accelerate.

    accelerate launch training/linear_eval.py --config training/configs/eval_quickstart.yaml \
        --model_name_or_path outputs/quickstart
    accelerate launch training/linear_eval.py --config training/configs/eval_cifar10.yaml \
        --model_name_or_path runs/c10 --cifar10c_dir data/CIFAR-10-C
    accelerate launch training/linear_eval.py --config training/configs/eval_cifar10.yaml \
        --model_name_or_path runs/c10 --knn_only true

`--model_name_or_path` is a pretraining run folder (with `encoder/` and `viewmaker/`), or an encoder folder or Hub
repo. The encoder is frozen and in eval mode; a linear head is trained on its pre-pool or pooled features, with
training inputs passed through the frozen viewmaker (fresh noise every time), the expert views, or nothing; evaluation
uses clean inputs. At the end the output directory holds `eval_results.json` (top-1, top-5, macro F1, and CIFAR-10-C
with `--cifar10c_dir`), `eval_args.json`, and the probe itself (encoder + head) as a
`ContrastiveResNetForClassification` with its image processor, loadable with `AutoModelForImageClassification`.
A recipe (YAML) sets defaults for every flag below; flags on the command line override it.
"""

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, set_seed
from datasets import ClassLabel
from torch.utils.data import DataLoader, Subset
from transformers import AutoConfig

from hf_viewmaker import ContrastiveResNetModel, ViewmakerConfig, ViewmakerImageProcessor, ViewmakerModel
from hf_viewmaker.data import FASHION_MNIST_SAMPLE_FILES, ImageExamples, load_image_splits
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
from hf_viewmaker.views import SimCLRImageViews

logger = get_logger(__name__)

PACKAGED_DATASETS = {"fashion_mnist_sample": FASHION_MNIST_SAMPLE_FILES}
AUTO = "auto"


def _bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


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
        "--viewmaker_subfolder", default=AUTO,
        help="'auto': viewmaker/ when present (or the root of an explicit --viewmaker_name_or_path)",
    )
    model.add_argument("--revision", help="Hub revision of the model repo")
    model.add_argument("--features", default="prepool", choices=["prepool", "pooled"],
                       help="the flattened pre-pool map (CIFAR-10, audio) or the pooled vector (Pamap2)")
    model.add_argument("--num_labels", type=int, help="classes of the head (default: from the dataset)")
    model.add_argument("--train_views", default="viewmaker", choices=["viewmaker", "expert", "none"],
                       help="train-time views: the frozen viewmaker, the expert (SimCLR) views, or clean inputs")

    data = parser.add_argument_group("data")
    data.add_argument("--domain", default="image", choices=["image", "audio", "sensor"])
    data.add_argument("--packaged_dataset", choices=sorted(PACKAGED_DATASETS), help="data that ships with the package")
    data.add_argument("--dataset_name", help="Hub dataset id (e.g. uoft-cs/cifar10) or packaged builder (imagefolder)")
    data.add_argument("--dataset_config_name")
    data.add_argument("--train_dir", help="imagefolder layout: one sub-folder per class")
    data.add_argument("--validation_dir")
    data.add_argument("--train_file", help="parquet, csv, json or arrow file")
    data.add_argument("--validation_file")
    data.add_argument("--train_split", default="train")
    data.add_argument("--validation_split", help="default: 'validation' if present, else 'test'")
    data.add_argument("--data_dir", help="a local folder in a dataset's official layout (e.g. PAMAP2_Dataset/)")
    data.add_argument("--image_column_name", default="image")
    data.add_argument("--label_column_name", default="label")
    data.add_argument("--max_train_samples", type=int)
    data.add_argument("--max_eval_samples", type=int)
    data.add_argument("--cache_dir")
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument("--image_size", type=int, help="default: the encoder processor's size")
    data.add_argument("--normalize_mean", type=float, nargs="+", help="default: the encoder processor's statistics")
    data.add_argument("--normalize_std", type=float, nargs="+")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--learning_rate", type=float, default=0.01)
    optim.add_argument("--momentum", type=float, default=0.9)
    optim.add_argument("--weight_decay", type=float, default=0.0)
    optim.add_argument("--lr_scheduler_type", default="step", choices=LR_SCHEDULES,
                       help="step: the MoCo schedule (x lr_gamma at each milestone); constant")
    optim.add_argument("--lr_milestones", type=float, nargs="+", default=[0.6, 0.8], help="fractions of the epochs")
    optim.add_argument("--lr_gamma", type=float, default=0.1)
    optim.add_argument("--max_grad_norm", type=float, help="clip the head's gradient norm (the paper does not)")

    train = parser.add_argument_group("training")
    train.add_argument("--output_dir", default="outputs/linear_eval")
    train.add_argument("--seed", type=int, default=1337)
    train.add_argument("--per_device_train_batch_size", type=int, default=128)
    train.add_argument("--per_device_eval_batch_size", type=int, default=256)
    train.add_argument("--num_train_epochs", type=int, default=100)
    train.add_argument("--eval_every_epochs", type=int, default=0,
                       help="also evaluate every N epochs (0: only at the end)")
    train.add_argument("--cache_features", type=_bool, default=False,
                       help="extract features once, then train on them (only with --train_views none)")
    train.add_argument("--cpu", type=_bool, default=False, help="run on the CPU even if an accelerator is present")
    train.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], help="default: accelerate's config")
    train.add_argument("--report_to", default="tensorboard", help="tensorboard, wandb, all, or none")

    knn = parser.add_argument_group("kNN")
    knn.add_argument("--knn_only", type=_bool, default=False, help="only report the kNN accuracy; train no head")
    knn.add_argument("--knn_k", type=int, default=200)
    knn.add_argument("--knn_temperature", type=float, default=0.07)
    knn.add_argument("--knn_features", default="embeddings", choices=["embeddings", "pooled", "prepool"])
    knn.add_argument("--knn_max_train_samples", type=int, help="training examples used as the kNN bank (default: all)")

    robustness = parser.add_argument_group("robustness")
    robustness.add_argument("--cifar10c_dir", help="a CIFAR-10-C folder (<corruption>.npy + labels.npy)")
    robustness.add_argument("--cifar10c_images_per_severity", type=int, default=CIFAR10C_IMAGES_PER_SEVERITY,
                            help="the layout of the files (10000 in the release)")
    robustness.add_argument("--cifar10c_max_images_per_severity", type=int,
                            help="evaluate only the first N images of each severity")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    known, _ = parser.parse_known_args(argv)
    if known.config:
        recipe = yaml.safe_load(Path(known.config).read_text()) or {}
        flags = {action.dest for action in parser._actions}
        unknown = sorted(set(recipe) - flags)
        if unknown:
            parser.error(f"unknown keys in {known.config}: {unknown}")
        parser.set_defaults(**recipe)
    args = parser.parse_args(argv)
    if not args.model_name_or_path:
        parser.error("--model_name_or_path is required (a run folder, or an encoder folder or Hub repo)")
    if args.cache_features and args.train_views != "none":
        parser.error(
            f"--cache_features needs --train_views none: with {args.train_views!r} views every epoch sees new inputs"
        )
    if (args.normalize_mean is None) != (args.normalize_std is None):
        parser.error("give --normalize_mean and --normalize_std together")
    return args


def load_models(args: argparse.Namespace):
    """Where the encoder is (its `subfolder`), the frozen viewmaker (or `None`) and where it came from, and the
    encoder's image processor (or `None`): resolved in a run folder, an encoder folder, or Hub repos."""
    hub = {"revision": args.revision, "cache_dir": args.cache_dir}
    hub = {k: v for k, v in hub.items() if v is not None}
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
    try:
        processor = ViewmakerImageProcessor.from_pretrained(args.model_name_or_path, subfolder=encoder_subfolder, **hub)
    except OSError:
        processor = None
    return encoder_subfolder, viewmaker, viewmaker_where, processor


def build_processor(args, encoder_processor: ViewmakerImageProcessor | None, num_channels: int, image_size: int):
    """The data processor ([0, 1] pixels, no normalisation) and the normalisation applied after the views: the flags
    when given, else the encoder processor's statistics (REFERENCE.md §4.1)."""
    if args.normalize_mean is not None:
        mean, std = args.normalize_mean, args.normalize_std
    elif encoder_processor is not None:
        mean, std = list(encoder_processor.image_mean), list(encoder_processor.image_std)
    elif num_channels == 3:
        logger.warning("the encoder has no image processor: normalising with the CIFAR-10 statistics")
        mean, std = list(ViewmakerImageProcessor.image_mean), list(ViewmakerImageProcessor.image_std)
    else:
        raise ValueError("the encoder has no image processor: give --normalize_mean and --normalize_std")
    processor = ViewmakerImageProcessor(
        num_channels=num_channels,
        size={"height": image_size, "width": image_size},
        do_normalize=False,
        image_mean=mean,
        image_std=std,
    )
    return processor, mean, std


def build_datasets(args: argparse.Namespace, processor: ViewmakerImageProcessor):
    """The training and evaluation splits as `ImageExamples`, and a description of where they came from."""
    if args.packaged_dataset:
        files = PACKAGED_DATASETS[args.packaged_dataset]
        splits = load_image_splits(train_file=files["train"], validation_file=files["test"], cache_dir=args.cache_dir)
        source = {"dataset": args.packaged_dataset, "train_split": "train", "split": "test"}
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
        eval_split = getattr(splits.get("validation"), "split", None)
        source = {
            "dataset": args.dataset_name or args.train_dir or args.train_file,
            "dataset_config_name": args.dataset_config_name,
            "train_split": args.train_split if args.dataset_name else "train",
            "split": str(eval_split) if eval_split is not None else None,
        }
    if "validation" not in splits:
        raise ValueError("linear evaluation needs an evaluation split (--validation_split, --validation_dir, ...)")
    limits = {"train": args.max_train_samples, "validation": args.max_eval_samples}
    examples = {}
    for split, dataset in splits.items():
        if limits[split] is not None:
            dataset = dataset.select(range(min(limits[split], len(dataset))))
        examples[split] = ImageExamples(dataset, processor, args.image_column_name, args.label_column_name)
    return examples["train"], examples["validation"], source


def label_names(args, train_examples: ImageExamples, eval_examples: ImageExamples) -> tuple[int, dict | None]:
    """The number of classes (a `ClassLabel`'s names, else the largest label + 1) and their names when known."""
    feature = train_examples.dataset.features[args.label_column_name]
    if isinstance(feature, ClassLabel):
        names = dict(enumerate(feature.names))
        num_labels = len(names)
    else:
        labels = train_examples.dataset[args.label_column_name] + eval_examples.dataset[args.label_column_name]
        num_labels, names = int(max(labels)) + 1, None
    if args.num_labels is not None:
        if args.num_labels < num_labels:
            raise ValueError(f"--num_labels {args.num_labels}, but the dataset has {num_labels} classes")
        if names is not None and args.num_labels > num_labels:
            names.update({i: f"LABEL_{i}" for i in range(num_labels, args.num_labels)})
        num_labels = args.num_labels
    return num_labels, names


def build_train_views(args, viewmaker: ViewmakerModel | None, num_channels: int, image_size: int):
    """`views(pixel_values, generator)` for training inputs in [0, 1]: the frozen viewmaker, the SimCLR expert views,
    or `None` (clean inputs)."""
    if args.train_views == "viewmaker":
        return lambda pixel_values, generator: viewmaker(pixel_values, generator=generator).views
    if args.train_views == "expert":
        if num_channels not in (1, 3):
            raise ValueError("--train_views expert: the SimCLR views need 1- or 3-channel images")
        return SimCLRImageViews(size=image_size)
    return None


def run_knn(args, accelerator, encoder, normalize, train_examples, eval_examples, source, num_labels) -> dict:
    """kNN accuracy (cosine, temperature-weighted votes) of clean-input features: no training."""
    bank = train_examples
    if args.knn_max_train_samples is not None:
        bank = Subset(train_examples, range(min(args.knn_max_train_samples, len(train_examples))))
    loaders = accelerator.prepare(
        DataLoader(bank, batch_size=args.per_device_eval_batch_size, num_workers=args.dataloader_num_workers),
        DataLoader(eval_examples, batch_size=args.per_device_eval_batch_size, num_workers=args.dataloader_num_workers),
    )

    def features(batch, index):
        return extract_features(encoder, normalize(batch["pixel_values"]), args.knn_features)

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
    if args.domain != "image":
        raise NotImplementedError(
            f"--domain {args.domain}: its data pipeline (LibriSpeech / Pamap2 loaders) is not built yet; only image "
            "data can be evaluated so far"
        )
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

    # Models: the encoder (frozen, eval mode) and, for viewmaker views, the frozen viewmaker.
    encoder_subfolder, viewmaker, viewmaker_where, encoder_processor = load_models(args)
    encoder_where = args.model_name_or_path
    if encoder_subfolder:
        encoder_where = os.path.join(encoder_where, encoder_subfolder)
    hub = {k: v for k, v in {"revision": args.revision, "cache_dir": args.cache_dir}.items() if v is not None}
    encoder_config = AutoConfig.from_pretrained(args.model_name_or_path, subfolder=encoder_subfolder, **hub)
    image_size = args.image_size
    if image_size is None:
        image_size = encoder_processor.size["height"] if encoder_processor is not None else encoder_config.image_size
    processor, image_mean, image_std = build_processor(args, encoder_processor, encoder_config.num_channels, image_size)
    normalize = normalizer(image_mean, image_std)

    train_examples, eval_examples, source = build_datasets(args, processor)
    num_labels, id2label = label_names(args, train_examples, eval_examples)
    source = {**source, "model_name_or_path": args.model_name_or_path, "encoder": encoder_where}

    if args.knn_only:
        encoder = ContrastiveResNetModel.from_pretrained(args.model_name_or_path, subfolder=encoder_subfolder, **hub)
        encoder.requires_grad_(False).eval().to(accelerator.device)
        results = run_knn(args, accelerator, encoder, normalize, train_examples, eval_examples, source, num_labels)
        results["runtime_seconds"] = time.perf_counter() - started
        if accelerator.is_main_process:
            (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
            (output_dir / "eval_args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True))
        accelerator.end_training()
        return

    # The probe: the frozen encoder (eval mode, no gradients) with a fresh linear head.
    classifier = build_linear_probe(
        args.model_name_or_path, num_labels, args.features, subfolder=encoder_subfolder, image_size=image_size,
        id2label=id2label, **hub,
    )
    classifier.to(accelerator.device)
    encoder = classifier.resnet
    if viewmaker is not None:
        viewmaker.to(accelerator.device)

    # Train-time views; evaluation always sees clean inputs. Normalisation comes after the views.
    views = build_train_views(args, viewmaker, encoder_config.num_channels, image_size)

    head = classifier.classifier
    optimizer = torch.optim.SGD(
        head.parameters(), lr=args.learning_rate, momentum=args.momentum, weight_decay=args.weight_decay
    )
    # Stepped once per epoch, outside Accelerate (which would step it once per process and batch).
    if args.lr_scheduler_type == "step":
        scheduler = step_schedule(optimizer, args.num_train_epochs, args.lr_milestones, args.lr_gamma)
    else:
        scheduler = constant_schedule(optimizer)
    eval_loader = DataLoader(
        eval_examples, batch_size=args.per_device_eval_batch_size, num_workers=args.dataloader_num_workers
    )
    head, optimizer, eval_loader = accelerator.prepare(head, optimizer, eval_loader)

    def clean_features(batch, index):
        return extract_features(encoder, normalize(batch["pixel_values"]), args.features)

    generator = torch.Generator(device=accelerator.device)
    epoch_state = {"epoch": 0, "steps_per_epoch": 0}
    if args.cache_features:
        # One pass over the clean training set; the head then trains on the cached features (same batches, order
        # and initialisation as without the cache).
        extraction_loader = accelerator.prepare(
            DataLoader(
                train_examples, batch_size=args.per_device_eval_batch_size, num_workers=args.dataloader_num_workers
            )
        )
        cached = FeatureDataset(*gather_features(accelerator, extraction_loader, clean_features))
        logger.info(f"cached {tuple(cached.features.shape)} training features")
        train_loader = DataLoader(cached, batch_size=args.per_device_train_batch_size, shuffle=True)

        def train_features(batch, index):
            return batch["features"]
    else:
        train_loader = DataLoader(
            train_examples, batch_size=args.per_device_train_batch_size, shuffle=True,
            num_workers=args.dataloader_num_workers,
        )

        def train_features(batch, index):
            pixel_values = batch["pixel_values"]
            if views is not None:
                # Fresh noise for every batch of every epoch, reproducible from (seed, step, process).
                step = epoch_state["epoch"] * epoch_state["steps_per_epoch"] + index
                seed = (args.seed * 1_000_003 + step) * accelerator.num_processes + accelerator.process_index
                generator.manual_seed(seed)
                with torch.no_grad():
                    pixel_values = views(pixel_values, generator=generator)
            return extract_features(encoder, normalize(pixel_values), args.features)

    train_loader = accelerator.prepare(train_loader)
    epoch_state["steps_per_epoch"] = len(train_loader)
    if report_to:
        accelerator.init_trackers("linear_eval", {k: str(v) for k, v in vars(args).items()})
    logger.info(
        f"{len(train_examples)} training / {len(eval_examples)} evaluation examples, {num_labels} classes, "
        f"{args.features} features, {args.train_views} views, {args.num_train_epochs} epochs"
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
        accelerator.log({f"eval/{k}" if k in (metrics or {}) else f"train/{k}": v for k, v in record.items()},
                        step=epoch + 1)
    if metrics is None:  # no epochs: the untrained head
        metrics = evaluate_head()

    results = {
        **source,
        **metrics,
        "num_train_examples": len(train_examples),
        "num_eval_examples": len(eval_examples),
        "num_labels": num_labels,
        "epochs": args.num_train_epochs,
        "features": args.features,
        "feature_dim": classifier.classifier.in_features,
        "train_views": args.train_views,
        "viewmaker": viewmaker_where,
        "cache_features": args.cache_features,
        "seed": args.seed,
        "num_processes": accelerator.num_processes,
        "history": history,
    }
    if args.cifar10c_dir:
        with accelerator.autocast():
            results["cifar10c"] = evaluate_cifar10c(
                classifier,
                args.cifar10c_dir,
                image_mean,
                image_std,
                batch_size=args.per_device_eval_batch_size,
                images_per_severity=args.cifar10c_images_per_severity,
                max_images_per_severity=args.cifar10c_max_images_per_severity,
                accelerator=accelerator,
            )
        logger.info(f"CIFAR-10-C mean accuracy {results['cifar10c']['mean_accuracy']:.4f}")
    results["runtime_seconds"] = time.perf_counter() - started

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # The probe (encoder + trained head) with a processor that normalises, ready for the image-classification
        # pipeline and `AutoModelForImageClassification`.
        classifier.save_pretrained(output_dir)
        ViewmakerImageProcessor.from_dict({**processor.to_dict(), "do_normalize": True}).save_pretrained(output_dir)
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
        (output_dir / "eval_args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    logger.info(f"top-1 {results['top1_accuracy']:.4f}, top-5 {results['top5_accuracy']:.4f}; saved to {output_dir}")


if __name__ == "__main__":
    main()
