"""Which float format the matmuls run in: bf16 where the hardware computes it natively.

Weights and optimizer state stay float32; autocast runs the matmuls in bfloat16. On a CPU
with AMX or AVX512-BF16 (and on recent GPUs) that trains a LoRA adapter markedly faster
(see bench/); elsewhere bf16 is emulated and slower, so `auto` keeps float32.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from slmkit.config import Precision
from slmkit.models.device import device_type

_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def resolve_precision(requested: Precision, device: str = "cpu") -> Literal["fp32", "bf16"]:
    """`auto` -> bf16 when `device` computes it natively, else fp32; other values as given."""
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU advertises bf16 arithmetic (Linux reports it in /proc/cpuinfo)."""
    if not sys.platform.startswith("linux") or not cpuinfo.exists():
        return False
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return any(flag in flags for flag in _BF16_CPU_FLAGS)
    return False


def weights_dtype(requested: Precision, device: str = "cpu") -> str:
    """The torch dtype name to load weights in for generation ("bfloat16" or "float32")."""
    return "bfloat16" if resolve_precision(requested, device) == "bf16" else "float32"


@contextlib.contextmanager
def autocast(precision: Literal["fp32", "bf16"], device: str = "cpu") -> Iterator[None]:
    """Run the enclosed forward passes in `precision` (a no-op for fp32)."""
    if precision == "fp32":
        yield
        return
    import torch

    with torch.autocast(device_type=device_type(device), dtype=torch.bfloat16):
        yield
