"""Real two-process runs (gloo on 127.0.0.1) of the objectives, compared with one process on the whole batch.

The gradient comparison: each rank r computes L_r, the mean loss over its own anchors, with the other rank's
embeddings as negatives, and backpropagates it. `gather_with_grad` sums the gradients of every rank's loss w.r.t.
this rank's embeddings, so on rank r, z_local.grad = sum_s dL_s/dz_local. The single-process loss of the full batch
is L = mean_s L_s (equal per-rank batches), so dL/dz = (1/W) sum_s dL_s/dz: DDP's averaging of parameter gradients
supplies that 1/W. Hence the per-rank gradients, concatenated in rank order and divided by the world size W, must
equal the single-process gradients, and the mean of the per-rank losses must equal the single-process loss.
"""

import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hf_viewmaker.objectives import InstDiscLoss, SimCLRLoss

WORLD_SIZE = 2
VARIANTS = ["nt_xent", "original"]
BANK_SIZE, BANK_DIM = 24, 8


def _simclr_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 16, generator=generator)
    return z1, z1 + 0.5 * torch.randn(8, 16, generator=generator)


def _bank_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    # Index 5 on both ranks, as a padding DistributedSampler produces: rank 1's row must win everywhere.
    return torch.randn(6, BANK_DIM, generator=generator), torch.tensor([5, 0, 17, 9, 5, 23])


def _new_instdisc() -> InstDiscLoss:
    torch.manual_seed(123)  # the same initial bank on every process, as Accelerate's set_seed gives
    return InstDiscLoss(num_examples=BANK_SIZE, embedding_dim=BANK_DIM)


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=60)
    )
    try:
        results: dict[str, object] = {}
        z1, z2 = _simclr_batch()
        n = z1.shape[0] // WORLD_SIZE
        local = slice(rank * n, (rank + 1) * n)
        for variant in VARIANTS:
            a, b = z1[local].clone().requires_grad_(), z2[local].clone().requires_grad_()
            loss = SimCLRLoss(variant=variant)(a, b)
            loss.backward()
            results[f"{variant}.loss"], results[f"{variant}.grad1"], results[f"{variant}.grad2"] = loss, a.grad, b.grad
            results[f"{variant}.local_loss"] = SimCLRLoss(variant=variant, gather_distributed=False)(a, b)

        try:
            SimCLRLoss()(torch.randn(3 + rank, 16), torch.randn(3 + rank, 16))
        except ValueError as error:
            results["uneven_error"] = str(error)

        instdisc = _new_instdisc()
        z, indices = _bank_batch()
        instdisc.update_memory(z[rank * 3 : rank * 3 + 3], indices[rank * 3 : rank * 3 + 3])
        results["bank"] = instdisc.memory_bank

        detached = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in results.items()}
        torch.save(detached, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("two_ranks")
    # One spawn for every check: starting the workers (and importing torch in them) is the slow part.
    mp.spawn(_worker, args=(_free_port(), str(out_dir)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_simclr_on_two_ranks_equals_one_process_on_the_whole_batch(rank_results, variant):
    z1, z2 = (z.requires_grad_() for z in _simclr_batch())
    loss = SimCLRLoss(variant=variant)(z1, z2)
    loss.backward()

    mean_loss = torch.stack([r[f"{variant}.loss"] for r in rank_results]).mean()
    torch.testing.assert_close(mean_loss, loss.detach(), rtol=0, atol=1e-5)
    for key, expected in (("grad1", z1.grad), ("grad2", z2.grad)):
        # Divided by the world size, as DDP's gradient averaging does (see the module docstring).
        gathered = torch.cat([r[f"{variant}.{key}"] for r in rank_results]) / WORLD_SIZE
        torch.testing.assert_close(gathered, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_simclr_without_gathering_uses_local_negatives_only(rank_results, variant):
    z1, z2 = _simclr_batch()
    for rank, result in enumerate(rank_results):
        local = slice(rank * 4, rank * 4 + 4)
        expected = SimCLRLoss(variant=variant)(z1[local], z2[local])
        torch.testing.assert_close(result[f"{variant}.local_loss"], expected)
        assert not torch.allclose(result[f"{variant}.local_loss"], result[f"{variant}.loss"])


def test_uneven_batches_raise_on_every_rank_naming_the_shapes(rank_results):
    for result in rank_results:
        assert "same tensor shape on every process" in result["uneven_error"]
        assert "[(3, 32), (4, 32)]" in result["uneven_error"]


def test_memory_bank_update_is_identical_on_every_rank_and_matches_one_process(rank_results):
    assert torch.equal(rank_results[0]["bank"], rank_results[1]["bank"])
    single = _new_instdisc()
    before = single.memory_bank.clone()
    single.update_memory(*_bank_batch())
    assert torch.equal(rank_results[0]["bank"], single.memory_bank)
    assert not torch.equal(single.memory_bank, before)
