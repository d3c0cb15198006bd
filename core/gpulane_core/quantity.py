"""Parse and format memory sizes and bandwidths as people write them ("16Gi", "5G", "16GB/s").

Memory inside gpulane_core is always an integer number of MiB; bandwidth is bytes per second.
"""

from __future__ import annotations

import math
import re

MIB = 1024 * 1024

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]i|[kKMGTP]?)\s*$")
_BANDWIDTH = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMGT]?)(B|iB|bit)?/s\s*$")


class QuantityError(ValueError):
    """A size or bandwidth string that cannot be understood; the message says why."""


def parse_bytes(text: str | int | float) -> int:
    """Kubernetes-style quantity ("3Gi", "512Mi", "2G", "1024") to bytes."""
    if isinstance(text, bool):
        raise QuantityError(f"{text!r} is not a size")
    if isinstance(text, int | float):
        if text < 0:
            raise QuantityError(f"{text} is negative")
        return int(text)
    m = _QUANTITY.match(text)
    if not m:
        raise QuantityError(f"{text!r} is not a size (use e.g. 512Mi, 16Gi, 2G)")
    number, suffix = float(m.group(1)), m.group(2)
    factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return round(number * factor)


def parse_mib(text: str | int | float) -> int:
    """A quantity rounded up to whole MiB. A bare number is read as MiB, not bytes."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise QuantityError(f"{text} is negative")
        return math.ceil(text)
    if isinstance(text, str) and re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*", text):
        return math.ceil(float(text))
    return math.ceil(parse_bytes(text) / MIB)


def parse_bandwidth(text: str | float) -> float:
    """"16GB/s", "12.5GiB/s", "100Gbit/s" or a number (bytes/s) to bytes per second."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text <= 0:
            raise QuantityError(f"bandwidth {text} must be positive")
        return float(text)
    m = _BANDWIDTH.match(str(text))
    if not m:
        raise QuantityError(f"{text!r} is not a bandwidth (use e.g. 16GB/s, 12GiB/s)")
    number, prefix, unit = float(m.group(1)), m.group(2), m.group(3) or "B"
    if unit == "iB":
        factor = float(_BINARY[prefix.upper() + "i"]) if prefix else 1.0
    else:
        factor = float(_DECIMAL[prefix])
    value = number * factor / (8 if unit == "bit" else 1)
    if value <= 0:
        raise QuantityError(f"bandwidth {text!r} must be positive")
    return value


def format_mib(mib: int) -> str:
    """MiB as the shortest exact Kubernetes quantity ("5Gi", "1536Mi")."""
    if mib % 1024 == 0 and mib != 0:
        return f"{mib // 1024}Gi"
    return f"{mib}Mi"
