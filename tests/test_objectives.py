"""Single-process tests of the contrastive objectives (docs/method.md §3.1, §3.2) and Divmaker's diversity loss (§3.6)."""

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from hf_viewmaker.objectives import DivmakerLoss, InstDiscLoss, SimCLRLoss, gather_with_grad
from hf_viewmaker.objectives.distributed import gather, rank_offset

VARIANTS = ["nt_xent", "original"]


def _views(n: int = 8, dim: int = 16, noise: float = 0.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, dim, generator=generator)
    return z1, z1 + noise * torch.randn(n, dim, generator=generator)


def _nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent written anchor by anchor in float64, straight from the SimCLR paper's definition."""
    z = F.normalize(torch.cat([z1, z2]).double(), dim=1)
    n = z1.shape[0]
    terms = []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        scores = {j: torch.dot(z[i], z[j]) / temperature for j in range(2 * n) if j != i}
        denominator = sum(torch.exp(s) for s in scores.values())
        terms.append(-torch.log(torch.exp(scores[positive]) / denominator))
    return torch.stack(terms).mean()


# --- SimCLR ----------------------------------------------------------------------------------------------------------


def test_original_variant_reproduces_the_authors_loss(fixtures_dir):
    tensors = load_file(fixtures_dir / "original_viewmaker" / "original_simclr_loss.safetensors")
    loss = SimCLRLoss(temperature=0.07, variant="original")(tensors["embeddings1"], tensors["embeddings2"])
    torch.testing.assert_close(loss, tensors["expected_loss"].reshape(()), rtol=0, atol=1e-5)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_nt_xent_matches_a_per_anchor_reference(temperature):
    z1, z2 = _views()
    loss = SimCLRLoss(temperature=temperature)(z1, z2)
    torch.testing.assert_close(loss.double(), _nt_xent_reference(z1, z2, temperature), rtol=1e-5, atol=1e-5)


def test_nt_xent_is_symmetric_and_original_is_not():
    z1, z2 = _views()
    torch.testing.assert_close(SimCLRLoss()(z1, z2), SimCLRLoss()(z2, z1))
    original = SimCLRLoss(variant="original")
    assert not torch.allclose(original(z1, z2), original(z2, z1))


@pytest.mark.parametrize("variant", VARIANTS)
def test_loss_is_low_for_identical_views_and_high_for_unrelated_ones(variant):
    loss_fn = SimCLRLoss(variant=variant)
    distinct = torch.eye(8, 16)  # orthogonal examples, so each positive stands out from every negative
    unrelated = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    matched = loss_fn(distinct, distinct)
    random = loss_fn(distinct, unrelated)
    assert matched < random - 5
    if variant == "nt_xent":
        # -1/t + log(exp(1/t) + 2N - 2) with N = 8.
        torch.testing.assert_close(matched, torch.tensor(math.log1p(14 * math.exp(-1 / 0.07))), rtol=1e-3, atol=1e-6)
    else:
        # The unmasked self term weighs as much as the positive: log 2 - log 2N.
        torch.testing.assert_close(matched, torch.tensor(math.log(2) - math.log(16)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradient_reaches_both_views(variant):
    z1, z2 = (z.requires_grad_() for z in _views())
    SimCLRLoss(variant=variant)(z1, z2).backward()
    for z in (z1, z2):
        assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_half_precision_embeddings_give_a_float32_loss(variant):
    z1, z2 = (z.bfloat16() for z in _views())
    loss_fn = SimCLRLoss(variant=variant)
    expected = loss_fn(z1.float(), z2.float())
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = loss_fn(z1, z2)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)


def test_simclr_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"variant must be one of \('nt_xent', 'original'\), got 'ntxent'"):
        SimCLRLoss(variant="ntxent")
    for temperature in (0, -0.1, float("nan"), float("inf"), "0.07", True):
        with pytest.raises(ValueError, match="temperature must be a finite positive number"):
            SimCLRLoss(temperature=temperature)
    with pytest.raises(ValueError, match=r"same shape, got \(8, 16\) and \(7, 16\)"):
        SimCLRLoss()(torch.randn(8, 16), torch.randn(7, 16))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        SimCLRLoss()(torch.randn(16), torch.randn(16))


def test_gathering_is_the_identity_without_a_process_group():
    x = torch.randn(4, 3, requires_grad=True)
    assert gather_with_grad(x) is x
    gathered = gather(x)
    assert not gathered.requires_grad and torch.equal(gathered, x)
    assert rank_offset(4) == 0


# --- InstDisc --------------------------------------------------------------------------------------------------------


def test_memory_bank_is_a_normalised_buffer_saved_in_the_state_dict():
    torch.manual_seed(0)
    loss_fn = InstDiscLoss(num_examples=50, embedding_dim=12)
    torch.manual_seed(0)
    a = 1 / math.sqrt(12 / 3)
    expected = F.normalize(torch.rand(50, 12) * 2 * a - a, dim=1)  # the original's initialisation
    state = loss_fn.state_dict()
    assert list(state) == ["memory_bank"]
    torch.testing.assert_close(state["memory_bank"], expected)
    torch.testing.assert_close(state["memory_bank"].norm(dim=1), torch.ones(50))

    restored = InstDiscLoss(num_examples=50, embedding_dim=12)
    assert not torch.equal(restored.memory_bank, expected)
    restored.load_state_dict(state)
    assert torch.equal(restored.memory_bank, expected)


def test_update_memory_matches_a_hand_computation():
    loss_fn = InstDiscLoss(num_examples=10, embedding_dim=4, momentum=0.5)
    before = loss_fn.memory_bank.clone()
    z = torch.tensor([[3.0, 0.0, 0.0, 4.0], [0.0, -2.0, 0.0, 0.0]], requires_grad=True)
    loss_fn.update_memory(z, torch.tensor([7, 2]))
    for row, index in zip(torch.tensor([[0.6, 0.0, 0.0, 0.8], [0.0, -1.0, 0.0, 0.0]]), (7, 2), strict=True):
        mixed = 0.5 * before[index] + 0.5 * row
        torch.testing.assert_close(loss_fn.memory_bank[index], mixed / mixed.norm())
    untouched = [i for i in range(10) if i not in (7, 2)]
    assert torch.equal(loss_fn.memory_bank[untouched], before[untouched])
    assert not loss_fn.memory_bank.requires_grad


def test_update_memory_uses_the_last_occurrence_of_a_repeated_index():
    loss_fn = InstDiscLoss(num_examples=5, embedding_dim=3, momentum=0.0)
    z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    loss_fn.update_memory(z, torch.tensor([4, 1, 4]))
    assert torch.equal(loss_fn.memory_bank[4], z[2])
    assert torch.equal(loss_fn.memory_bank[1], z[1])


def test_instdisc_matches_the_formula_with_the_positive_left_out():
    loss_fn = InstDiscLoss(num_examples=20, embedding_dim=8, num_negatives=16, temperature=0.07)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    indices = torch.tensor([0, 3, 19, 3, 11])
    loss = loss_fn(z, indices, generator=torch.Generator().manual_seed(5))

    negatives = torch.randint(20, (5, 16), generator=torch.Generator().manual_seed(5))
    zn = F.normalize(z.double(), dim=1)
    bank = loss_fn.memory_bank.double()
    expected = torch.stack(
        [
            -zn[i] @ bank[indices[i]] / 0.07 + torch.logsumexp(bank[negatives[i]] @ zn[i] / 0.07, dim=0) - math.log(16)
            for i in range(5)
        ]
    ).mean()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-5)


def test_instdisc_loss_is_zero_when_every_negative_scores_like_the_positive():
    # With one bank row every negative is the positive itself: -1/t + log(k e^{1/t}) - log k = 0 exactly, whereas a
    # positive in the denominator would add log((k + 1) / k).
    loss_fn = InstDiscLoss(num_examples=1, embedding_dim=4, num_negatives=8)
    loss = loss_fn(loss_fn.memory_bank.clone() * 3, torch.tensor([0]))
    torch.testing.assert_close(loss, torch.tensor(0.0), rtol=0, atol=1e-5)


def test_instdisc_negatives_are_reproducible_with_a_generator():
    loss_fn = InstDiscLoss(num_examples=500, embedding_dim=8, num_negatives=32)
    z, indices = torch.randn(6, 8), torch.arange(6)
    first = loss_fn(z, indices, generator=torch.Generator().manual_seed(3))
    again = loss_fn(z, indices, generator=torch.Generator().manual_seed(3))
    other = loss_fn(z, indices, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_instdisc_gradient_and_precision():
    loss_fn = InstDiscLoss(num_examples=30, embedding_dim=8, num_negatives=64)
    z = torch.randn(4, 8).bfloat16().requires_grad_()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = loss_fn(z, torch.arange(4), generator=torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32
    loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert loss_fn.memory_bank.grad is None


def test_instdisc_rejects_bad_arguments():
    loss_fn = InstDiscLoss(num_examples=10, embedding_dim=4)
    z = torch.randn(2, 4)
    for bad in ([0, 10], [-1, 3]):
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 10\)"):
            loss_fn(z, torch.tensor(bad))
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 10\)"):
            loss_fn.update_memory(z, torch.tensor(bad))
    with pytest.raises(ValueError, match=r"integer tensor \[N\] = \[2\]"):
        loss_fn(z, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"integer tensor \[N\] = \[2\]"):
        loss_fn(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"z must be \[N, 4\], got \(2, 5\)"):
        loss_fn(torch.randn(2, 5), torch.tensor([0, 1]))
    for kwargs, name in [
        ({"num_examples": 0}, "num_examples"),
        ({"num_examples": 5, "embedding_dim": 2.0}, "embedding_dim"),
        ({"num_examples": 5, "num_negatives": 0}, "num_negatives"),
        ({"num_examples": 5, "temperature": 0.0}, "temperature"),
        ({"num_examples": 5, "momentum": 1.5}, "momentum"),
    ]:
        with pytest.raises(ValueError, match=name):
            InstDiscLoss(**kwargs)


def test_instdisc_bank_update_before_backward_keeps_the_graph():
    # The pretraining model updates the bank inside its forward pass, before backward().
    loss_fn = InstDiscLoss(num_examples=20, embedding_dim=8, num_negatives=16)
    z = torch.randn(4, 8, requires_grad=True)
    indices = torch.arange(4)
    loss = loss_fn(z, indices)
    before = loss_fn.memory_bank.clone()
    loss_fn.update_memory(z.detach(), indices)
    loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert not torch.equal(loss_fn.memory_bank[:4], before[:4])
    assert "memory_bank" in dict(loss_fn.named_buffers())


# --- Divmaker --------------------------------------------------------------------------------------------------------


def _divmaker_reference(anchor: torch.Tensor, views: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """The diversity loss written example by example and view by view in float64, from its definition."""
    x = F.normalize(anchor.double(), dim=1)
    v = [F.normalize(view.double(), dim=1) for view in views]
    terms = []
    for b in range(x.shape[0]):
        for i in range(len(v)):
            positive = torch.exp(torch.dot(x[b], v[i][b]) / temperature)
            negatives = sum(torch.exp(torch.dot(v[i][b], v[j][b]) / temperature) for j in range(len(v)) if j != i)
            terms.append(-torch.log(positive / (positive + negatives)))
    return torch.stack(terms).mean()


def test_divmaker_loss_matches_a_hand_computation():
    # x = (1, 0), v1 along x (scaled: the loss normalises), v2 orthogonal to both, t = 1:
    # l_1 = -log(e / (e + 1)) = log(1 + 1/e), l_2 = -log(1 / (1 + 1)) = log 2.
    anchor, views = torch.tensor([[1.0, 0.0]]), [torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 0.5]])]
    expected = (math.log1p(math.exp(-1)) + math.log(2)) / 2
    torch.testing.assert_close(DivmakerLoss(temperature=1.0)(anchor, views), torch.tensor(expected))


@pytest.mark.parametrize("num_views", [2, 3])
def test_divmaker_loss_matches_a_per_view_reference(num_views):
    generator = torch.Generator().manual_seed(0)
    anchor = torch.randn(5, 8, generator=generator)
    views = [anchor + torch.randn(5, 8, generator=generator) for _ in range(num_views)]
    loss = DivmakerLoss(temperature=0.5)(anchor, views)
    torch.testing.assert_close(loss.double(), _divmaker_reference(anchor, views, 0.5), rtol=1e-5, atol=1e-6)


def test_divmaker_loss_falls_as_views_near_the_anchor_and_part_from_each_other():
    anchor = torch.tensor([[1.0, 0.0, 0.0]])
    loss_fn = DivmakerLoss(temperature=0.1)
    # Both views on the anchor's side, tilted apart (cosine 0.8 to it, 0.28 between them) ...
    diverse = loss_fn(anchor, [torch.tensor([[0.8, 0.6, 0.0]]), torch.tensor([[0.8, -0.6, 0.0]])])
    # ... the same closeness to the anchor but identical views ...
    collapsed = loss_fn(anchor, [torch.tensor([[0.8, 0.6, 0.0]]), torch.tensor([[0.8, 0.6, 0.0]])])
    # ... and views orthogonal to the anchor.
    far = loss_fn(anchor, [torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]])])
    assert diverse < collapsed and diverse < far


def test_divmaker_gradient_reaches_the_views_and_the_anchor_in_float32():
    generator = torch.Generator().manual_seed(0)
    anchor = torch.randn(4, 8, generator=generator, requires_grad=True)
    views = [torch.randn(4, 8, generator=generator).bfloat16().requires_grad_() for _ in range(2)]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = DivmakerLoss()(anchor, views)
    assert loss.dtype == torch.float32
    loss.backward()
    for z in (anchor, *views):
        assert z.grad is not None and torch.isfinite(z.grad.float()).all() and z.grad.abs().sum() > 0


def test_divmaker_rejects_bad_arguments():
    for temperature in (0, float("nan"), "0.07", True):
        with pytest.raises(ValueError, match="temperature must be a finite positive number"):
            DivmakerLoss(temperature=temperature)
    loss_fn = DivmakerLoss()
    with pytest.raises(ValueError, match=r"anchor must be \[B, D\], got shape \(8,\)"):
        loss_fn(torch.randn(8), [torch.randn(8), torch.randn(8)])
    with pytest.raises(ValueError, match="views must hold at least 2 view embeddings.*got 1"):
        loss_fn(torch.randn(4, 8), [torch.randn(4, 8)])
    with pytest.raises(ValueError, match=r"views\[1\] must have the anchor's shape \(4, 8\), got \(3, 8\)"):
        loss_fn(torch.randn(4, 8), [torch.randn(4, 8), torch.randn(3, 8)])
    with pytest.raises(ValueError, match=r"anchor must be one tensor or one per view \(2\), got 3"):
        loss_fn([torch.randn(4, 8)] * 3, [torch.randn(4, 8), torch.randn(4, 8)])
    with pytest.raises(ValueError, match=r"anchor\[1\] must have the anchor's shape \(4, 8\), got \(4, 7\)"):
        loss_fn([torch.randn(4, 8), torch.randn(4, 7)], [torch.randn(4, 8), torch.randn(4, 8)])


def test_divmaker_compares_each_view_with_its_own_clean_input_when_given_one_per_view():
    generator = torch.Generator().manual_seed(0)
    anchors = [torch.randn(3, 8, generator=generator) for _ in range(2)]
    views = [anchor + 0.3 * torch.randn(3, 8, generator=generator) for anchor in anchors]
    loss_fn = DivmakerLoss(temperature=0.5)
    # Per view, the loss of that view alone against its own anchor: l_1 from anchor 1, l_2 from anchor 2.
    per_view = [loss_fn(a, views) for a in anchors]
    x = [F.normalize(a, dim=1) for a in anchors]
    v = [F.normalize(view, dim=1) for view in views]
    positives = [(x[i] * v[i]).sum(1) / 0.5 for i in range(2)]
    between = (v[0] * v[1]).sum(1) / 0.5
    expected = sum((torch.logaddexp(p, between) - p).mean() for p in positives) / 2
    torch.testing.assert_close(loss_fn(anchors, views), expected)
    torch.testing.assert_close(loss_fn([anchors[0], anchors[0]], views), per_view[0])
