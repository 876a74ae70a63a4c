"""F1 score (binary, micro, macro or weighted), shipped with hf_viewmaker so that evaluation works offline.

A numpy re-implementation of the Hub's `f1` metric (which calls scikit-learn): the same inputs, arguments and output
key, and scikit-learn's definitions, including `zero_division=0` for classes that are never predicted or never
present. Only numpy is used, so scikit-learn is not a dependency.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
The F1 score is the harmonic mean of precision and recall: F1 = 2 * (precision * recall) / (precision + recall).
For several classes it is computed per class (one against the rest) and averaged: `macro` takes the unweighted mean
over classes, `weighted` weights each class by its number of references, `micro` pools the counts of all classes
(which equals accuracy for single-label problems).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class indices.
    references (`list` of `int`): reference class indices.
    labels (`list` of `int`, *optional*): the classes to average over. Defaults to every class that occurs in the
        references or the predictions, sorted. Give `list(range(num_classes))` to count classes absent from both
        (their F1 is then 0).
    pos_label (`int`, defaults to 1): the positive class when `average="binary"`.
    average (`str` or `None`, defaults to `"binary"`): `"binary"`, `"micro"`, `"macro"`, `"weighted"`, or `None`
        (per-class scores, in the order of `labels`).
    sample_weight (`list` of `float`, *optional*): per-example weights.
    zero_division (`float`, defaults to 0.0): the precision, recall or F1 of a class whose denominator is zero.

Returns:
    f1 (`float`, or `numpy.ndarray` of per-class scores when `average=None`).

Examples:
    >>> f1 = evaluate.load("hf_viewmaker/evaluation/metric_modules/f1.py")
    >>> f1.compute(predictions=[0, 2, 1, 0, 0, 1], references=[0, 1, 2, 0, 1, 2], average="macro")
    {'f1': 0.26666666666666666}
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

AVERAGES = ("binary", "micro", "macro", "weighted", None)


def _divide(numerator: np.ndarray, denominator: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(np.shape(numerator), float(zero_division))
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def f1_score(
    predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None, zero_division=0.0
):
    """scikit-learn's `f1_score` for single-label class indices, in numpy."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    predictions = np.asarray(predictions, dtype=np.int64)
    references = np.asarray(references, dtype=np.int64)
    if predictions.shape != references.shape or predictions.ndim != 1:
        raise ValueError(f"predictions {predictions.shape} and references {references.shape} must be equal 1-d shapes")
    weights = np.ones(len(references)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    present = np.union1d(references, predictions)
    if average == "binary":
        if len(present) > 2:
            raise ValueError(
                f"average='binary' needs at most 2 classes, found {len(present)}; choose average='macro', 'micro' or "
                "'weighted'"
            )
        labels = [pos_label]
    elif labels is None:
        labels = present
    labels = np.asarray(labels, dtype=np.int64)
    hit = predictions == references
    true_positives = np.array([weights[hit & (references == c)].sum() for c in labels])
    predicted = np.array([weights[predictions == c].sum() for c in labels])
    actual = np.array([weights[references == c].sum() for c in labels])
    if average == "micro":
        true_positives, predicted, actual = true_positives.sum(), predicted.sum(), actual.sum()
    # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (predicted + actual); scikit-learn's zero_division applies to this ratio.
    scores = _divide(2 * true_positives, predicted + actual, zero_division)
    if average is None:
        return scores
    if average == "weighted":
        return float(np.average(scores, weights=actual)) if actual.sum() > 0 else float(zero_division)
    return float(np.mean(scores)) if np.size(scores) else float(zero_division)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(
        self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None, zero_division=0.0
    ):
        score = f1_score(predictions, references, labels, pos_label, average, sample_weight, zero_division)
        return {"f1": score}
