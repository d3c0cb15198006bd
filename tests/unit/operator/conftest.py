from __future__ import annotations

import pytest
from opfakes import FakeKubeApi


@pytest.fixture
def api() -> FakeKubeApi:
    return FakeKubeApi()
