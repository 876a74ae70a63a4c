from .configuration_encoder import ContrastiveResNetConfig
from .modeling_encoder import (
    ContrastiveResNetBackbone,
    ContrastiveResNetForClassification,
    ContrastiveResNetModel,
    ContrastiveResNetOutput,
    ContrastiveResNetPreTrainedModel,
)

__all__ = [
    "ContrastiveResNetBackbone",
    "ContrastiveResNetConfig",
    "ContrastiveResNetForClassification",
    "ContrastiveResNetModel",
    "ContrastiveResNetOutput",
    "ContrastiveResNetPreTrainedModel",
]
