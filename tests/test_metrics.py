"""The `evaluate` metric modules shipped with the package: loaded from the package's files, never the Hub."""

import evaluate
import numpy as np
import pytest
import torch

from hf_viewmaker.evaluation.metrics import (
    available_metrics,
    classification_metrics,
    load_metric,
    metric_module_path,
)


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    """Any attempt to fetch a module from the Hub fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to load a metric from the Hub: {args}")

    monkeypatch.setattr(evaluate.loading, "HubEvaluationModuleFactory", refuse)


def test_the_package_ships_accuracy_and_f1_as_local_module_files():
    assert available_metrics() == ["accuracy", "f1"]
    for name in available_metrics():
        path = metric_module_path(name)
        assert path.is_file() and path.suffix == ".py"
        # Self-contained: evaluate copies the script elsewhere before importing it.
        source = path.read_text()
        assert "sklearn" not in source.replace("sklearn.metrics.", "") and "from ." not in source
        module = evaluate.load(str(path))  # the documented evaluate API, by file path
        assert isinstance(module, evaluate.Metric)


def test_unknown_metric_names_the_shipped_ones():
    with pytest.raises(ValueError, match=r"'accuracy', 'f1'"):
        load_metric("bleu")


def test_accuracy_of_class_indices():
    accuracy = load_metric("accuracy")
    assert accuracy.compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0]) == {"accuracy": 0.75}
    assert accuracy.compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0], normalize=False) == {"accuracy": 3.0}
    weighted = accuracy.compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 0], sample_weight=[1, 1, 2, 0])
    assert weighted["accuracy"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="k=5"):
        accuracy.compute(predictions=[0, 1], references=[0, 1], k=5)


def test_top_k_accuracy_of_scores():
    accuracy = load_metric("accuracy")
    scores = [[0.1, 0.5, 0.4], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]]
    references = [2, 1, 0]
    assert accuracy.compute(predictions=scores, references=references)["accuracy"] == pytest.approx(0.0)
    assert accuracy.compute(predictions=scores, references=references, k=2)["accuracy"] == pytest.approx(2 / 3)
    assert accuracy.compute(predictions=scores, references=references, k=3)["accuracy"] == pytest.approx(1.0)
    # Ties go to the lower class index, as argmax does.
    assert accuracy.compute(predictions=[[1.0, 1.0, 0.0]] * 2, references=[0, 1])["accuracy"] == pytest.approx(0.5)


def test_top_k_and_f1_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(300, 7)).astype(np.float32)
    references = rng.integers(0, 7, size=300)
    predictions = rng.integers(0, 6, size=300)  # class 6 is never predicted
    accuracy, f1 = load_metric("accuracy"), load_metric("f1")
    for k in (1, 3, 5):
        expected = metrics.top_k_accuracy_score(references, scores, k=k, labels=range(7))
        assert accuracy.compute(predictions=scores, references=references, k=k)["accuracy"] == pytest.approx(expected)
    for average in ("macro", "micro", "weighted"):
        expected = metrics.f1_score(references, predictions, average=average, zero_division=0)
        result = f1.compute(predictions=predictions, references=references, average=average)
        assert result["f1"] == pytest.approx(expected)
    per_class = f1.compute(predictions=predictions, references=references, average=None)["f1"]
    np.testing.assert_allclose(per_class, metrics.f1_score(references, predictions, average=None, zero_division=0))
    binary = rng.integers(0, 2, size=50), rng.integers(0, 2, size=50)
    assert f1.compute(predictions=binary[0], references=binary[1])["f1"] == pytest.approx(
        metrics.f1_score(binary[1], binary[0])
    )


def test_macro_f1_known_value():
    # Class 0: precision 2/3, recall 1 -> F1 0.8; classes 1 and 2: no true positives -> 0. Mean 0.8 / 3.
    f1 = load_metric("f1")
    result = f1.compute(predictions=[0, 2, 1, 0, 0, 1], references=[0, 1, 2, 0, 1, 2], average="macro")
    assert result["f1"] == pytest.approx(0.8 / 3)
    with pytest.raises(ValueError, match="binary"):
        f1.compute(predictions=[0, 2, 1], references=[0, 1, 2])


def test_classification_metrics_summary():
    logits = torch.tensor(
        [
            [5.0, 4.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 5.0, 4.0, 0.0, 0.0, 0.0],
            [4.0, 0.0, 5.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 5.0, 4.0, 3.0],
        ]
    )
    labels = torch.tensor([0, 2, 0, 5])  # top-1: 1 of 4; top-2: 3 of 4; top-3 and more: 4 of 4
    results = classification_metrics(logits, labels, top_k=(1, 2, 5))
    assert results["top1_accuracy"] == pytest.approx(0.25)
    assert results["top2_accuracy"] == pytest.approx(0.75)
    assert results["top5_accuracy"] == pytest.approx(1.0)
    # Predictions 0, 1, 2, 3 against 0, 2, 0, 5: only class 0 scores (precision 1, recall 1/2 -> 2/3) among the
    # classes present {0, 1, 2, 3, 5}.
    assert results["macro_f1"] == pytest.approx((2 / 3) / 5)
    assert classification_metrics(logits, labels, num_labels=6)["macro_f1"] == pytest.approx((2 / 3) / 6)
    assert "macro_f1" not in classification_metrics(logits, labels, f1_average=None)
