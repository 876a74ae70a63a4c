from .configuration_viewmaker import ViewmakerConfig
from .modeling_viewmaker import ViewmakerModel, ViewmakerOutput, ViewmakerPreTrainedModel

__all__ = ["ViewmakerConfig", "ViewmakerModel", "ViewmakerOutput", "ViewmakerPreTrainedModel"]
