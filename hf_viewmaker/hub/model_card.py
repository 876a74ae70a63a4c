"""Model cards generated from what a run measured: its arguments, its training results and its evaluations."""

import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..arguments import DataArguments, PretrainingRun

TEMPLATE = Path(__file__).with_name("templates") / "pretraining_run.md"
# Hub ids of the datasets the package loads under another name.
PACKAGED_DATASET_IDS = {"fashion_mnist_sample": "zalando-datasets/fashion_mnist"}
DOMAIN_TAGS = {"image": "image", "audio": "audio", "sensor": "time-series"}
PIPELINE_TAGS = {"image": "image-feature-extraction", "audio": "feature-extraction", "sensor": "feature-extraction"}
# Results worth a row in the card, with their names there.
EVAL_METRICS = {
    "top1_accuracy": "top-1 accuracy",
    "top5_accuracy": "top-5 accuracy",
    "macro_f1": "macro F1",
    "knn_accuracy": "accuracy",
}


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None


def _dataset_id(data: DataArguments) -> str | None:
    if data.packaged_dataset:
        return PACKAGED_DATASET_IDS[data.packaged_dataset]
    return data.dataset_name or data.transfer_dataset or data.train_file or data.train_dir or data.data_dir


def _training_data(run: PretrainingRun, train: dict[str, Any]) -> str:
    """The dataset, the split and (where the run recorded it) how many examples it read; the packaged sample says
    it is one."""
    read = train.get("data") or {}
    split = read.get("train_split", run.data.train_split)
    count = (
        f"{read['num_train_examples']:,} examples of split {split}"
        if "num_train_examples" in read
        else f"split {split}"
    )
    sample = " (the sample shipped with hf-viewmaker)" if run.data.packaged_dataset else ""
    return f"{_dataset_id(run.data)}{sample}, {count}"


def _hyperparameters(run: PretrainingRun, train: dict[str, Any]) -> list[tuple[str, str]]:
    model, views, objective, optimization = run.model, run.views, run.objective, run.optimization
    rows = [
        ("training data", _training_data(run, train)),
        ("views", views.view_mode + (f" ({views.expert_views})" if views.uses_expert_views else "")),
        (
            "objective",
            objective.objective + (f" ({objective.simclr_variant})" if objective.objective == "simclr" else ""),
        ),
        ("temperature", objective.temperature),
        ("input", f"{run.inputs.num_channels} x {run.inputs.image_size} x {run.inputs.image_size}"),
        ("encoder", f"{model.encoder_preset} (embedding {model.embedding_dim}, {model.projection_head} head)"),
        ("batch size per process", run.training.per_device_train_batch_size),
        ("optimizer steps", train["completed_steps"]),
        (
            "encoder optimizer",
            f"SGD lr {optimization.learning_rate}, momentum {optimization.momentum}, "
            f"weight decay {optimization.weight_decay}",
        ),
        ("adversarial update", optimization.adversarial_update),
        ("seed", run.training.seed),
        ("mixed precision", train.get("mixed_precision", "no")),
        ("hardware", train.get("hardware", "not recorded")),
        ("training time", f"{train['train_runtime_seconds'] / 60:.1f} min"),
    ]
    if views.uses_viewmaker:
        rows[5:5] = [
            ("distortion budget", f"{model.distortion_budget} ({model.budget_norm})"),
            ("viewmaker optimizer", f"Adam lr {optimization.viewmaker_learning_rate}"),
        ]
    return [(name, str(value)) for name, value in rows]


def _results(run: PretrainingRun, train: dict[str, Any], evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    data = run.data
    if train.get("knn_accuracy") is not None:
        rows.append(
            {
                "evaluation": f"kNN monitor (k={run.training.knn_k})",
                "dataset": _dataset_id(data),
                "split": data.validation_split or ("test" if data.packaged_dataset else "validation"),
                "metric": "accuracy",
                "metric_type": "accuracy",
                "value": train["knn_accuracy"],
            }
        )
    for result in evals:
        name = (
            f"kNN (k={result.get('knn_k')}, {result.get('knn_features')})"
            if "knn_accuracy" in result
            else f"linear probe ({result.get('features', '')} features)"
        )
        for key, label in EVAL_METRICS.items():
            if result.get(key) is not None:
                rows.append(
                    {
                        "evaluation": name,
                        # One id per dataset in the card: a packaged sample under its Hub id.
                        "dataset": PACKAGED_DATASET_IDS.get(result.get("dataset"), result.get("dataset"))
                        or _dataset_id(data),
                        "split": result.get("split", "test"),
                        "metric": label,
                        "metric_type": "f1" if key == "macro_f1" else "accuracy",
                        "value": result[key],
                    }
                )
        if result.get("cifar10c"):
            rows.append(
                {
                    "evaluation": name,
                    "dataset": "CIFAR-10-C",
                    "split": "15 corruptions x 5 severities",
                    "metric": "mean accuracy",
                    "metric_type": "accuracy",
                    "value": result["cifar10c"]["mean_accuracy"],
                }
            )
    return rows


def build_model_card(
    output_dir: str | Path,
    repo_id: str = "path/to/this/run",
    eval_results: list[str | Path] | None = None,
    license: str = "apache-2.0",
) -> ModelCard:
    """The model card of a pretraining run folder.

    Args:
        output_dir: the run's `--output_dir` (with `training_args.json` and `train_results.json`).
        repo_id: the Hub id used in the loading example.
        eval_results: `eval_results.json` files of evaluations of this run; default: `output_dir/eval_results.json`
            if it exists.
        license: the licence to declare for the weights.

    Only measured numbers appear: the run's kNN monitor and the given evaluations.
    """
    output_dir = Path(output_dir)
    saved, train = _read_json(output_dir / PretrainingRun.FILENAME), _read_json(output_dir / "train_results.json")
    if saved is None or train is None:
        raise FileNotFoundError(
            f"{output_dir} is not a finished run: training_args.json and train_results.json are needed"
        )
    run = PretrainingRun.from_dict(saved)
    paths = [Path(p) for p in eval_results] if eval_results is not None else [output_dir / "eval_results.json"]
    missing = [str(p) for p in paths if eval_results is not None and not p.is_file()]
    if missing:
        raise FileNotFoundError(f"evaluation results not found: {missing}")
    evals = [r for r in (_read_json(p) for p in paths) if r is not None]

    domain = run.data.domain
    has_viewmaker = (output_dir / "viewmaker").is_dir()
    results = _results(run, train, evals)
    model_name = repo_id.split("/")[-1]
    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        license=license,
        tags=["viewmaker", "self-supervised", "contrastive-learning", DOMAIN_TAGS[domain], "hf-viewmaker"],
        datasets=[_dataset_id(run.data)] if "/" in str(_dataset_id(run.data)) else None,
        metrics=sorted({row["metric_type"] for row in results}) or None,
        pipeline_tag=PIPELINE_TAGS[domain],
        eval_results=[
            EvalResult(
                task_type="image-classification"
                if domain == "image"
                else "audio-classification"
                if domain == "audio"
                else "time-series-classification",
                dataset_type=str(row["dataset"]),
                dataset_name=str(row["dataset"]),
                dataset_split=row["split"],
                metric_type=row["metric_type"],
                metric_name=f"{row['evaluation']}: {row['metric']}",
                metric_value=round(float(row["value"]), 4),
            )
            for row in results
        ]
        or None,
    )
    inputs = run.inputs
    input_shape = f"{inputs.num_channels}, {inputs.image_size}, {inputs.image_size}"
    # The statistics the encoder's inputs are normalised with (images), for a usage snippet that needs no package.
    encoder_processor = _read_json(output_dir / "encoder" / "preprocessor_config.json") or {}
    normalization = (
        (list(encoder_processor["image_mean"]), list(encoder_processor["image_std"]))
        if domain == "image" and "image_mean" in encoder_processor
        else None
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        model_name=model_name,
        repo_id=repo_id,
        objective_text="SimCLR" if run.objective.objective == "simclr" else "instance-discrimination (memory bank)",
        viewmaker_text=(
            f"makes views: adds a perturbation within a distortion budget of {run.model.distortion_budget} "
            f"({run.model.budget_norm} norm) to {inputs.num_channels}-channel inputs"
            if has_viewmaker
            else "not part of this run (handcrafted views)"
        ),
        encoder_text=(
            f"{run.model.encoder_preset} ResNet; `pooler_output` is the representation, `embeddings` the "
            f"{run.model.embedding_dim}-d contrastive projection, `last_hidden_state` the pre-pool map"
        ),
        has_viewmaker=has_viewmaker,
        input_shape=input_shape,
        normalization=normalization,
        hyperparameters=_hyperparameters(run, train),
        results=[{**row, "value": f"{row['value']:.4f}"} for row in results],
        has_views=(output_dir / "views.png").is_file(),
    )


def write_model_card(output_dir: str | Path, **kwargs) -> Path:
    """Build the card (see `build_model_card`) and save it as `output_dir/README.md`."""
    path = Path(output_dir) / "README.md"
    build_model_card(output_dir, **kwargs).save(path)
    return path


__all__ = ["build_model_card", "write_model_card"]
