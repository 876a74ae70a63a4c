"""Top-k accuracy, shipped with hf_viewmaker so that evaluation works offline.

A local copy of the Hub's `accuracy` metric (same inputs, `normalize` and `sample_weight` arguments, same output key)
extended with `k`: `predictions` may be class indices (then `k` must be 1), or per-class scores such as logits, in
which case an example counts as correct when its reference is among its `k` highest scores. Only numpy is used.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy is the proportion of correct predictions: (TP + TN) / (TP + TN + FP + FN) for binary problems, the fraction of
examples whose predicted class equals the reference otherwise. Top-k accuracy counts an example as correct when its
reference is among the k classes with the highest scores.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`, or `list` of `list` of `float`): predicted class indices, or per-class scores
        (logits or probabilities) of shape `[N, num_classes]`.
    references (`list` of `int`): reference class indices.
    k (`int`, defaults to 1): count an example as correct when its reference is among its `k` highest scores. With
        class-index predictions only `k=1` is possible. Ties are broken towards the lower class index.
    normalize (`bool`, defaults to `True`): return the fraction of correct examples; `False` returns their number
        (or their total weight).
    sample_weight (`list` of `float`, *optional*): per-example weights.

Returns:
    accuracy (`float`): in [0, 1] when `normalize=True`.

Examples:
    >>> accuracy = evaluate.load("hf_viewmaker/evaluation/metric_modules/accuracy.py")
    >>> accuracy.compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0])
    {'accuracy': 0.75}
    >>> accuracy.compute(predictions=[[0.1, 0.5, 0.4], [0.8, 0.15, 0.05]], references=[2, 1], k=2)
    {'accuracy': 1.0}
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and Grisel, O. and
          Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
          Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


def top_k_correct(predictions: np.ndarray, references: np.ndarray, k: int) -> np.ndarray:
    """Boolean `[N]`: whether each reference is among the `k` highest scores of its row (stable, lower index first)."""
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    if predictions.ndim == 1:
        if k != 1:
            raise ValueError(f"k={k} needs per-class scores as predictions, got class indices")
        return predictions == references
    if predictions.ndim != 2:
        raise ValueError(f"predictions must be class indices [N] or scores [N, num_classes], got {predictions.shape}")
    num_classes = predictions.shape[1]
    if np.any((references < 0) | (references >= num_classes)):
        raise ValueError(f"references must lie in [0, {num_classes}) for scores of {num_classes} classes")
    # The rank of the reference's score: how many classes beat it (higher score, or equal score and lower index).
    scores = predictions[np.arange(len(references)), references][:, None]
    columns = np.arange(num_classes)[None, :]
    beaten_by = (predictions > scores) | ((predictions == scores) & (columns < references[:, None]))
    return beaten_by.sum(axis=1) < k


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float32")),
                        "references": datasets.Value("int64"),
                    }
                ),
            ],
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.top_k_accuracy_score.html"
            ],
        )

    def _compute(self, predictions, references, k=1, normalize=True, sample_weight=None):
        predictions = np.asarray(predictions)
        references = np.asarray(references, dtype=np.int64)
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        correct = top_k_correct(predictions, references, int(k)).astype(np.float64)
        weights = np.ones_like(correct) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        total = float((correct * weights).sum())
        if normalize:
            total = total / float(weights.sum()) if weights.sum() > 0 else 0.0
        return {"accuracy": total}
