"""Shared test set-up: offline hub settings and common fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def input_ids() -> torch.Tensor:
    return torch.randint(3, 64, (3, 7), generator=torch.Generator().manual_seed(0))
