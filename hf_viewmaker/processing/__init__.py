"""Pre-processing saved with the models: images, the paper's log-mel front end for speech, sensor spectrograms."""

from .feature_extraction_logmel import (
    DATASET_NORMALIZATION_STATS,
    HOP_LENGTH_FOR_SIZE,
    MAX_LENGTH,
    LogMelFeatureExtractor,
)
from .image_processing_viewmaker import CIFAR10_MEAN, CIFAR10_STD, ViewmakerImageProcessor
from .sensor_processing import SensorSpectrogramProcessor

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASET_NORMALIZATION_STATS",
    "HOP_LENGTH_FOR_SIZE",
    "MAX_LENGTH",
    "LogMelFeatureExtractor",
    "SensorSpectrogramProcessor",
    "ViewmakerImageProcessor",
]
