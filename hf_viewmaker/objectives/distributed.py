"""Gathering embeddings across processes, so that contrastive losses see every process's batch as negatives.

Without a process group (or with a single process) every function here is the identity, so the losses run unchanged
in a single process. Only equal per-process batch sizes are supported (`drop_last=True`, or Accelerate's
`even_batches=True`, gives them).
"""

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Whether a `torch.distributed` process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_offset(local_batch_size: int) -> int:
    """Row of this process's first example in a batch gathered by `gather` or `gather_with_grad`.

    Args:
        local_batch_size: the number of rows each process contributes (equal on every process).

    Returns:
        `rank * local_batch_size` in a process group, 0 otherwise.
    """
    return dist.get_rank() * local_batch_size if is_distributed() else 0


def _all_gather(x: torch.Tensor) -> torch.Tensor:
    # `all_gather` needs equal shapes on every process; exchanging the shapes first turns a mismatch into a clear
    # error instead of a hang or an opaque backend failure.
    shape = torch.tensor(x.shape, dtype=torch.long, device=x.device)
    shapes = [torch.empty_like(shape) for _ in range(dist.get_world_size())]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(s, shape) for s in shapes):
        raise ValueError(
            "gathering across processes needs the same tensor shape on every process (equal per-process batch "
            f"sizes, e.g. drop_last=True), got shapes {[tuple(s.tolist()) for s in shapes]} (one per rank)"
        )
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.batch_size = x.shape[0]
        return _all_gather(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        # Every process's loss depends on this process's rows, so their gradient is the sum of the gradients that all
        # processes computed for them. DDP then divides parameter gradients by the world size, which turns the
        # per-process mean losses into the mean loss over the whole gathered batch.
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = rank_offset(ctx.batch_size)
        return grad[start : start + ctx.batch_size]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather that gradients flow back through.

    Args:
        x: this process's tensor, [n, ...]; n must be the same on every process.

    Returns:
        [world_size * n, ...]: every process's `x` concatenated along dim 0 in rank order (this process's rows start at
        `rank_offset(n)`); `x` itself without a process group or with one process.

    In backward, the incoming gradient is summed over processes and this process's rows are returned. With DDP's
    averaging of parameter gradients, training on the per-process losses (each a mean over local anchors) then gets
    exactly the gradient of the mean loss over the global batch computed in one process.

    Raises:
        ValueError: if the shapes differ between processes (all processes raise it, naming every rank's shape).
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """All-gather without gradients, for bookkeeping such as memory-bank updates.

    Args:
        x: this process's tensor, [n, ...]; n must be the same on every process.

    Returns:
        [world_size * n, ...] in rank order, detached; `x.detach()` without a process group or with one process.

    Raises:
        ValueError: if the shapes differ between processes.
    """
    if not is_distributed():
        return x.detach()
    return _all_gather(x)
