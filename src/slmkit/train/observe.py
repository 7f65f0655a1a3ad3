"""Where a training run's numbers go: metrics.jsonl, the loss curve, and the loggers the user listed.

metrics.jsonl and `loss.svg` in the run folder are always written and stay on this machine.
TensorBoard, MLflow and W&B receive the same records, but only when listed in `train.loggers`;
a listed one that is not installed stops the run before any work, naming the package to install.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from slmkit.charts import line_chart
from slmkit.errors import ConfigError

# logger -> (module that must import, PyPI package that provides it)
_LOGGER_PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
}


def check_loggers(loggers: Sequence[str]) -> None:
    """Fail now, before any training, when a listed logger's package is missing."""
    missing = [name for name in loggers if importlib.util.find_spec(_LOGGER_PACKAGES[name][0]) is None]
    if missing:
        raise ConfigError(
            [
                f"train.loggers: {name} is listed but not installed; run `pip install {_LOGGER_PACKAGES[name][1]}` "
                f"or remove {name} from train.loggers"
                for name in missing
            ]
        )


class _Sink(Protocol):
    def log(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class MetricsLog:
    """Appends each record to metrics.jsonl and hands it to every listed logger.

    `keep_bytes` cuts metrics.jsonl back to where the resumed checkpoint left it, so the steps a
    killed run took after its last checkpoint are not written twice.
    """

    def __init__(
        self, run_dir: Path, loggers: Sequence[str], *, keep_bytes: int, first_step: int, params: dict[str, Any]
    ) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.file.truncate(keep_bytes)
        self.file.seek(keep_bytes)
        self.sinks: list[_Sink] = [_open_sink(name, run_dir, first_step, params) for name in loggers]

    def emit(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for sink in self.sinks:
            sink.log(record)

    def tell(self) -> int:
        """Bytes written so far (what a checkpoint taken now keeps on resume)."""
        return self.file.tell()

    def close(self) -> None:
        self.file.close()
        for sink in self.sinks:
            sink.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def write_loss_plot(run_dir: Path, best_step: int) -> Path:
    """`loss.svg`: training loss per step, validation loss per validation, the best step marked."""
    svg = loss_chart(run_dir / "metrics.jsonl", run_dir.name, best_step)
    path = run_dir / "loss.svg"
    tmp = path.with_suffix(".svg.tmp")
    tmp.write_text(svg + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def loss_chart(metrics_path: Path, run_id: str, best_step: int | None) -> str:
    """The loss curve of a run's metrics.jsonl as inline SVG (the run's loss.svg; the console draws it too)."""
    train: list[tuple[float, float]] = []
    val: list[tuple[float, float]] = []
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "loss" in record:
            train.append((record["step"], record["loss"]))
        if "val_loss" in record:
            val.append((record["step"], record["val_loss"]))
    return line_chart(
        "loss",
        f"Loss per optimizer step, run {run_id}",
        [("train", train), ("validation", val)],
        marks=[(best_step, f"best: step {best_step}")] if best_step is not None else [],
        x_label="optimizer step",
    )


def flat_params(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as `a.b.c` keys with scalar values (lists as text), as experiment trackers take them."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= flat_params(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = (
                value if isinstance(value, str | int | float | bool) or value is None else str(value)
            )
    return out


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items() if k != "step" and isinstance(v, int | float)}


def _open_sink(name: str, run_dir: Path, first_step: int, params: dict[str, Any]) -> _Sink:
    if name == "tensorboard":
        return _TensorBoard(run_dir, first_step)
    if name == "mlflow":
        return _MLflow(run_dir, params)
    return _WandB(run_dir, params)


class _TensorBoard:
    """Event files in `<run>/tensorboard/`; `tensorboard --logdir .slmkit/runs` shows every run."""

    def __init__(self, run_dir: Path, first_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops the events a killed run wrote after the checkpoint it resumes from.
        folder = run_dir / "tensorboard"
        self.writer = SummaryWriter(str(folder), purge_step=first_step if folder.exists() else None)

    def log(self, record: dict[str, Any]) -> None:
        for key, value in _numbers(record).items():
            self.writer.add_scalar(key, value, record["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _MLflow:
    """An MLflow run named after the slmkit run, in the project's `.slmkit/mlflow.db` unless MLFLOW_TRACKING_URI says.

    `mlflow ui --backend-store-uri sqlite:///.slmkit/mlflow.db` shows every run of the project
    (MLflow 3 refuses its old file store, so the local default is SQLite).
    """

    EXPERIMENT = "slmkit-training"

    def __init__(self, run_dir: Path, params: dict[str, Any]) -> None:
        # MLflow 3 reports usage to its makers unless told not to; slmkit sends nothing unasked.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        state_dir = run_dir.resolve().parent.parent  # <project>/.slmkit/runs/<run id>
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri(f"sqlite:///{state_dir / 'mlflow.db'}")
        if mlflow.get_experiment_by_name(self.EXPERIMENT) is None:
            # Artifacts beside the database, not in whatever directory slmkit was started from.
            mlflow.create_experiment(self.EXPERIMENT, artifact_location=(state_dir / "mlflow-artifacts").as_uri())
        mlflow.set_experiment(self.EXPERIMENT)
        self.mlflow = mlflow
        self.run = mlflow.start_run(run_name=run_dir.name)
        mlflow.log_params(params)

    def log(self, record: dict[str, Any]) -> None:
        self.mlflow.log_metrics(_numbers(record), step=record["step"])

    def close(self) -> None:
        self.mlflow.end_run()


class _WandB:
    """A W&B run with the slmkit run id (resumed with it); W&B's own settings (WANDB_MODE) decide where it goes."""

    def __init__(self, run_dir: Path, params: dict[str, Any]) -> None:
        import wandb

        self.run = wandb.init(id=run_dir.name, name=run_dir.name, resume="allow", config=params, dir=str(run_dir))

    def log(self, record: dict[str, Any]) -> None:
        self.run.log(_numbers(record), step=record["step"])

    def close(self) -> None:
        self.run.finish()
