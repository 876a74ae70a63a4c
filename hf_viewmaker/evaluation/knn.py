"""k-nearest-neighbour evaluation of embeddings: a quick, training-free probe of a representation."""

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class scores of each query from its k most cosine-similar training examples, each voting with weight
    exp(similarity / temperature) (the weighted kNN of instance discrimination, Wu et al. 2018).

    Args:
        train_features: `[N, D]` embeddings of the labelled examples.
        train_labels: `[N]` integer labels in [0, num_classes).
        query_features: `[Q, D]` embeddings to classify.
        num_classes: number of classes.
        k: neighbours per query (capped at N).
        temperature: softmax temperature of the votes; a small value approaches a majority vote of the closest.
        chunk_size: queries scored at once, to bound the `[chunk, N]` similarity matrix.

    Returns:
        `[Q, num_classes]` scores (higher is more likely).
    """
    if train_features.shape[0] != train_labels.shape[0]:
        raise ValueError(
            f"train_features {tuple(train_features.shape)} and train_labels {tuple(train_labels.shape)} differ"
        )
    if train_features.shape[0] == 0:
        raise ValueError("knn_predict needs at least one training example")
    train = F.normalize(train_features.float(), dim=1)
    labels = train_labels.long().to(train.device)
    k = min(k, train.shape[0])
    scores = []
    for queries in F.normalize(query_features.float(), dim=1).to(train.device).split(chunk_size):
        similarity, neighbours = (queries @ train.T).topk(k, dim=1)
        votes = torch.zeros(queries.shape[0], num_classes, device=train.device)
        votes.scatter_add_(1, labels[neighbours], (similarity / temperature).exp())
        scores.append(votes)
    return torch.cat(scores)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
) -> float:
    """Top-1 accuracy of [`knn_predict`] on labelled queries."""
    scores = knn_predict(train_features, train_labels, query_features, num_classes, k, temperature)
    return (scores.argmax(dim=1).cpu() == query_labels.long().cpu()).float().mean().item()


__all__ = ["knn_accuracy", "knn_predict"]
