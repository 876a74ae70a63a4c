"""RankMe: the effective rank of a representation, a label-free measure of its quality (Garrido et al., "RankMe:
Assessing the downstream performance of pretrained self-supervised representations by their rank", ICML 2023).

A collapsed encoder maps every input to a few directions, and its features' singular values concentrate in a few
components; a useful one spreads them. RankMe is the exponential of the entropy of the normalised singular values of
the `[N, D]` feature matrix: between 1 (every feature on one line) and min(N, D) (all singular values equal). Garrido
et al. found it tracks linear-probe accuracy across the hyperparameters of a method, which is what choosing the
viewmaker's budget without labels needs (docs/method.md §3.7); whether it does here is measured in docs/results.md.
"""

import torch

# Garrido et al.'s epsilon: keeps log(p) finite for zero singular values without changing the others' entropy.
RANKME_EPSILON = 1e-7


@torch.no_grad()
def effective_rank(features: torch.Tensor) -> float:
    """RankMe of `features`, `[N, D]` (one row per example; not centred, as in the paper): exp(-sum_k p_k log p_k)
    with p_k = sigma_k / sum(sigma) + 1e-7 over the singular values sigma_k. At most min(N, D): use N >= D examples
    for it to measure the representation rather than the sample."""
    if features.ndim != 2 or min(features.shape) == 0:
        raise ValueError(f"features must be a non-empty [N, D] matrix, got shape {tuple(features.shape)}")
    singular_values = torch.linalg.svdvals(features.double())
    if not torch.isfinite(singular_values).all() or singular_values.sum() == 0:
        raise ValueError("features have no finite, non-zero singular values: the rank is undefined")
    p = singular_values / singular_values.sum() + RANKME_EPSILON
    return torch.exp(-(p * p.log()).sum()).item()


__all__ = ["effective_rank"]
