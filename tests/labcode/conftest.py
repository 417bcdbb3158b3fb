"""Fixtures shared by labcode's tests."""
import os
from pathlib import Path

import pytest

from labcode.tokenizer import R50K_CACHE_NAME

REPO_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "tiktoken"


@pytest.fixture
def gpt2_env(monkeypatch):
    """GPT-2's encoding where `make setup` put it; the test skips, saying so, where it is absent."""
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(REPO_CACHE))
    if not (Path(os.environ["TIKTOKEN_CACHE_DIR"]) / R50K_CACHE_NAME).is_file():
        pytest.skip("GPT-2 encoding not installed (run `make setup`)")
