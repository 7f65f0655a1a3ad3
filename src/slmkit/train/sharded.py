"""Sharded data parallel: `accelerate launch --use_fsdp ... -m slmkit train` (PyTorch FSDP2).

Under plain data parallel (slmkit.train.distributed) every process holds the whole model. Here
each process holds 1/N of every weight, gradient and optimizer state, and gathers a layer's
weights only while that layer runs: the way to train a model too large for one device.

How the answer loss fits in: FSDP gathers a module's weights in hooks around that module's
forward. The loss calls the decoder and the output head directly (it projects only labelled
positions), so the loss itself becomes the root module: `AnswerLoss.forward(batch)`. Its own
weights (embeddings, final norm, output head) are gathered for the whole step; each decoder
layer is its own unit, gathered for its forward and again for its backward. The shared-prefix
saving is off here: running a layer twice per step (prefix, then rows) is not worth a second
gather of its weights.

The arithmetic is the data-parallel one: each process sums the loss of its rows, divides by
the answer tokens of the whole step, and the gradients are *summed* across processes (FSDP's
default averages; the divide factor is set to 1), so a step equals a single process's step on
the same rows, to floating-point summation order.

Whole weights are needed in three places, all collective (every process calls them at the same
point): the best-so-far copy and the checkpoint (gathered to the main process, on the CPU), and
the end of the run, where the main process loads them into an ordinary model to check drift
and save the adapter. A resumed run reads the checkpoint in every process (a shared filesystem,
as the run folder already is) and each keeps its own shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slmkit.errors import StageError
from slmkit.models.device import device_type
from slmkit.train.distributed import World
from slmkit.train.loss import answer_loss

PREFIX = "model."  # the root module holds the model as `model`


@dataclass
class Sharding:
    """The FSDP root over a trainable model, and the collective operations the loop needs."""

    root: Any
    world: World

    def loss(self, batch: dict[str, Any]) -> tuple[Any, int]:
        return self.root(batch)  # type: ignore[no-any-return]

    def capture(self) -> dict[str, Any]:
        """The whole trainable weights, on the CPU, in the main process ({} in the others)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        trainable = {n for n, p in self.root.named_parameters() if p.requires_grad}
        full = get_model_state_dict(self.root, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {n.removeprefix(PREFIX): t for n, t in full.items() if n in trainable}

    def restore(self, weights: dict[str, Any], *, everywhere: bool = False) -> None:
        """Set the trainable weights from the main process's `weights` (or each process's own copy)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        options = StateDictOptions(full_state_dict=True, strict=False, broadcast_from_rank0=not everywhere)
        state = {PREFIX + n: t for n, t in weights.items()} if everywhere or self.world.is_main else {}
        set_model_state_dict(self.root, state, options=options)

    def optimizer_state(self, optimizer: Any) -> dict[str, Any]:
        """The optimizer's whole state, keyed by weight name, in the main process."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(self.root, optimizer, options=options)  # type: ignore[no-any-return]

    def load_optimizer_state(self, optimizer: Any, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(self.root, optimizer, optim_state_dict=state, options=options)


def shard(model: Any, world: World, method: str) -> Sharding:
    """Shard every decoder layer and the rest of the model across the processes of `world`."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if method == "qlora":
        raise StageError(
            "QLoRA cannot be sharded with FSDP here: its 4-bit weights are bitsandbytes tensors FSDP does not split",
            hint="train qlora data-parallel (`accelerate launch --multi_gpu`), or lora under FSDP",
        )

    class AnswerLoss(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.model = inner

        def forward(self, batch: dict[str, Any]) -> tuple[Any, int]:
            return answer_loss(self.model, batch)

    # Identical starting weights everywhere (LoRA's random init included) before each process
    # keeps its slice of them.
    world.same_weights([p for p in model.parameters() if p.requires_grad])
    mesh = init_device_mesh(device_type(world.device), (world.size,))
    layers = _decoder_layers(model)
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    root = AnswerLoss(model)
    fully_shard(root, mesh=mesh)
    for module in root.modules():
        if isinstance(module, FSDPModule):
            # Summed, as the loss is already divided by the step's tokens; plain SUM collectives
            # (gloo has no pre-scaled sum).
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    return Sharding(root, world)


def _decoder_layers(model: Any) -> list[Any]:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(getattr(inner, "model", None), "layers", None)
    if layers is None:
        raise StageError(
            f"cannot find the decoder layers of {type(inner).__name__} to shard them",
            hint="train data-parallel (`accelerate launch --multi_gpu`) instead of FSDP",
        )
    return list(layers)
