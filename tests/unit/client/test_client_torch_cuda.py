"""The real CUDA path of the PyTorch integration; runs only where torch and a GPU are present."""

from __future__ import annotations

from typing import Any

import pytest

torch: Any = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

from gpulane_client.grouping import Grouping  # noqa: E402
from gpulane_client.torch import Where, pipeline  # noqa: E402


def _net() -> Any:
    nn = torch.nn
    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.BatchNorm1d(512), nn.Linear(512, 10))


@pytest.mark.parametrize("grouping", list(Grouping))
def test_offload_prefetch_round_trip_keeps_outputs_identical(grouping: Grouping) -> None:
    model = _net().cuda().eval()
    x = torch.randn(32, 256, device="cuda")
    expected = model(x).detach().clone()
    swapper, plan = pipeline(model, grouping=grouping)
    swapper.offload()
    assert all(p.device.type == "cpu" and p.is_pinned() for p in model.parameters())
    swapper.prefetch()
    out = model(x)
    torch.cuda.synchronize()
    assert swapper.where == (Where.RESIDENT,) * len(plan.groups)
    assert torch.equal(out, expected)
