"""Data-parallel training across processes: `accelerate launch slmkit train` (DDP semantics).

Every process holds the whole model and takes its share of the rows of each micro-batch
(rows rank, rank + world, ...). Gradients are summed across processes before each optimizer
step, and the loss is divided by the answer tokens of the *whole* step, so one optimizer step
sees exactly the gradient a single process computes on the same rows: the runs agree to
floating-point summation order. The same holds for validation loss, so early stopping takes
the same decision everywhere.

Why not wrap the model in DistributedDataParallel: the answer loss calls the decoder and the
output head directly (it projects only the labelled positions), which bypasses the wrapper's
forward hooks. One flat all-reduce per optimizer step of the trainable weights is what DDP's
bucketing would do anyway, and for LoRA those weights are a few MB.

The process group comes from accelerate (`PartialState`), which reads the variables that
`accelerate launch` (or torchrun) sets: gloo on CPUs, NCCL when the processes train on GPUs
(`train.device`), each on the GPU of its local rank. Only the
main process writes: the run folder, checkpoints, metrics, the registry record, the adapter.
LoRA dropout draws its masks per process, and bf16 rounds each batch layout differently, so
runs agree to float32 rounding only with dropout off and `precision: fp32`; otherwise they
agree in distribution. Under `--use_fsdp` the weights are sharded too (slmkit.train.sharded);
DeepSpeed launches are refused with a clear error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from slmkit.errors import StageError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when launched alone)."""

    rank: int = 0
    size: int = 1
    sharded: bool = False  # FSDP: each process holds a slice of every weight (slmkit.train.sharded)
    device: str = "cpu"  # where this process computes: cpu or cuda:N

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @classmethod
    def from_env(cls, device: str = "auto") -> World:
        """Join the process group `accelerate launch` / torchrun described in the environment, if any.

        `device` is `train.device`: the process trains on the GPU of its local rank when it may
        and one is there, else on the CPU.
        """
        from slmkit.models.device import pick_device

        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls(device=pick_device(device))
        if _flag("ACCELERATE_USE_DEEPSPEED"):
            raise StageError(
                "slmkit train does not run under DeepSpeed: accelerate was launched with deepspeed",
                hint="shard with FSDP instead (`accelerate launch --use_fsdp --num_processes N -m slmkit train`), "
                "or train data-parallel (`--multi_gpu`)",
            )
        from accelerate import PartialState

        chosen = pick_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        # On CPUs the group is gloo's (MPI where torch was built with it); on GPUs accelerate
        # takes NCCL and makes the local rank's GPU this process's current device.
        state = PartialState(cpu=chosen == "cpu")
        if chosen != "cpu":
            chosen = str(state.device)
        return cls(state.process_index, state.num_processes, sharded=_flag("ACCELERATE_USE_FSDP"), device=chosen)

    def shard(self, rows: Sequence[T]) -> list[T]:
        """This process's rows of a batch: every `size`-th, from `rank` (possibly none)."""
        return list(rows[self.rank :: self.size])

    def sum_gradients(self, params: Sequence[Any]) -> None:
        """Sum the gradients of `params` over all processes, in place (missing ones count as zero)."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for param, grad in zip(params, grads, strict=True):
            n = grad.numel()
            param.grad = flat[offset : offset + n].view_as(grad).to(grad.dtype)
            offset += n

    def sum(self, *values: float) -> list[float]:
        """Scalars summed over all processes."""
        if not self.distributed:
            return list(values)
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)  # NCCL reduces GPU tensors only
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return [float(v) for v in tensor]

    def share(self, value: T) -> T:
        """The main process's `value`, on every process (a run id, say)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[no-any-return]

    def same_weights(self, params: Sequence[Any]) -> None:
        """Copy the main process's values of `params` to every process (identical starting points)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        for param in params:
            dist.broadcast(param.data, src=0)

    def wait(self) -> None:
        """Every process reaches this point before any goes on."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true")
