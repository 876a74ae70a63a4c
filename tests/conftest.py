import os
from pathlib import Path

import pytest

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
