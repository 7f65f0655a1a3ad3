"""Where training computes: a CUDA GPU when torch sees one (unless told otherwise), else the CPU."""

from __future__ import annotations

from slmkit.errors import ModelError


def pick_device(requested: str = "auto", local_rank: int = 0) -> str:
    """`cpu`, or `cuda:N` for this process (its local rank, among the GPUs torch sees).

    `auto` takes a GPU when there is one; `cuda` insists on one and says why it cannot.
    """
    if requested == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    if requested == "cuda":
        raise ModelError(
            "train.device is cuda, but torch sees no CUDA device",
            hint="install a CUDA build of torch on a machine with an NVIDIA GPU, or set train.device: auto",
        )
    return "cpu"


def device_type(device: str) -> str:
    """`cuda` for `cuda:1`: what torch.autocast and device meshes are keyed by."""
    return device.partition(":")[0]
