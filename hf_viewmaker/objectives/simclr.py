"""SimCLR contrastive loss: standard NT-Xent, or the Viewmaker authors' original variant (docs/method.md §3.1)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import positive_temperature
from .distributed import gather_with_grad, is_distributed, rank_offset

SIMCLR_VARIANTS = ("nt_xent", "original")


class SimCLRLoss(nn.Module):
    """Contrastive loss between two views of a batch, with the other examples of the batch as negatives.

    Args:
        temperature: the softmax temperature t > 0; every Viewmaker config uses 0.07 (docs/method.md §3.1).
        variant: `"nt_xent"` (default), the standard symmetric NT-Xent of SimCLR: each of the 2N embeddings is an
            anchor, its positive is the other view of the same example, its negatives are the other 2N - 2
            embeddings, and its self-similarity is left out. `"original"`, the authors' loss, kept to reproduce
            their runs: anchors come from view 1 only, the softmax runs over all 2N embeddings including the
            anchor itself (self term not masked), and the mean is shifted by -log(2N), so it can be negative.
        gather_distributed: under `torch.distributed`, use every process's batch as negatives (the loss is then the
            one of the global batch; see `gather_with_grad`). Without a process group it has no effect.

    The embeddings are L2-normalised here, and the loss is computed in float32 with autocast disabled, whatever the
    dtype of the embeddings.

    Example:
        >>> loss_fn = SimCLRLoss()
        >>> loss = loss_fn(torch.randn(4, 128), torch.randn(4, 128))
    """

    def __init__(self, temperature: float = 0.07, variant: str = "nt_xent", gather_distributed: bool = True):
        super().__init__()
        if variant not in SIMCLR_VARIANTS:
            raise ValueError(f"variant must be one of {SIMCLR_VARIANTS}, got {variant!r}")
        self.temperature = positive_temperature(temperature)
        self.variant = variant
        self.gather_distributed = gather_distributed

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, variant={self.variant!r}, gather_distributed={self.gather_distributed}"

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """
        Args:
            z1: embeddings of the first views, [N, D] (any float dtype); row i is example i.
            z2: embeddings of the second views of the same examples in the same order, [N, D].

        Returns:
            The mean loss over this process's anchors, a float32 scalar.
        """
        if z1.dim() != 2 or z1.shape != z2.shape:
            raise ValueError(
                f"z1 and z2 must both be [N, D] with the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
            )
        # Under autocast the matmul would run in bf16/fp16 again; at t = 0.07 the logits reach 1/t ≈ 14 and their
        # differences matter, so the whole loss stays in float32.
        with torch.autocast(device_type=z1.device.type, enabled=False):
            z1, z2 = z1.float(), z2.float()
            if self.variant == "original":
                # The original's plain x / ||x|| (no epsilon), so that its numbers are reproduced exactly.
                z1 = z1 / z1.norm(dim=1, keepdim=True)
                z2 = z2 / z2.norm(dim=1, keepdim=True)
            else:
                z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
            if self.gather_distributed and is_distributed():
                # One collective for both views instead of two.
                all1, all2 = gather_with_grad(torch.cat([z1, z2], dim=1)).split(z1.shape[1], dim=1)
                offset = rank_offset(z1.shape[0])
            else:
                all1, all2, offset = z1, z2, 0
            candidates = torch.cat([all1, all2], dim=0)
            if self.variant == "original":
                return self._original(z1, z2, candidates)
            return self._nt_xent(z1, z2, candidates, offset)

    def _original(self, z1: torch.Tensor, z2: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        positive = (z1 * z2).sum(dim=1) / self.temperature
        log_partition = torch.logsumexp(z1 @ candidates.T / self.temperature, dim=1)
        return (log_partition - positive).mean() - math.log(candidates.shape[0])

    def _nt_xent(self, z1: torch.Tensor, z2: torch.Tensor, candidates: torch.Tensor, offset: int) -> torch.Tensor:
        n, total = z1.shape[0], candidates.shape[0] // 2
        anchors = torch.cat([z1, z2], dim=0)
        logits = anchors @ candidates.T / self.temperature
        local = torch.arange(n, device=z1.device) + offset
        self_columns = torch.cat([local, local + total])
        positive_columns = torch.cat([local + total, local])
        rows = torch.arange(2 * n, device=z1.device)
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[rows, self_columns] = True
        logits = logits.masked_fill(self_mask, float("-inf"))
        return F.cross_entropy(logits, positive_columns)
