import os
from pathlib import Path

import pytest
import torch

# Tests never touch the network: the real Hub is unreachable here and CI must not wait on it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared lies beside the checkout, both in development and in CI's fresh clone.
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"test vectors not found at {SHARED_FIXTURES}: the shared/ folder must lie beside the checkout")
    return SHARED_FIXTURES


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions run fastest on one thread, and many times slower on two when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
