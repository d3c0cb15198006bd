"""Device selectors: real CEL (cel-python) over the attributes the node agent publishes per GPU."""

from __future__ import annotations

import pytest
from gpulane_core.model import Gpu
from gpulane_operator.selectors import SelectorCache, SelectorError, compile_selectors

GPUS = (Gpu(0, "GPU-aaa", "A100", 16384), Gpu(1, "GPU-bbb", "T4", 16384), Gpu(2, "GPU-ccc", "A100", 16384))
ATTR = 'device.attributes["gpu.gpulane.dev"]'


@pytest.mark.parametrize(
    ("expressions", "eligible"),
    [
        ([f'{ATTR}.model == "A100"'], {"GPU-aaa", "GPU-ccc"}),
        ([f'{ATTR}.model == "A100"', f"{ATTR}.index > 0"], {"GPU-ccc"}),
        ([f'{ATTR}["uuid"].startsWith("GPU-b")'], {"GPU-bbb"}),
        (['device.driver == "gpu.gpulane.dev"'], {"GPU-aaa", "GPU-bbb", "GPU-ccc"}),
        ([f'{ATTR}.model in ["H100"]'], set()),
    ],
)
def test_selectors_pick_gpus_by_their_attributes(expressions: list[str], eligible: set[str]) -> None:
    assert compile_selectors(expressions).eligible(GPUS) == eligible
    assert SelectorCache().eligible(tuple(expressions), GPUS) == eligible


def test_an_unknown_attribute_is_named_with_the_known_ones() -> None:
    with pytest.raises(SelectorError) as err:
        compile_selectors(['device.driver != ""', f'{ATTR}.memoryClass == "hbm"'])
    assert str(err.value) == (
        "spec.deviceSelectors[1] 'device.attributes[\"gpu.gpulane.dev\"].memoryClass == \"hbm\"': a gpu.gpulane.dev"
        ' device has no device.attributes["gpu.gpulane.dev"].memoryClass (known: device.driver,'
        ' device.attributes["gpu.gpulane.dev"].uuid, .model, .index)'
    )
    with pytest.raises(SelectorError, match=r'no device.attributes\["nvidia.com"\]'):
        compile_selectors(['device.attributes["nvidia.com"].model == "x"'])
    with pytest.raises(SelectorError, match=r"no device.vendor"):
        compile_selectors(['device.vendor == "x"'])


def test_invalid_cel_is_an_error_naming_the_selector() -> None:
    with pytest.raises(SelectorError, match=r"^spec.deviceSelectors\[0\] 'device.attributes\[': not a valid CEL"):
        compile_selectors(["device.attributes["])


def test_a_selector_that_fails_or_is_not_boolean_is_an_error() -> None:
    with pytest.raises(SelectorError, match="must be a boolean expression"):
        compile_selectors([f"{ATTR}.index + 1"]).eligible(GPUS)
    with pytest.raises(SelectorError, match="cannot be evaluated"):
        compile_selectors([f'{ATTR}.index == "one"']).eligible(GPUS)


def test_the_cache_remembers_errors_and_verdicts() -> None:
    cache = SelectorCache()
    for _ in range(2):
        with pytest.raises(SelectorError):
            cache.eligible(("device.attributes[",), GPUS)
    good = (f"{ATTR}.index == 1",)
    assert cache.eligible(good, GPUS) == cache.eligible(good, GPUS) == {"GPU-bbb"}
    assert len(cache.compiled) == 2 and len(cache.verdicts) == 3
