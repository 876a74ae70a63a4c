"""Metrics that never touch the network: `evaluate` modules shipped inside the package, and the classification
summary (top-1, top-5, macro F1) that linear evaluation reports.

`evaluate.load("accuracy")` downloads its script from the Hub. The scripts in `metric_modules/` are local copies
(accuracy with top-k, F1 in numpy) that `load_metric` loads from the package's own files by absolute path, which
`evaluate` resolves without any network access.
"""

from pathlib import Path

import evaluate
import numpy as np
import torch

METRIC_MODULES_DIR = Path(__file__).resolve().parent / "metric_modules"


def available_metrics() -> list[str]:
    """Names of the shipped metric modules (`accuracy`, `f1`)."""
    return sorted(p.stem for p in METRIC_MODULES_DIR.glob("*.py") if not p.stem.startswith("_"))


def metric_module_path(name: str) -> Path:
    """The file of the shipped metric module `name`, for `evaluate.load(str(path))`."""
    path = METRIC_MODULES_DIR / f"{name}.py"
    if name.startswith("_") or not path.is_file():
        raise ValueError(f"no shipped metric named {name!r}; the package ships {available_metrics()}")
    return path


def load_metric(name: str, **kwargs) -> evaluate.EvaluationModule:
    """`evaluate.load` of a metric module shipped with the package: `"accuracy"` (with `k` for top-k) or `"f1"`.

    The module is loaded from its file inside the package, never from the Hub, so this works with `HF_HUB_OFFLINE=1`
    and without a network. `kwargs` go to `evaluate.load`. `keep_in_memory` defaults to `True` here: no cache files,
    so no file locks (`evaluate` waits a second for each lock another instance still holds); pass
    `keep_in_memory=False` with `num_process` / `process_id` for `evaluate`'s own multi-process mode.

    Example:

    ```python
    >>> from hf_viewmaker.evaluation import load_metric
    >>> load_metric("accuracy").compute(predictions=[[0.1, 0.9], [0.8, 0.2]], references=[1, 1], k=1)
    {'accuracy': 0.5}
    ```
    """
    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(metric_module_path(name)), **kwargs)


def classification_metrics(
    logits: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    top_k: tuple[int, ...] = (1, 5),
    f1_average: str | None = "macro",
    num_labels: int | None = None,
) -> dict[str, float]:
    """Top-k accuracies and an averaged F1 of class scores, with the shipped metric modules.

    Args:
        logits: `[N, C]` class scores.
        labels: `[N]` reference classes in `[0, C)`.
        top_k: one `top{k}_accuracy` entry per k; a k of at least C gives 1.0.
        f1_average: `"macro"` (the unweighted mean of the per-class F1 scores) adds `macro_f1`; `None` skips F1.
        num_labels: average F1 over all `range(num_labels)` classes (absent ones score 0); default: the classes that
            occur in the references or the predictions, as scikit-learn does.

    Returns:
        `{"top1_accuracy": ..., "top5_accuracy": ..., "macro_f1": ...}` as Python floats.
    """
    logits = logits.detach().float().cpu().numpy() if torch.is_tensor(logits) else np.asarray(logits, np.float32)
    labels = labels.detach().cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"logits must be [N, C] and labels [N], got {logits.shape} and {labels.shape}")
    results = {}
    # In memory (the default of load_metric): concurrent processes computing the same summary share no lock file.
    accuracy = load_metric("accuracy", keep_in_memory=True)
    for k in top_k:
        results[f"top{k}_accuracy"] = accuracy.compute(
            predictions=logits, references=labels, k=min(k, logits.shape[1])
        )["accuracy"]
    if f1_average is not None:
        labels_arg = list(range(num_labels)) if num_labels is not None else None
        f1 = load_metric("f1", keep_in_memory=True).compute(
            predictions=logits.argmax(axis=1), references=labels, average=f1_average, labels=labels_arg
        )["f1"]
        results[f"{f1_average}_f1"] = float(f1)
    return results


__all__ = ["METRIC_MODULES_DIR", "available_metrics", "classification_metrics", "load_metric", "metric_module_path"]
