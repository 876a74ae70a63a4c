"""Contrastive objectives of the Viewmaker paper (docs/method.md §3): SimCLR and memory-bank InstDisc, both working
across processes under `torch.distributed` (Accelerate) by gathering embeddings with `gather_with_grad`."""

from .distributed import gather_with_grad
from .instdisc import InstDiscLoss
from .simclr import SimCLRLoss

__all__ = ["InstDiscLoss", "SimCLRLoss", "gather_with_grad"]
