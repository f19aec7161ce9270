from __future__ import annotations

import pytest

from .helpers import HashingEmbedding, example_nodes


@pytest.fixture
def embed():
    return HashingEmbedding()


@pytest.fixture
def nodes():
    return example_nodes()
