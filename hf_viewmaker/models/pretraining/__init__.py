from .configuration_pretraining import ViewmakerPretrainingConfig
from .modeling_pretraining import ViewmakerForContrastivePretraining, ViewmakerPretrainingOutput

__all__ = ["ViewmakerForContrastivePretraining", "ViewmakerPretrainingConfig", "ViewmakerPretrainingOutput"]
