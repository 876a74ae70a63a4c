"""Instance discrimination: NCE against a memory bank of past embeddings (docs/method.md §3.2)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import positive_temperature
from .distributed import gather


class InstDiscLoss(nn.Module):
    """Memory-bank NCE loss of instance discrimination (Wu et al. 2018), as the Viewmaker authors used it.

    Each training example owns one row of a memory bank. For an embedding z of example i, the positive score is
    z · bank[i] (the stored row, no gradient into the bank), and the negatives are `num_negatives` rows drawn uniformly
    with replacement from the whole bank (so they may include row i). The loss is
    mean(-s⁺/t + logsumexp_k(s⁻/t) - log k): the positive is not in the denominator (docs/method.md §3.2).

    Args:
        num_examples: the number of training examples, i.e. bank rows; dataset indices lie in [0, num_examples).
        embedding_dim: the width D of the embeddings (128 in every Viewmaker config).
        num_negatives: negatives k drawn per example; 4096 in the original (docs/method.md §3.2).
        temperature: the softmax temperature t > 0; 0.07 in the original.
        momentum: the weight m in [0, 1] that a bank row keeps at each update; 0.5 in the original.

    The bank is the buffer `memory_bank` [num_examples, embedding_dim], initialised U[-a, a] with a = 1/sqrt(D/3) and
    L2-normalised rows, as in the original; being a buffer, it is saved in state dicts and checkpoints. It is drawn from
    torch's global random generator, so under `torch.distributed` seed every process identically before construction
    (Accelerate's `set_seed` does) or load it from a checkpoint: `update_memory` keeps identical banks identical, it
    does not make different ones agree.

    The embeddings are L2-normalised here, and the loss is computed in float32 with autocast disabled.

    Example:
        >>> loss_fn = InstDiscLoss(num_examples=1000, embedding_dim=128)
        >>> z, idx = torch.randn(8, 128), torch.arange(8)
        >>> loss = loss_fn(z, idx)
        >>> loss_fn.update_memory(z, idx)  # once per training step, after the loss
    """

    memory_bank: torch.Tensor

    def __init__(
        self,
        num_examples: int,
        embedding_dim: int = 128,
        num_negatives: int = 4096,
        temperature: float = 0.07,
        momentum: float = 0.5,
    ):
        super().__init__()
        sizes = {"num_examples": num_examples, "embedding_dim": embedding_dim, "num_negatives": num_negatives}
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        temperature = positive_temperature(temperature)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be a number in [0, 1] (e.g. 0.5), got {momentum!r}")
        self.num_examples = num_examples
        self.embedding_dim = embedding_dim
        self.num_negatives = num_negatives
        self.temperature = temperature
        self.momentum = float(momentum)
        bound = 1.0 / math.sqrt(embedding_dim / 3)
        bank = torch.rand(num_examples, embedding_dim) * (2 * bound) - bound
        self.register_buffer("memory_bank", F.normalize(bank, dim=1))

    def extra_repr(self) -> str:
        return (
            f"num_examples={self.num_examples}, embedding_dim={self.embedding_dim}, "
            f"num_negatives={self.num_negatives}, temperature={self.temperature}, momentum={self.momentum}"
        )

    def _check_inputs(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.embedding_dim:
            raise ValueError(f"z must be [N, {self.embedding_dim}], got {tuple(z.shape)}")
        if indices.shape != z.shape[:1] or indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(
                f"indices must be an integer tensor [N] = [{z.shape[0]}], got {indices.dtype} {tuple(indices.shape)}"
            )
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.num_examples):
            raise ValueError(
                f"indices must lie in [0, {self.num_examples}) (num_examples), got values in "
                f"[{indices.min().item()}, {indices.max().item()}]"
            )

    def forward(self, z: torch.Tensor, indices: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """
        Args:
            z: embeddings, [N, embedding_dim] (any float dtype), one view per example.
            indices: the dataset index of each row of `z`, an integer tensor [N] with values in [0, num_examples).
            generator: draws the negatives (on its own device; a CPU generator also serves a GPU bank); torch's
                default generator of the bank's device when None.

        Returns:
            The mean loss over the N examples, a float32 scalar. The bank is not changed: call `update_memory`.
        """
        self._check_inputs(z, indices)
        bank = self.memory_bank
        negatives = torch.randint(
            self.num_examples,
            (z.shape[0], self.num_negatives),
            generator=generator,
            device=bank.device if generator is None else generator.device,
        ).to(bank.device)
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = F.normalize(z.float(), dim=1)
            bank = bank.float()
            positive = (z * bank[indices.to(bank.device, torch.long)]).sum(dim=1)
            # Scoring z against the whole bank and picking columns needs N x num_examples floats; indexing the
            # negatives' rows first would need N x k x D (512 MiB at N = 256, k = 4096, D = 128) kept for backward.
            negative = (z @ bank.T).gather(1, negatives)
            log_partition = torch.logsumexp(negative / self.temperature, dim=1)
            return (log_partition - positive / self.temperature).mean() - math.log(self.num_negatives)

    @torch.no_grad()
    def update_memory(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        """Move the bank rows of `indices` towards `z`: bank[i] = normalise(m * bank[i] + (1 - m) * normalise(z)).

        Call it once per training step. (The original updated the bank twice per step, in the encoder's and again in
        the viewmaker's forward pass, which applies m twice; docs/method.md §3.4.) Under `torch.distributed` every
        process must call it: `z` and `indices` of all processes are gathered first, so each bank gets the same update
        and identical banks stay identical. Where an index occurs more than once in the (gathered) batch, e.g. from a
        sampler that pads with repeated examples, its last occurrence in rank order is used.

        Args:
            z: embeddings, [N, embedding_dim] (detached here), one per row of `indices`.
            indices: the dataset index of each row of `z`, an integer tensor [N] with values in [0, num_examples).
        """
        self._check_inputs(z, indices)
        bank = self.memory_bank
        z = F.normalize(gather(z.to(bank.device)).float(), dim=1)
        indices = gather(indices.to(bank.device, torch.long))
        rows, inverse = torch.unique(indices, return_inverse=True)
        # Scattering the position with max is order-independent, unlike writing duplicates, whose winner on a GPU is
        # unspecified and could differ between processes.
        positions = torch.arange(indices.numel(), device=bank.device)
        last = torch.full_like(rows, -1).scatter_reduce_(0, inverse, positions, reduce="amax")
        updated = F.normalize(self.momentum * bank[rows].float() + (1 - self.momentum) * z[last], dim=1)
        # Out of place: the loss of this step may still need the old bank for its backward pass, so the update can
        # run inside the forward pass, before `backward()`.
        self.memory_bank = bank.index_copy(0, rows, updated.to(bank.dtype))
