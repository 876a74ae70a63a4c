"""Viewmaker Networks (Tamkin, Wu, Goodman, ICLR 2021) as transformers models.

Importing this package registers every model with the `Auto*` classes, and registers the viewmaker and encoder for
custom-code saving, so that a saved or pushed checkpoint also loads with `trust_remote_code=True` where this package
is not installed.
"""

__version__ = "0.1.0.dev0"

from transformers import (
    AutoBackbone,
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
)

from .adversarial import AdversarialOptimizer, AdversarialStep
from .arguments import (
    DataArguments,
    InputArguments,
    LinearEvalRun,
    ModelArguments,
    ObjectiveArguments,
    OptimizationArguments,
    PretrainingArguments,
    PretrainingRun,
    ViewArguments,
)
from .augmentation import ViewmakerAugmentation, ViewmakerCollator, ViewmakerDatasetTransform
from .models.encoder import (
    ContrastiveResNetBackbone,
    ContrastiveResNetConfig,
    ContrastiveResNetForClassification,
    ContrastiveResNetModel,
    ContrastiveResNetOutput,
    ContrastiveResNetPreTrainedModel,
)
from .models.pretraining import (
    ViewmakerForContrastivePretraining,
    ViewmakerPretrainingConfig,
    ViewmakerPretrainingOutput,
)
from .models.viewmaker import (
    ViewmakerConfig,
    ViewmakerModel,
    ViewmakerOutput,
    ViewmakerPreTrainedModel,
    convolution_saving_checkpoint_context,
)
from .objectives import DivmakerLoss, InstDiscLoss, SimCLRLoss
from .processing import LogMelFeatureExtractor, SensorSpectrogramProcessor, ViewmakerImageProcessor

for _config, _model in ((ViewmakerConfig, ViewmakerModel), (ContrastiveResNetConfig, ContrastiveResNetModel)):
    AutoConfig.register(_config.model_type, _config)
    AutoModel.register(_config, _model)
    _config.register_for_auto_class()
    _model.register_for_auto_class("AutoModel")
# A saved processor names its class in preprocessor_config.json (`image_processor_type` / `feature_extractor_type`),
# and transformers resolves that name among the classes registered for some config. The viewmaker's and the encoder's
# configs serve all three domains, so no processor is *the* processor of either: registered under the config, it
# would be handed to any folder of another domain (an image processor for a speech encoder). Each processor is
# registered under its own class as the key instead, which no config matches: found by its saved name, never guessed.
AutoImageProcessor.register(ViewmakerImageProcessor, image_processor_classes={"pil": ViewmakerImageProcessor})
ViewmakerImageProcessor.register_for_auto_class("AutoImageProcessor")
for _processor in (LogMelFeatureExtractor, SensorSpectrogramProcessor):
    AutoFeatureExtractor.register(_processor, _processor)
    _processor.register_for_auto_class("AutoFeatureExtractor")
AutoModelForImageClassification.register(ContrastiveResNetConfig, ContrastiveResNetForClassification)
# Speech probes classify log-mel spectrograms: `pipeline("audio-classification", model=probe_folder)`.
AutoModelForAudioClassification.register(ContrastiveResNetConfig, ContrastiveResNetForClassification)
AutoBackbone.register(ContrastiveResNetConfig, ContrastiveResNetBackbone)
ContrastiveResNetForClassification.register_for_auto_class("AutoModelForImageClassification")
ContrastiveResNetBackbone.register_for_auto_class("AutoBackbone")
AutoConfig.register(ViewmakerPretrainingConfig.model_type, ViewmakerPretrainingConfig)
AutoModelForPreTraining.register(ViewmakerPretrainingConfig, ViewmakerForContrastivePretraining)

__all__ = [
    "AdversarialOptimizer",
    "AdversarialStep",
    "ContrastiveResNetBackbone",
    "ContrastiveResNetConfig",
    "ContrastiveResNetForClassification",
    "ContrastiveResNetModel",
    "ContrastiveResNetOutput",
    "ContrastiveResNetPreTrainedModel",
    "DataArguments",
    "DivmakerLoss",
    "InputArguments",
    "InstDiscLoss",
    "LinearEvalRun",
    "LogMelFeatureExtractor",
    "ModelArguments",
    "ObjectiveArguments",
    "OptimizationArguments",
    "PretrainingArguments",
    "PretrainingRun",
    "SensorSpectrogramProcessor",
    "SimCLRLoss",
    "ViewArguments",
    "ViewmakerAugmentation",
    "ViewmakerCollator",
    "ViewmakerConfig",
    "ViewmakerDatasetTransform",
    "ViewmakerForContrastivePretraining",
    "ViewmakerImageProcessor",
    "ViewmakerModel",
    "ViewmakerOutput",
    "ViewmakerPreTrainedModel",
    "ViewmakerPretrainingConfig",
    "ViewmakerPretrainingOutput",
    "__version__",
    "convolution_saving_checkpoint_context",
]
