"""Model cards generated from what a run measured: its arguments, its training results and its evaluations.

Three kinds of folder get a card, each from its own template in `templates/` (the project's `model_cards/templates`):

* a pretraining run (`training/pretrain.py --output_dir`: `training_args.json`, `train_results.json`);
* a linear-evaluation output (`training/linear_eval.py --output_dir`: `eval_args.json`, `eval_results.json`, the
  probe at its root);
* a converted original checkpoint (`python -m hf_viewmaker.convert_original_checkpoint`: `conversion.json`).

Every number in a card comes from those files or is counted from the saved models (parameters, FLOPs per example).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..arguments import DataArguments, LinearEvalRun, PretrainingRun
from ..evaluation.corruptions import CIFAR10C_CORRUPTIONS
from .layout import model_folders

TEMPLATES = Path(__file__).with_name("templates")
CONVERSION_RECORD = "conversion.json"
# Hub ids of the datasets the package loads under another name.
PACKAGED_DATASET_IDS = {"fashion_mnist_sample": "zalando-datasets/fashion_mnist"}
DOMAIN_TAGS = {"image": "image", "audio": "audio", "sensor": "time-series"}
FEATURE_PIPELINE_TAGS = {
    "image": "image-feature-extraction",
    "audio": "feature-extraction",
    "sensor": "feature-extraction",
}
CLASSIFICATION_TASKS = {"image": "image-classification", "audio": "audio-classification", "sensor": None}
EVAL_TASKS = {"image": "image-classification", "audio": "audio-classification", "sensor": "time-series-classification"}
# Results worth a row in the card, with their names there.
EVAL_METRICS = {
    "top1_accuracy": "top-1 accuracy",
    "top5_accuracy": "top-5 accuracy",
    "macro_f1": "macro F1",
    "knn_accuracy": "accuracy",
}
TAGS = ["viewmaker", "self-supervised", "contrastive-learning", "hf-viewmaker"]
PAPER = (
    "*Viewmaker Networks: Learning Views for Unsupervised Representation Learning* (Tamkin, Wu, Goodman, ICLR 2021, "
    "[arXiv:2010.07432](https://arxiv.org/abs/2010.07432))"
)
CITATION = """@inproceedings{tamkin2021viewmaker,
  title     = {Viewmaker Networks: Learning Views for Unsupervised Representation Learning},
  author    = {Tamkin, Alex and Wu, Mike and Goodman, Noah},
  booktitle = {International Conference on Learning Representations},
  year      = {2021},
  eprint    = {2010.07432},
  archivePrefix = {arXiv}
}"""


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None


def card_kind(folder: str | Path) -> str:
    """ "pretraining_run", "linear_probe" or "converted_checkpoint": which card `folder` gets."""
    folder = Path(folder)
    if (folder / PretrainingRun.FILENAME).is_file() and (folder / "train_results.json").is_file():
        return "pretraining_run"
    if (folder / LinearEvalRun.FILENAME).is_file() and (folder / "eval_results.json").is_file():
        return "linear_probe"
    if (folder / CONVERSION_RECORD).is_file():
        return "converted_checkpoint"
    raise FileNotFoundError(
        f"{folder} is not a finished run: a pretraining run needs training_args.json and train_results.json, a "
        f"linear evaluation eval_args.json and eval_results.json, a converted checkpoint {CONVERSION_RECORD}"
    )


def _dataset_id(data: DataArguments) -> str | None:
    if data.packaged_dataset:
        return PACKAGED_DATASET_IDS[data.packaged_dataset]
    return data.dataset_name or data.transfer_dataset or data.train_file or data.train_dir or data.data_dir


def _is_hub_id(name: str | None) -> bool:
    """Whether `name` reads as a Hub repository id (`namespace/name`) rather than a local path."""
    return bool(name) and name.count("/") == 1 and not Path(name).exists()


def _hub_dataset_ids(*ids: str | None) -> list[str] | None:
    """The ids that name Hub datasets (`namespace/name`, not local paths), for the card's `datasets` field."""
    found = [i for i in dict.fromkeys(ids) if _is_hub_id(i)]
    return found or None


def _examples(count: int | None, split: str) -> str:
    return f"{count:,} examples of split {split}" if count is not None else f"split {split}"


def _training_data(run: PretrainingRun, train: dict[str, Any], dataset: str | None) -> str:
    """The dataset, the split and (where the run recorded it) how many examples it read; the packaged sample says
    it is one."""
    read = train.get("data") or {}
    split = read.get("train_split", run.data.train_split)
    sample = " (the sample shipped with hf-viewmaker)" if run.data.packaged_dataset else ""
    return f"{dataset}{sample}, {_examples(read.get('num_train_examples'), split)}"


def model_size(folder: Path, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(parameters, forward FLOPs for one example of `input_shape`) of the model saved in `folder`, counted on a
    model built from its `config.json` (the weights are not needed)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoConfig, AutoModel

    import hf_viewmaker

    config = AutoConfig.from_pretrained(folder)
    # The saved class (a probe is more than its encoder), else the model of the config.
    architecture = getattr(hf_viewmaker, (config.architectures or [""])[0], None)
    model = (architecture(config) if architecture else AutoModel.from_config(config)).eval()
    inputs = torch.full((1, *input_shape), 0.5)  # mid-range: a clamping viewmaker refuses values outside [0, 1]
    if model.main_input_name == "input_values":  # an audio spectrogram transformer reads [batch, time, frequency]
        inputs = inputs[:, 0].transpose(1, 2)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(inputs)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()


def _encoder_optimizer(optimization) -> str:
    schedule = f", {optimization.lr_scheduler_type} schedule" + (
        f" after {optimization.num_warmup_steps} warm-up steps" if optimization.num_warmup_steps else ""
    )
    if optimization.encoder_optimizer == "adamw":
        return f"AdamW lr {optimization.learning_rate}, weight decay {optimization.weight_decay}{schedule}"
    return (
        f"SGD lr {optimization.learning_rate}, momentum {optimization.momentum}, weight decay "
        f"{optimization.weight_decay}{schedule}"
    )


def _size_text(parameters: int, flops: int) -> str:
    return f"{parameters:,} parameters, {flops / 1e6:,.1f} MFLOPs per example"


def _preprocessing(processor: dict[str, Any] | None) -> str:
    """What the processor saved with a model does to raw inputs, in words, from its `preprocessor_config.json`."""
    if processor is None:
        return "no processor saved: inputs are given as tensors"
    kind = processor.get("image_processor_type") or processor.get("feature_extractor_type")
    if kind == "ViewmakerImageProcessor":
        size = processor.get("size", {})
        text = (
            f"`ViewmakerImageProcessor`: images converted to {'RGB' if processor.get('num_channels') == 3 else 'greyscale'}"
            f", resized to {size.get('height')} x {size.get('width')}, scaled to [0, 1]"
        )
        if processor.get("do_normalize"):
            return f"{text}, then normalised per channel with mean {processor['image_mean']} and std {processor['image_std']}"
        return f"{text}; not normalised (the viewmaker perturbs [0, 1] pixels; its views are normalised afterwards)"
    if kind == "LogMelFeatureExtractor":
        return (
            f"`LogMelFeatureExtractor`: mono waveforms at {processor['sampling_rate']} Hz, padded or cropped to "
            f"{processor['max_length']:,} samples, STFT (n_fft {processor['n_fft']}, hop {processor['hop_length']}), "
            f"{processor['size']} mel bins, dB with a {processor['top_db']} dB range, normalised with mean "
            f"{processor['normalize_mean']} and std {processor['normalize_std']}: `input_features` of shape "
            f"[batch, 1, {processor['size']}, frames]"
        )
    if kind == "SensorSpectrogramProcessor":
        return (
            f"`SensorSpectrogramProcessor`: windows of {processor['num_channels']} channels x time, per-channel "
            f"spectrogram (n_fft {processor['n_fft']}, hop {processor['hop_length']}, power {processor['power']}), "
            f"log with offset {processor['log_offset']}"
            + (", z-scored per channel with the training set's statistics" if processor.get("do_normalize") else "")
        )
    return f"`{kind}`"


def _versions(results: dict[str, Any]) -> str:
    """The libraries the run used, as the card lists them."""
    versions = results.get("framework_versions") or {}
    return "\n".join(f"- {name} {version}" for name, version in versions.items()) or "Not recorded."


def _eval_rows(
    evals: list[dict[str, Any]], default_dataset: str | None, dataset_name: str | None = None
) -> list[dict[str, Any]]:
    rows = []
    for result in evals:
        name = (
            f"kNN (k={result.get('knn_k')}, {result.get('knn_features')})"
            if "knn_accuracy" in result
            else f"linear probe ({result.get('features', '')} features)"
        )
        # One id per dataset in the card: a packaged sample under its Hub id.
        dataset = dataset_name or PACKAGED_DATASET_IDS.get(result.get("dataset"), result.get("dataset"))
        dataset = dataset or default_dataset
        for key, label in EVAL_METRICS.items():
            if result.get(key) is not None:
                rows.append(
                    {
                        "evaluation": name,
                        "dataset": dataset,
                        # A local evaluation folder records no split name.
                        "split": result.get("split") or "held-out",
                        "metric": label,
                        "metric_type": "f1" if key == "macro_f1" else "accuracy",
                        "value": result[key],
                    }
                )
        corrupted = result.get("cifar10c")
        if corrupted:
            # A generated folder (Fashion-MNIST-C) names itself in its manifest; earlier results hold no counts.
            manifest = corrupted.get("manifest") or {}
            counts = (
                len(corrupted.get("corruptions", CIFAR10C_CORRUPTIONS)),
                len(corrupted.get("severities", range(5))),
            )
            rows.append(
                {
                    "evaluation": name,
                    "dataset": manifest.get("name", "CIFAR-10-C"),
                    "split": f"{counts[0]} corruptions x {counts[1]} severities",
                    "metric": "mean accuracy",
                    "metric_type": "accuracy",
                    "value": result["cifar10c"]["mean_accuracy"],
                }
            )
    return rows


def _card_data(
    model_name: str,
    domain: str,
    rows: list[dict[str, Any]],
    pipeline_tag: str | None,
    license: str,
    datasets: list[str] | None,
    base_model: str | None = None,
    extra_tags: tuple[str, ...] = (),
) -> ModelCardData:
    return ModelCardData(
        model_name=model_name,
        library_name="transformers",
        license=license,
        tags=[*TAGS, DOMAIN_TAGS[domain], *extra_tags],
        datasets=datasets,
        base_model=base_model,
        metrics=sorted({row["metric_type"] for row in rows}) or None,
        pipeline_tag=pipeline_tag,
        eval_results=[
            EvalResult(
                task_type=EVAL_TASKS[domain],
                dataset_type=str(row["dataset"]),
                dataset_name=str(row["dataset"]),
                dataset_split=row["split"],
                metric_type=row["metric_type"],
                metric_name=f"{row['evaluation']}: {row['metric']}",
                metric_value=round(float(row["value"]), 4),
            )
            for row in rows
        ]
        or None,
    )


def _where(folder: Path, repo_id: str | None, part: str) -> str:
    """The arguments of `from_pretrained` that load `part` in the usage snippet: from the Hub repository in the
    published layout, else from the local folder."""
    if repo_id is None:
        return json.dumps(str(model_folders(folder)[part]))
    return json.dumps(repo_id) + (', subfolder="viewmaker"' if part == "viewmaker" else "")


def _render(kind: str, card_data: ModelCardData, **variables: Any) -> ModelCard:
    def table(rows):
        return [{**row, "value": f"{row['value']:.4f}"} for row in rows]

    variables["results"] = table(variables.get("results", []))
    return ModelCard.from_template(
        card_data, template_path=str(TEMPLATES / f"{kind}.md"), paper=PAPER, citation=CITATION, **variables
    )


def _input_shape(num_channels: int, size: int) -> tuple[int, int, int]:
    return (num_channels, size, size)


def _pretraining_card(
    folder: Path, repo_id: str | None, evals: list[dict[str, Any]], license: str, dataset_name: str | None
) -> ModelCard:
    run = PretrainingRun.from_dict(_read_json(folder / PretrainingRun.FILENAME))
    train = _read_json(folder / "train_results.json")
    domain, model, views, objective, optimization = (
        run.data.domain,
        run.model,
        run.views,
        run.objective,
        run.optimization,
    )
    parts = model_folders(folder)
    shape = _input_shape(run.inputs.num_channels, run.inputs.image_size)
    dataset = dataset_name or _dataset_id(run.data)
    if "encoder" not in parts:
        raise FileNotFoundError(f"{folder} has no encoder/: the card of a pretraining run describes its encoder")
    encoder_config = _read_json(parts["encoder"] / "config.json")
    encoder_class = (encoder_config.get("architectures") or ["ContrastiveResNetModel"])[0]
    # The head as saved (a run continued from another keeps that one's), not as the flags' defaults say.
    head = _read_json(parts["encoder"] / "projection_head.json")
    is_backbone = head is not None
    if is_backbone:
        embedding_dim, head_kind = head["embedding_dim"], head["kind"]
        encoder_name = f"{encoder_class} ({model.encoder_name_or_path or model.encoder_config_name})"
    else:
        embedding_dim, head_kind = encoder_config["embedding_dim"], encoder_config["projection_head"]
        encoder_name = (
            f"{model.encoder_preset} ResNet" if not model.uses_backbone else f"ResNet ({model.encoder_name_or_path})"
        )
    # How the snippet feeds spectrograms [batch, 1, frequency, time]: an AST reads [batch, time, frequency].
    if encoder_config.get("model_type") == "audio-spectrogram-transformer":
        encoder_call = 'encoder(inputs["input_features"][:, 0].transpose(1, 2))'
    else:
        encoder_call = 'encoder(inputs["input_features"])' if is_backbone else "encoder(**inputs)"
    rows = []
    monitor_split = run.data.validation_split or ("test" if run.data.packaged_dataset else "validation")
    if train.get("knn_accuracy") is not None:
        rows.append(
            {
                "evaluation": f"kNN monitor (k={run.training.knn_k})",
                "dataset": dataset,
                "split": monitor_split,
                "metric": "accuracy",
                "metric_type": "accuracy",
                "value": train["knn_accuracy"],
            }
        )
    if train.get("rankme") is not None:
        rows.append(
            {
                "evaluation": "RankMe monitor (label-free, pooled features)",
                "dataset": dataset,
                "split": monitor_split,
                "metric": f"effective rank (at most {train.get('rankme_max')})",
                "metric_type": "rankme",
                "value": train["rankme"],
            }
        )
    rows += _eval_rows(evals, dataset, dataset_name)
    settings = [
        ("training data", _training_data(run, train, dataset)),
        ("views", views.view_mode + (f" ({views.expert_views})" if views.uses_expert_views else "")),
        (
            "objective",
            objective.objective + (f" ({objective.simclr_variant})" if objective.objective == "simclr" else ""),
        ),
        ("temperature", objective.temperature),
        ("input", " x ".join(map(str, shape))),
        ("encoder", f"{encoder_name} (embedding {embedding_dim}, {head_kind} head)"),
        ("batch size per process", run.training.per_device_train_batch_size),
        ("optimizer steps", train["completed_steps"]),
        ("encoder optimizer", _encoder_optimizer(optimization)),
        ("adversarial update", optimization.adversarial_update),
        ("seed", run.training.seed),
        ("mixed precision", train.get("mixed_precision", "no")),
        ("hardware", train.get("hardware", "not recorded")),
        ("training time", f"{train['train_runtime_seconds'] / 60:.1f} min"),
    ]
    if views.uses_viewmaker:
        settings[5:5] = [
            ("distortion budget", f"{model.distortion_budget} ({model.budget_norm})"),
            ("viewmaker objective", objective.viewmaker_objective),
            (
                "viewmaker input",
                "raw sensor windows (1-D viewmaker)" if model.viewmaker_input == "raw" else "the encoder's input",
            ),
            ("viewmaker optimizer", f"Adam lr {optimization.viewmaker_learning_rate}"),
        ]
    processors = {part: _read_json(path / "preprocessor_config.json") for part, path in parts.items()}
    encoder_processor = processors.get("encoder") or {}
    # A viewmaker of raw sensor windows (--viewmaker_input raw) reads the windows the spectrogram is made from.
    window_length = (shape[2] - 1) * encoder_processor.get("hop_length", 1)
    shapes = {"viewmaker": (shape[0], window_length)} if model.viewmaker_input == "raw" else {}
    model_name = (repo_id or folder.resolve().name).split("/")[-1]
    start = model.encoder_name_or_path  # a Hub id it started from is the card's base model
    base_model = start if _is_hub_id(start) else None
    card_data = _card_data(
        model_name, domain, rows, FEATURE_PIPELINE_TAGS[domain], license, _hub_dataset_ids(dataset), base_model
    )
    return _render(
        "pretraining_run",
        card_data,
        model_name=model_name,
        domain=domain,
        objective_text="SimCLR" if objective.objective == "simclr" else "instance-discrimination (memory bank)",
        viewmaker_text=(
            f"makes views: adds a perturbation within a distortion budget of {model.distortion_budget} "
            f"({model.budget_norm} norm) to {run.inputs.num_channels}-channel inputs"
        ),
        encoder_class=encoder_class,
        encoder_text=(
            f"{encoder_name}; `pooler_output` is the representation"
            + (
                f" (the {embedding_dim}-d contrastive projection head is in `projection_head.safetensors`)"
                if is_backbone
                else f", `embeddings` the {embedding_dim}-d contrastive projection, `last_hidden_state` the "
                "pre-pool map"
            )
        ),
        encoder_call=encoder_call,
        has_viewmaker="viewmaker" in parts,
        encoder_where=_where(folder, repo_id, "encoder"),
        viewmaker_where=_where(folder, repo_id, "viewmaker") if "viewmaker" in parts else None,
        published=repo_id is not None,
        input_shape=", ".join(map(str, shape)),
        num_channels=run.inputs.num_channels,
        sampling_rate=encoder_processor.get("sampling_rate"),
        # Sensor windows as long as the spectrogram's frames need (one frame per hop, centred).
        window_length=window_length,
        sizes={part: _size_text(*model_size(path, shapes.get(part, shape))) for part, path in parts.items()},
        preprocessing={part: _preprocessing(processors[part]) for part in parts},
        settings=[(name, str(value)) for name, value in settings],
        results=rows,
        has_views=(folder / "views.png").is_file(),
        versions=_versions(train),
    )


def _probe_card(
    folder: Path,
    repo_id: str | None,
    base_model: str | None,
    evals: list[dict[str, Any]],
    license: str,
    dataset_name: str | None,
) -> ModelCard:
    run = LinearEvalRun.from_dict(_read_json(folder / LinearEvalRun.FILENAME))
    result = _read_json(folder / "eval_results.json")
    domain = result.get("domain", run.data.domain)
    source = run.model.model_name_or_path
    if base_model is None and _is_hub_id(source):
        base_model = source  # evaluated straight from the Hub
    dataset = dataset_name or PACKAGED_DATASET_IDS.get(result.get("dataset"), result.get("dataset"))
    dataset = dataset or _dataset_id(run.data)
    rows = _eval_rows([result, *evals], dataset, dataset_name)
    optimization, training = run.optimization, run.training
    shape = tuple(result["input_shape"])
    settings = [
        ("encoder", f"{base_model or source} (frozen)"),
        ("features", f"{result['features']} ({result['feature_dim']}-d)"),
        ("training data", f"{dataset}, {_examples(result.get('num_train_examples'), run.data.train_split)}"),
        (
            "evaluation data",
            f"{dataset}, {_examples(result.get('num_eval_examples'), result.get('split') or 'held-out')}",
        ),
        ("classes", result["num_labels"]),
        ("training views", result.get("train_views", run.model.train_views)),
        ("epochs", result.get("epochs", training.num_train_epochs)),
        ("batch size per process", training.per_device_train_batch_size),
        (
            "optimizer",
            f"SGD lr {optimization.learning_rate}, momentum {optimization.momentum}, weight decay "
            f"{optimization.weight_decay}, {optimization.lr_scheduler_type} schedule",
        ),
        ("seed", result.get("seed", training.seed)),
        ("hardware", result.get("hardware", "not recorded")),
        (
            "evaluation time",
            f"{result['runtime_seconds'] / 60:.1f} min" if "runtime_seconds" in result else "not recorded",
        ),
    ]
    model_name = (repo_id or folder.resolve().name).split("/")[-1]
    card_data = _card_data(
        model_name,
        domain,
        rows,
        CLASSIFICATION_TASKS[domain],
        license,
        _hub_dataset_ids(dataset),
        base_model=base_model,
        extra_tags=("linear-probe",),
    )
    return _render(
        "linear_probe",
        card_data,
        model_name=model_name,
        domain=domain,
        # A probe on a transformers backbone: the backbone's folder with the head beside it (`BackboneLinearProbe`).
        backbone_probe=(folder / "linear_head.json").is_file(),
        auto_class="AutoModelForAudioClassification" if domain == "audio" else "AutoModelForImageClassification",
        probe_class=(_read_json(folder / "config.json") or {}).get(
            "architectures", ["ContrastiveResNetForClassification"]
        )[0],
        base_model=base_model,
        task=CLASSIFICATION_TASKS[domain],
        where=_where(folder, repo_id, "encoder"),
        input_shape=", ".join(map(str, shape)),
        size=_size_text(*model_size(folder, shape)),
        preprocessing=_preprocessing(_read_json(folder / "preprocessor_config.json")),
        settings=[(name, str(value)) for name, value in settings],
        results=rows,
        versions=_versions(result),
    )


def _converted_card(folder: Path, repo_id: str | None, evals: list[dict[str, Any]], license: str) -> ModelCard:
    record = _read_json(folder / CONVERSION_RECORD)
    domain, parts = record["domain"], model_folders(folder)
    shape = tuple(record["input_shape"])
    rows = _eval_rows(evals, None)
    model_name = (repo_id or folder.resolve().name).split("/")[-1]
    card_data = _card_data(
        model_name, domain, rows, FEATURE_PIPELINE_TAGS[domain], license, None, extra_tags=("converted",)
    )
    return _render(
        "converted_checkpoint",
        card_data,
        model_name=model_name,
        domain=domain,
        record=record,
        has_viewmaker="viewmaker" in parts,
        encoder_where=_where(folder, repo_id, "encoder"),
        viewmaker_where=_where(folder, repo_id, "viewmaker") if "viewmaker" in parts else None,
        input_shape=", ".join(map(str, shape)),
        sizes={part: _size_text(*model_size(path, shape)) for part, path in parts.items()},
        preprocessing={
            part: _preprocessing(_read_json(path / "preprocessor_config.json")) for part, path in parts.items()
        },
        settings=sorted((str(k), str(v)) for k, v in record.get("settings", {}).items()),
        results=rows,
        versions=_versions(record),
    )


def build_model_card(
    output_dir: str | Path,
    repo_id: str | None = None,
    eval_results: list[str | Path] | None = None,
    license: str = "apache-2.0",
    base_model: str | None = None,
    dataset_name: str | None = None,
) -> ModelCard:
    """The model card of a pretraining run, a linear-evaluation output or a converted checkpoint (`card_kind`).

    Args:
        output_dir: the folder.
        repo_id: the Hub repository the card is for: its usage snippet loads from there, in the published layout
            (`hf_viewmaker.hub.layout`). `None`: the snippet loads the local folders.
        eval_results: `eval_results.json` files of evaluations of this model to report; default: for a run,
            `output_dir/eval_results.json` if it exists.
        license: the licence to declare for the weights.
        base_model: for a linear probe, the Hub id of the pretrained model it probes (default: the encoder it was
            evaluated on, when that was a Hub id).
        dataset_name: what to call the data wherever the card names it (default: the Hub id, or the local path
            the run read), e.g. a description of local files.

    Only measured numbers appear.
    """
    output_dir = Path(output_dir)
    kind = card_kind(output_dir)
    paths = [Path(p) for p in eval_results] if eval_results is not None else []
    if eval_results is None and kind == "pretraining_run":
        paths = [output_dir / "eval_results.json"]
    missing = [str(p) for p in paths if eval_results is not None and not p.is_file()]
    if missing:
        raise FileNotFoundError(f"evaluation results not found: {missing}")
    evals = [r for r in (_read_json(p) for p in paths) if r is not None]
    if kind == "pretraining_run":
        return _pretraining_card(output_dir, repo_id, evals, license, dataset_name)
    if kind == "linear_probe":
        return _probe_card(output_dir, repo_id, base_model, evals, license, dataset_name)
    return _converted_card(output_dir, repo_id, evals, license)


def write_model_card(output_dir: str | Path, **kwargs) -> Path:
    """Build the card (see `build_model_card`) and save it as `output_dir/README.md`."""
    path = Path(output_dir) / "README.md"
    build_model_card(output_dir, **kwargs).save(path)
    return path


__all__ = ["build_model_card", "card_kind", "model_size", "write_model_card"]
