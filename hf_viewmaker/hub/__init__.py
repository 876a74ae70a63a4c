"""Publishing training runs to the Hugging Face Hub."""

from .push import (
    HubAuthenticationError,
    HubPushError,
    IncompleteRunError,
    collect_run_files,
    push_run_to_hub,
)

__all__ = ["HubAuthenticationError", "HubPushError", "IncompleteRunError", "collect_run_files", "push_run_to_hub"]
