"""Contrastive objectives of the Viewmaker paper (docs/method.md §3): SimCLR and memory-bank InstDisc, both working
across processes under `torch.distributed` (Accelerate) by gathering embeddings with `gather_with_grad`; and
Divmaker's diversity loss, the viewmaker's objective in its non-adversarial variant (§3.6)."""

from .distributed import gather_with_grad
from .divmaker import DivmakerLoss
from .instdisc import InstDiscLoss
from .simclr import SimCLRLoss

__all__ = ["DivmakerLoss", "InstDiscLoss", "SimCLRLoss", "gather_with_grad"]
