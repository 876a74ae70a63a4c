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
macro F1, and CIFAR-10-C, or a generated corruption folder such as Fashion-MNIST-C, with `--cifar10c_dir`),
`eval_args.json`, and the probe itself (encoder + head) as a
`ContrastiveResNetForClassification` with the processor that makes its inputs, loadable with
`AutoModelForImageClassification`. A recipe (YAML) sets defaults for every flag below; flags on the command line
override it.
"""

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from datasets import ClassLabel
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm
from transformers import AutoConfig

from hf_viewmaker import ContrastiveResNetForClassification, ViewmakerConfig, ViewmakerImageProcessor, ViewmakerModel
from hf_viewmaker.adversarial import (
    configure_logging,
    describe_hardware,
    framework_versions,
    make_accelerator,
    noise_seed,
    prepare_output_dir,
    start_trackers,
)
from hf_viewmaker.arguments import (
    LinearEvalRun,
    PretrainingRun,
    ViewArguments,
    parse_arguments,
)
from hf_viewmaker.arguments import (
    build_parser as build_group_parser,
)
from hf_viewmaker.data import (
    SPEECH_TRANSFER_DATASETS,
    ImageExamples,
    SpeechExamples,
    build_pipeline,
    describe_data,
    fixed_items,
)
from hf_viewmaker.data.pipelines import EXPERT_VIEWS
from hf_viewmaker.evaluation.corruptions import corruption_layout, evaluate_cifar10c, load_cifar10c
from hf_viewmaker.evaluation.knn import knn_accuracy
from hf_viewmaker.evaluation.linear_probe import (
    FeatureDataset,
    build_linear_probe,
    constant_schedule,
    extract_features,
    find_file,
    gather_features,
    load_encoder,
    predict,
    resolve_subfolder,
    step_schedule,
    train_epoch,
)
from hf_viewmaker.evaluation.metrics import classification_metrics
from hf_viewmaker.processing import DATASET_NORMALIZATION_STATS, LogMelFeatureExtractor, SensorSpectrogramProcessor

logger = get_logger(__name__)

#: The processor class each domain's encoder is saved with (`preprocessor_config.json`).
PROCESSOR_CLASSES = {
    "image": ViewmakerImageProcessor,
    "audio": LogMelFeatureExtractor,
    "sensor": SensorSpectrogramProcessor,
}


def build_parser():
    return build_group_parser(LinearEvalRun.group_types(), description=__doc__.split("\n\n")[0])


def parse_args(argv: list[str] | None = None) -> LinearEvalRun:
    parser = build_parser()
    run = LinearEvalRun(*parse_arguments(parser, argv))
    model, data, inputs = run.model, run.data, run.inputs
    if not model.model_name_or_path:
        parser.error("--model_name_or_path is required (a run folder, or an encoder folder or Hub repo)")
    if run.training.cache_features and model.train_views != "none":
        parser.error(
            f"--cache_features needs --train_views none: with {model.train_views!r} views every epoch sees new inputs"
        )
    if data.domain != "image":
        given = [
            f"--{k}"
            for k, v in (
                ("image_size", inputs.image_size),
                ("normalize_mean", inputs.normalize_mean),
                ("cifar10c_dir", run.robustness.cifar10c_dir),
            )
            if v is not None
        ]
        if given:
            parser.error(
                f"{', '.join(given)}: images only (--domain {data.domain} inputs come from the encoder's processor)"
            )
    if data.label_column_name is None:
        parser.error("--label_column_name none: linear evaluation needs labels")
    if data.streaming:
        parser.error(
            "--streaming is for pretraining: a linear probe trains for epochs over a labelled set it can index"
        )
    return run


def _hub_kwargs(run: LinearEvalRun) -> dict:
    given = {"revision": run.model.revision, "cache_dir": run.data.cache_dir}
    return {k: v for k, v in given.items() if v is not None}


def _read_json(name_or_path: str, filename: str, subfolder: str = "", **hub) -> dict | None:
    """A JSON file of a local folder or Hub repo, or `None` when it has none."""
    found = find_file(name_or_path, filename, subfolder, **hub)
    return json.loads(Path(found).read_text()) if found is not None else None


def load_models(run: LinearEvalRun):
    """Where the encoder is (its `subfolder`), the frozen viewmaker (or `None`) and where it came from: resolved in a
    run folder, an encoder folder, or Hub repos."""
    hub, model = _hub_kwargs(run), run.model
    encoder_subfolder = model.encoder_subfolder
    if encoder_subfolder is None:
        encoder_subfolder = resolve_subfolder(model.model_name_or_path, "encoder", **hub)
        if encoder_subfolder is None:
            raise FileNotFoundError(
                f"no encoder at {model.model_name_or_path}: expected a config.json in it or in its encoder/ subfolder"
            )
    viewmaker, viewmaker_where = None, None
    if model.train_views == "viewmaker" and not run.knn.knn_only:
        explicit = model.viewmaker_name_or_path is not None
        path = model.viewmaker_name_or_path or model.model_name_or_path
        subfolder = model.viewmaker_subfolder
        if subfolder is None:
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


def load_encoder_processor(run: LinearEvalRun, encoder_subfolder: str):
    """The processor saved with the encoder (`preprocessor_config.json`), loaded with the class of `--domain`
    (`ViewmakerImageProcessor`, `LogMelFeatureExtractor` or `SensorSpectrogramProcessor`), or `None` when the
    encoder has none. A processor of another domain is an error: the encoder was trained on other inputs."""
    hub, domain, where = _hub_kwargs(run), run.data.domain, run.model.model_name_or_path
    saved = _read_json(where, "preprocessor_config.json", encoder_subfolder, **hub)
    if saved is None:
        return None
    expected = PROCESSOR_CLASSES[domain]
    kind = saved.get("image_processor_type") or saved.get("feature_extractor_type")
    if kind != expected.__name__:
        domains = {cls.__name__: domain for domain, cls in PROCESSOR_CLASSES.items()}
        raise ValueError(
            f"--domain {domain} needs an encoder saved with a {expected.__name__}, but the encoder's "
            f"preprocessor_config.json holds a {kind}" + (f" (--domain {domains[kind]})" if kind in domains else "")
        )
    return expected.from_pretrained(where, subfolder=encoder_subfolder, **hub)


def image_processor_for(inputs, encoder_processor: ViewmakerImageProcessor | None, encoder_config):
    """The image processor the data go through: the encoder's (size, channels, and the statistics that normalise
    after the views), with `--image_size` / `--normalize_mean` / `--normalize_std` when given (docs/method.md §4.1)."""
    if inputs.normalize_mean is not None:
        mean, std = inputs.normalize_mean, inputs.normalize_std
    elif encoder_processor is not None:
        mean, std = list(encoder_processor.image_mean), list(encoder_processor.image_std)
    elif encoder_config.num_channels == 3:
        logger.warning("the encoder has no image processor: normalising with the CIFAR-10 statistics")
        mean, std = list(ViewmakerImageProcessor.image_mean), list(ViewmakerImageProcessor.image_std)
    else:
        raise ValueError("the encoder has no image processor: give --normalize_mean and --normalize_std")
    image_size = inputs.image_size
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


def check_corruption_folder(run: LinearEvalRun, processor: ViewmakerImageProcessor) -> None:
    """Before training: `--cifar10c_dir` holds every file its layout names, of the shape the probe's clean inputs
    have (the corrupted images are scaled and normalised as the clean ones, but never resized or converted)."""
    robustness = run.robustness
    layout = corruption_layout(robustness.cifar10c_dir, robustness.cifar10c_images_per_severity)
    inputs = (processor.size["height"], processor.size["width"], processor.num_channels)
    if layout.image_shape != inputs:
        raise ValueError(
            f"--cifar10c_dir {robustness.cifar10c_dir} holds {'x'.join(map(str, layout.image_shape))} images (H x W x "
            f"C), but the probe's inputs are {'x'.join(map(str, inputs))}: corrupt a test set of the encoder's size "
            "and channels (tools/make_corrupted_images.py)"
        )
    next(load_cifar10c(robustness.cifar10c_dir, images_per_severity=layout.images_per_severity))  # checks every file


def speech_processor_for(
    run: LinearEvalRun, encoder_processor: LogMelFeatureExtractor | None, encoder_config
) -> LogMelFeatureExtractor:
    """The log-mel front end saved with the encoder, with a transfer set's own statistics and sampling rate by
    default (docs/method.md §4.3: every set shares the recipe, each has its statistics), or the ones
    `--audio_normalization` names."""
    statistics, transfer = run.inputs.audio_normalization, run.data.transfer_dataset
    if statistics is None:
        statistics = SPEECH_TRANSFER_DATASETS[transfer][1] if transfer else "encoder"
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


def pretraining_views(run: LinearEvalRun) -> ViewArguments:
    """The views of the pretraining run the encoder comes from (its `training_args.json`, at the root of a run folder
    or of a published repository), or the defaults when the encoder is not from a run."""
    saved = _read_json(run.model.model_name_or_path, PretrainingRun.FILENAME, **_hub_kwargs(run))
    return PretrainingRun.from_dict(saved).views if saved is not None else ViewArguments()


def expert_view_settings(run: LinearEvalRun) -> ViewArguments | None:
    """The handcrafted training views of `--train_views expert` (else `None`): `--expert_views` (default: the
    pretraining run's, else simclr_image for images), the masking sizes (the flags, else the run's, else
    pretraining's defaults) and the imu settings (the run's, else pretraining's defaults)."""
    model, domain = run.model, run.data.domain
    if model.train_views != "expert":
        return None
    run_views = pretraining_views(run)
    name = model.expert_views
    if name is None:
        name = run_views.expert_views if run_views.expert_views != "none" else None
        if name is None and domain == "image":
            name = "simclr_image"
        if name is None:
            raise ValueError(
                f"--train_views expert on --domain {domain}: name the views with --expert_views "
                f"{' or '.join(EXPERT_VIEWS[domain])} (the run has no training_args.json that says)"
            )
    if name not in EXPERT_VIEWS[domain]:
        raise ValueError(f"--expert_views {name} does not apply to --domain {domain} ({EXPERT_VIEWS[domain]})")
    masking = {
        key: getattr(model, key) if getattr(model, key) is not None else getattr(run_views, key)
        for key in ("max_freq_mask", "max_time_mask", "spectral_noise_std")
    }
    imu = {key: getattr(run_views, key) for key in ("imu_max_rotation_degrees", "imu_scale_std", "imu_jitter_std")}
    return ViewArguments(view_mode="expert", expert_views=name, **masking, **imu)


def label_names(label_column: str, requested: int | None, train, validation) -> tuple[int, dict | None]:
    """The number of classes and their names when known: an image dataset's `ClassLabel` (else the largest label + 1),
    the speech training split's label map (which the evaluation split shares), the sensor activities."""
    if isinstance(train, ImageExamples):
        feature = train.dataset.features[label_column]
        if isinstance(feature, ClassLabel):
            names = dict(enumerate(feature.names))
            num_labels = len(names)
        else:
            labels = train.dataset[label_column] + validation.dataset[label_column]
            num_labels, names = int(max(labels)) + 1, None
    elif isinstance(train, SpeechExamples):
        names = {i: str(name) for i, name in enumerate(train.label_names)}
        num_labels = len(names)
    else:
        names = {i: str(name) for i, name in enumerate(train.label_names)}
        num_labels = len(names)
    if requested is not None:
        if requested < num_labels:
            raise ValueError(f"--num_labels {requested}, but the dataset has {num_labels} classes")
        if names is not None and requested > num_labels:
            names.update({i: f"LABEL_{i}" for i in range(num_labels, requested)})
        num_labels = requested
    return num_labels, names


def run_knn(run: LinearEvalRun, accelerator, encoder, pipeline, clean_inputs, normalize, source, num_labels) -> dict:
    """kNN accuracy (cosine, temperature-weighted votes) of clean-input features: no training."""
    knn = run.knn
    bank = pipeline.train
    if knn.knn_max_train_samples is not None:
        bank = Subset(bank, range(min(knn.knn_max_train_samples, len(bank))))
    loaders = accelerator.prepare(
        *(
            DataLoader(
                split,
                batch_size=run.training.per_device_eval_batch_size,
                num_workers=run.data.dataloader_num_workers,
                collate_fn=pipeline.eval_collate,
            )
            for split in (bank, pipeline.validation)
        )
    )

    def features(batch, index):
        return extract_features(encoder, normalize(clean_inputs(batch)), knn.knn_features)

    bank_features, bank_labels = gather_features(accelerator, loaders[0], features, accelerator.device, "kNN bank")
    query_features, query_labels = gather_features(accelerator, loaders[1], features, accelerator.device, "kNN queries")
    accuracy = knn_accuracy(
        bank_features, bank_labels, query_features, query_labels, num_labels, knn.knn_k, knn.knn_temperature
    )
    logger.info(f"kNN accuracy {accuracy:.4f} ({len(bank_labels)} bank examples, {len(query_labels)} queries)")
    return {
        **source,
        "knn_accuracy": accuracy,
        "knn_k": knn.knn_k,
        "knn_temperature": knn.knn_temperature,
        "knn_features": knn.knn_features,
        "num_train_examples": len(bank_labels),
        "num_eval_examples": len(query_labels),
        "num_processes": accelerator.num_processes,
    }


def main(argv: list[str] | None = None) -> None:
    run = parse_args(argv)
    probe, data, training, optimization = run.model, run.data, run.training, run.optimization
    report_to = None if run.knn.knn_only else training.trackers
    accelerator = make_accelerator(
        cpu=training.cpu,
        mixed_precision=training.mixed_precision,
        log_with=report_to,
        project_dir=training.output_dir,
        data_seed=training.seed,
    )
    configure_logging()
    set_seed(training.seed)
    started = time.perf_counter()
    output_dir = Path(training.output_dir)
    # Before any work: a folder it cannot write, or another evaluation's.
    prepare_output_dir(
        output_dir,
        resuming=False,
        overwrite=training.overwrite_output_dir,
        run_files=("eval_results.json",),
        checkpoints=False,
        delete=False,
    )
    accelerator.wait_for_everyone()

    # Models: the encoder (frozen, eval mode), its processor and, for viewmaker views, the frozen viewmaker.
    encoder_subfolder, viewmaker, viewmaker_where = load_models(run)
    encoder_where = probe.model_name_or_path
    if encoder_subfolder:
        encoder_where = os.path.join(encoder_where, encoder_subfolder)
    hub = _hub_kwargs(run)
    encoder_config = AutoConfig.from_pretrained(probe.model_name_or_path, subfolder=encoder_subfolder, **hub)
    encoder_processor = load_encoder_processor(run, encoder_subfolder)

    # Data: the pretraining pipeline of the domain, fed by the encoder's processor.
    if data.domain == "image":
        processor = image_processor_for(run.inputs, encoder_processor, encoder_config)
        normalize = processor.normalize_tensor  # after the views (docs/method.md §4.1)
    elif data.domain == "audio":
        processor = speech_processor_for(run, encoder_processor, encoder_config)
        normalize = torch.nn.Identity()  # log-mels arrive normalised
    else:
        processor = encoder_processor
        if processor is None:
            logger.warning(
                "the encoder has no preprocessor_config.json: fitting the sensor statistics on training windows (the "
                "pretraining statistics are unknown, so the encoder may see other inputs than it was trained on)"
            )
        normalize = torch.nn.Identity()  # spectrograms arrive normalised
    if run.robustness.cifar10c_dir:
        check_corruption_folder(run, processor)
    expert_views = expert_view_settings(run)
    # A viewmaker of raw sensor windows (--viewmaker_input raw) perturbs the standardised windows; the encoder
    # processor's front end then makes the spectrograms, as the pretraining model did.
    viewmaker_input = "raw" if viewmaker is not None and viewmaker.config.spatial_dims == 1 else "spectrogram"
    pipeline = build_pipeline(
        data, processor=processor, views=expert_views, seed=training.seed, viewmaker_input=viewmaker_input
    )
    if viewmaker_input == "raw":
        normalize = pipeline.processors["encoder"].front_end
    if pipeline.validation is None:
        raise ValueError("linear evaluation needs an evaluation split (--validation_split, --validation_dir, ...)")
    train_examples, eval_examples = pipeline.train, pipeline.validation
    num_labels, id2label = label_names(data.label_column_name, probe.num_labels, train_examples, eval_examples)
    source = {
        **describe_data(data, pipeline),
        "model_name_or_path": probe.model_name_or_path,
        "encoder": encoder_where,
    }

    def clean_inputs(batch):
        # The processor's front end runs in float32 whatever the mixed precision (squared mel powers overflow fp16).
        with torch.autocast(accelerator.device.type, enabled=False):
            return pipeline.make_inputs(batch, None, False)[0]

    if run.knn.knn_only:
        encoder = load_encoder(probe.model_name_or_path, subfolder=encoder_subfolder, **hub)
        encoder.requires_grad_(False).eval().to(accelerator.device)
        results = run_knn(run, accelerator, encoder, pipeline, clean_inputs, normalize, source, num_labels)
        results["runtime_seconds"] = time.perf_counter() - started
        if accelerator.is_main_process:
            (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
            run.save(output_dir)
        accelerator.end_training()
        return

    # The probe: the frozen encoder (eval mode, no gradients) with a fresh linear head, sized for the inputs the
    # pipeline makes (e.g. 1x64x64 log-mels, 52x32x32 sensor spectrograms).
    with torch.no_grad():
        input_shape = list(normalize(clean_inputs(pipeline.eval_batch(1, "cpu"))).shape[1:])
    height, width = input_shape[1:]
    classifier = build_linear_probe(
        probe.model_name_or_path,
        num_labels,
        probe.features,
        subfolder=encoder_subfolder,
        image_size=height if height == width else [height, width],
        id2label=id2label,
        **hub,
    )
    classifier.to(accelerator.device)
    encoder = classifier.resnet if isinstance(classifier, ContrastiveResNetForClassification) else classifier.encoder
    if viewmaker is not None:
        viewmaker.to(accelerator.device)

    head = classifier.classifier
    optimizer = torch.optim.SGD(
        head.parameters(),
        lr=optimization.learning_rate,
        momentum=optimization.momentum,
        weight_decay=optimization.weight_decay,
    )
    # Stepped once per epoch, outside Accelerate (which would step it once per process and batch).
    if optimization.lr_scheduler_type == "step":
        scheduler = step_schedule(
            optimizer, training.num_train_epochs, optimization.lr_milestones, optimization.lr_gamma
        )
    else:
        scheduler = constant_schedule(optimizer)
    # The evaluation split is never re-drawn: every evaluation sees the same inputs (for Pamap2, the windows of
    # epoch 0 of the validation subject).
    eval_loader = DataLoader(
        fixed_items(eval_examples),
        batch_size=training.per_device_eval_batch_size,
        num_workers=data.dataloader_num_workers,
        collate_fn=pipeline.eval_collate,
    )
    head, optimizer, eval_loader = accelerator.prepare(head, optimizer, eval_loader)

    def clean_features(batch, index):
        return extract_features(encoder, normalize(clean_inputs(batch)), probe.features)

    generator = torch.Generator(device=accelerator.device)
    epoch_state = {"epoch": 0, "steps_per_epoch": 0}
    redraws = hasattr(train_examples, "set_epoch")  # Pamap2: new random windows every epoch
    if training.cache_features:
        # One pass over the clean training set; the head then trains on the cached features (same batches, order
        # and initialisation as without the cache).
        if redraws:
            logger.warning("--cache_features: the training windows of epoch 0 are used in every epoch")
        extraction_loader = accelerator.prepare(
            DataLoader(
                train_examples,
                batch_size=training.per_device_eval_batch_size,
                num_workers=data.dataloader_num_workers,
                collate_fn=pipeline.eval_collate,
            )
        )
        cached = FeatureDataset(
            *gather_features(accelerator, extraction_loader, clean_features, description="caching features")
        )
        logger.info(f"cached {tuple(cached.features.shape)} training features")
        train_loader = DataLoader(cached, batch_size=training.per_device_train_batch_size, shuffle=True)
        redraws = False

        def train_features(batch, index):
            return batch["features"]
    else:
        # Clean inputs (--train_views none) are made as for evaluation; views start from the training collate (for
        # speech, the first-or-last crop of long clips, docs/method.md §4.2).
        train_loader = DataLoader(
            train_examples,
            batch_size=training.per_device_train_batch_size,
            shuffle=True,
            num_workers=data.dataloader_num_workers,
            collate_fn=pipeline.eval_collate if probe.train_views == "none" else pipeline.train_collate,
        )

        def train_features(batch, index):
            if probe.train_views == "none":
                return clean_features(batch, index)
            # Fresh noise for every batch of every epoch, reproducible from (seed, step, process).
            step = epoch_state["epoch"] * epoch_state["steps_per_epoch"] + index
            generator.manual_seed(noise_seed(training.seed, step, accelerator.num_processes, accelerator.process_index))
            with torch.no_grad():
                if probe.train_views == "expert":
                    with torch.autocast(accelerator.device.type, enabled=False):
                        inputs = pipeline.make_inputs(batch, generator, True, pair=False)[0]
                else:
                    inputs = viewmaker(clean_inputs(batch), generator=generator).views
            return extract_features(encoder, normalize(inputs), probe.features)

    train_loader = accelerator.prepare(train_loader)
    epoch_state["steps_per_epoch"] = len(train_loader)
    if report_to:
        start_trackers(
            accelerator,
            training.tracker_project_name,
            training.run_name or Path(training.output_dir).name,
            run.flat(),
        )
    logger.info(
        f"{len(train_examples)} training / {len(eval_examples)} evaluation examples, {num_labels} classes, "
        f"{probe.features} features of {input_shape} inputs, {probe.train_views} views, "
        f"{training.num_train_epochs} epochs"
    )

    def evaluate_head() -> dict:
        logits, labels = predict(accelerator, head, eval_loader, clean_features)
        if len(labels) != len(eval_examples):
            raise RuntimeError(f"gathered {len(labels)} predictions for {len(eval_examples)} evaluation examples")
        metrics = classification_metrics(logits, labels)
        metrics["eval_loss"] = F.cross_entropy(logits, labels.long()).item()
        return metrics

    history, metrics = [], None
    progress = tqdm(
        total=training.num_train_epochs * len(train_loader),
        desc="linear probe",
        unit="step",
        disable=not accelerator.is_local_main_process,
    )
    for epoch in range(training.num_train_epochs):
        epoch_state["epoch"] = epoch
        train_loader.set_epoch(epoch)
        if redraws:
            train_examples.set_epoch(epoch)
        learning_rate = optimizer.param_groups[0]["lr"]
        loss = train_epoch(
            accelerator,
            head,
            optimizer,
            train_loader,
            train_features,
            optimization.max_grad_norm,
            on_batch=lambda: progress.update(1),
        )
        scheduler.step()
        record = {"epoch": epoch + 1, "train_loss": loss, "learning_rate": learning_rate}
        last = epoch + 1 == training.num_train_epochs
        if last or (training.eval_every_epochs and (epoch + 1) % training.eval_every_epochs == 0):
            metrics = evaluate_head()
            record.update(metrics)
            logger.info(f"epoch {epoch + 1}: loss {loss:.4f}, top-1 {metrics['top1_accuracy']:.4f}")
        shown = {"epoch": f"{epoch + 1}/{training.num_train_epochs}", "loss": f"{loss:.4f}"}
        if metrics is not None:
            shown["top-1"] = f"{metrics['top1_accuracy']:.4f}"
        progress.set_postfix(shown)
        history.append(record)
        accelerator.log(
            {f"eval/{k}" if k in (metrics or {}) else f"train/{k}": v for k, v in record.items()}, step=epoch + 1
        )
    progress.close()
    if metrics is None:  # no epochs: the untrained head
        metrics = evaluate_head()

    results = {
        **source,
        **metrics,
        "domain": data.domain,
        "num_train_examples": len(train_examples),
        "num_eval_examples": len(eval_examples),
        "num_labels": num_labels,
        "epochs": training.num_train_epochs,
        "features": probe.features,
        "feature_dim": classifier.classifier.in_features,
        "input_shape": input_shape,
        "train_views": probe.train_views,
        "viewmaker": viewmaker_where,
        "cache_features": training.cache_features,
        "seed": training.seed,
        "num_processes": accelerator.num_processes,
        "hardware": describe_hardware(accelerator),
        "framework_versions": framework_versions(),
        "history": history,
    }
    if expert_views is not None:
        results["expert_views"] = expert_views.expert_views
        if expert_views.expert_views == "spectral_masking":
            results.update(
                {
                    "max_freq_mask": expert_views.max_freq_mask,
                    "max_time_mask": expert_views.max_time_mask,
                    "spectral_noise_std": expert_views.spectral_noise_std,
                }
            )
    if data.domain == "audio":
        extractor = pipeline.processors["encoder"]
        results["audio_normalization"] = {"mean": extractor.normalize_mean, "std": extractor.normalize_std}
    robustness = run.robustness
    if robustness.cifar10c_dir:
        with accelerator.autocast():
            results["cifar10c"] = evaluate_cifar10c(
                classifier,
                robustness.cifar10c_dir,
                processor.image_mean,
                processor.image_std,
                batch_size=training.per_device_eval_batch_size,
                images_per_severity=robustness.cifar10c_images_per_severity,
                max_images_per_severity=robustness.cifar10c_max_images_per_severity,
                accelerator=accelerator,
            )
        corrupted = results["cifar10c"]
        logger.info(
            f"{robustness.cifar10c_dir}: mean accuracy {corrupted['mean_accuracy']:.4f} over "
            f"{len(corrupted['corruptions'])} corruptions x {len(corrupted['severities'])} severities "
            f"({', '.join(corrupted['corruptions'])})"
        )
    results["runtime_seconds"] = time.perf_counter() - started

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # The probe (encoder + trained head) with the processor that makes its inputs: for images one that
        # normalises (the image-classification pipeline, `AutoModelForImageClassification`), for speech and sensors
        # the encoder's log-mel / spectrogram processor.
        classifier.save_pretrained(output_dir)
        pipeline.processors["encoder"].save_pretrained(output_dir)
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
        run.save(output_dir)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    logger.info(f"top-1 {results['top1_accuracy']:.4f}, top-5 {results['top5_accuracy']:.4f}; saved to {output_dir}")


if __name__ == "__main__":
    main()
