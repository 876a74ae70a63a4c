from .configuration_encoder import ContrastiveResNetConfig
from .modeling_encoder import (
    ContrastiveResNetForClassification,
    ContrastiveResNetModel,
    ContrastiveResNetOutput,
    ContrastiveResNetPreTrainedModel,
)

__all__ = [
    "ContrastiveResNetConfig",
    "ContrastiveResNetForClassification",
    "ContrastiveResNetModel",
    "ContrastiveResNetOutput",
    "ContrastiveResNetPreTrainedModel",
]
