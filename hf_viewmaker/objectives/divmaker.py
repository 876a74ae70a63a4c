"""Divmaker's diversity loss (Bayrooti, Goodman and Tamkin, arXiv 2302.05757; docs/method.md §3.6): the viewmaker's
objective when it is trained to make diverse views instead of adversarial ones."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import positive_temperature


class DivmakerLoss(nn.Module):
    """NeuTraL-AD-style diversity loss of K views of each example against its clean input.

    For an example with clean embedding x and view embeddings v_1, ..., v_K (all L2-normalised, cosine similarity
    s, temperature t), view i contributes

        l_i = -log( exp(s(x, v_i)/t) / (exp(s(x, v_i)/t) + sum_{j != i} exp(s(v_i, v_j)/t)) ),

    so minimising it keeps each view close to its clean input and far from the other views of the same input. The
    loss is the mean of l_i over the views and the batch. Other examples of the batch play no part (unlike SimCLR),
    so nothing is gathered across processes.

    Args:
        temperature: the softmax temperature t > 0 (the run's `--temperature`).

    The embeddings are L2-normalised here, and the loss is computed in float32 with autocast disabled, whatever the
    dtype of the embeddings.

    Example:
        >>> loss_fn = DivmakerLoss(temperature=0.07)
        >>> loss = loss_fn(torch.randn(4, 128), [torch.randn(4, 128), torch.randn(4, 128)])
    """

    def __init__(self, temperature: float = 0.07):
        super().__init__()
        self.temperature = positive_temperature(temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

    def forward(self, anchor: torch.Tensor | Sequence[torch.Tensor], views: Sequence[torch.Tensor]) -> torch.Tensor:
        """
        Args:
            anchor: embeddings of the clean inputs, [B, D] (any float dtype, not necessarily normalised); or K such
                tensors, one per view, when the views were made from different inputs of each example (two crops of
                a clip, two handcrafted views): view i is then compared with the clean input it was made from.
            views: K >= 2 tensors of [B, D], the embeddings of each input's K views, row b of each being example b.

        Returns:
            The mean of l_i over the K views and the B examples, a float32 scalar.
        """
        anchors = [anchor] if isinstance(anchor, torch.Tensor) else list(anchor)
        if anchors[0].dim() != 2:
            raise ValueError(f"anchor must be [B, D], got shape {tuple(anchors[0].shape)}")
        if len(views) < 2:
            raise ValueError(f"views must hold at least 2 view embeddings (the loss compares them), got {len(views)}")
        if len(anchors) not in (1, len(views)):
            raise ValueError(f"anchor must be one tensor or one per view ({len(views)}), got {len(anchors)}")
        for name, tensors in (("anchor", anchors), ("views", views)):
            for index, tensor in enumerate(tensors):
                if tensor.shape != anchors[0].shape:
                    raise ValueError(
                        f"{name}[{index}] must have the anchor's shape {tuple(anchors[0].shape)}, got "
                        f"{tuple(tensor.shape)}"
                    )
        # As in SimCLRLoss: at t = 0.07 the logits reach 1/t ≈ 14, too coarse for bf16/fp16.
        with torch.autocast(device_type=anchors[0].device.type, enabled=False):
            anchors = F.normalize(torch.stack([a.float() for a in anchors], dim=1), dim=2)  # [B, 1 or K, D]
            views = F.normalize(torch.stack([v.float() for v in views], dim=1), dim=2)  # [B, K, D]
            positive = (views * anchors).sum(dim=2) / self.temperature  # [B, K]: s(x, v_i) / t
            between = views @ views.transpose(1, 2) / self.temperature  # [B, K, K]: s(v_i, v_j) / t
            # A view is not its own negative: the diagonal is replaced by the positive, so that row i of `logits`
            # holds s(x, v_i)/t and s(v_i, v_j)/t for j != i, the terms of l_i's denominator.
            logits = torch.diagonal_scatter(between, positive, dim1=1, dim2=2)
            return (torch.logsumexp(logits, dim=2) - positive).mean()


__all__ = ["DivmakerLoss"]
