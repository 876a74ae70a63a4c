from .configuration_viewmaker import ViewmakerConfig
from .modeling_viewmaker import (
    ViewmakerModel,
    ViewmakerOutput,
    ViewmakerPreTrainedModel,
    convolution_saving_checkpoint_context,
)

__all__ = [
    "ViewmakerConfig",
    "ViewmakerModel",
    "ViewmakerOutput",
    "ViewmakerPreTrainedModel",
    "convolution_saving_checkpoint_context",
]
