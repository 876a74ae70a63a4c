"""Viewmaker Networks (Tamkin, Wu, Goodman, ICLR 2021) as transformers models.

Importing this package registers every model with the `Auto*` classes, and registers each class for custom-code
saving, so that a saved or pushed checkpoint also loads with `trust_remote_code=True` where this package is not
installed.
"""

from transformers import AutoConfig, AutoModel

from .models.viewmaker import ViewmakerConfig, ViewmakerModel, ViewmakerOutput, ViewmakerPreTrainedModel

AutoConfig.register(ViewmakerConfig.model_type, ViewmakerConfig)
AutoModel.register(ViewmakerConfig, ViewmakerModel)
ViewmakerConfig.register_for_auto_class()
ViewmakerModel.register_for_auto_class("AutoModel")

__all__ = [
    "ViewmakerConfig",
    "ViewmakerModel",
    "ViewmakerOutput",
    "ViewmakerPreTrainedModel",
]
