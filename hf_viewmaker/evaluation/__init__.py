from .corruptions import CIFAR10C_CORRUPTIONS, evaluate_cifar10c, load_cifar10c
from .knn import knn_accuracy, knn_predict
from .linear_probe import build_linear_probe, extract_features, step_schedule
from .metrics import classification_metrics, load_metric
from .rankme import effective_rank

__all__ = [
    "CIFAR10C_CORRUPTIONS",
    "build_linear_probe",
    "classification_metrics",
    "effective_rank",
    "evaluate_cifar10c",
    "extract_features",
    "knn_accuracy",
    "knn_predict",
    "load_cifar10c",
    "load_metric",
    "step_schedule",
]
