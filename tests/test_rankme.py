"""RankMe, the label-free measure the budget sweep chooses by (hf_viewmaker/evaluation/rankme.py)."""

import math

import pytest
import torch

from hf_viewmaker.evaluation import effective_rank


def test_equal_singular_values_give_the_full_rank_and_one_direction_gives_one():
    assert effective_rank(torch.eye(8) * 3.0) == pytest.approx(8.0, rel=1e-5)
    line = torch.randn(100, 1) * torch.randn(1, 8)  # every row a multiple of one vector
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)


def test_the_rank_counts_the_directions_the_features_spread_over():
    generator = torch.Generator().manual_seed(0)
    spread = torch.randn(4000, 16, generator=generator)
    # Half the dimensions carry a hundredth of the variance: about half the rank.
    squeezed = spread * torch.tensor([1.0] * 8 + [0.01] * 8)
    assert effective_rank(spread) > 15.0
    assert 7.5 < effective_rank(squeezed) < 9.5
    # Two equal singular values and nothing else: exp(log 2).
    assert effective_rank(torch.diag(torch.tensor([2.0, 2.0, 0.0, 0.0]))) == pytest.approx(2.0, rel=1e-4)
    assert not math.isnan(effective_rank(squeezed.half().float()))


@pytest.mark.parametrize("features", [torch.zeros(5), torch.zeros(0, 4), torch.zeros(3, 4)])
def test_features_without_a_rank_are_an_error_naming_the_problem(features):
    with pytest.raises(ValueError, match="features"):
        effective_rank(features)
