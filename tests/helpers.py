"""Helpers shared by several test modules."""

import torch
from torch import nn


def randomise_batch_norms(model: nn.Module, seed: int = 0) -> None:
    """Non-default BatchNorm statistics and affine parameters, so that a lost, reset or mis-mapped buffer shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.normal_(generator=generator)
                module.bias.normal_(generator=generator)
                module.num_batches_tracked.fill_(7)
