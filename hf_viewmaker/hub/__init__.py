"""Publishing training runs to the Hugging Face Hub, with model cards made from what the run measured."""

from .model_card import build_model_card, write_model_card
from .push import (
    HubAuthenticationError,
    HubPushError,
    IncompleteRunError,
    check_repo_id,
    collect_run_files,
    push_run_to_hub,
)

__all__ = [
    "HubAuthenticationError",
    "HubPushError",
    "IncompleteRunError",
    "build_model_card",
    "check_repo_id",
    "collect_run_files",
    "push_run_to_hub",
    "write_model_card",
]
