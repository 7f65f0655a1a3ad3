"""Early stopping, the loss curve, the progress bar and the optional metric loggers of a training run."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET

import pytest
import torch
import yaml
from safetensors.torch import load_file

from slmkit.charts import line_chart
from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.train import run_train
from tests.conftest import read_jsonl
from tests.test_cli import run_cli

SVG = "{http://www.w3.org/2000/svg}"


def set_train(project, **settings):
    config = yaml.safe_load((project / "slmkit.yaml").read_text())
    config["train"].update(settings)
    (project / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_early_stopping_keeps_the_best_adapter_and_plots_the_run(tiny_project, capsys):
    # A learning rate far too high: validation loss soon stops improving, and the run must stop.
    set_train(tiny_project, learning_rate=0.9, warmup_ratio=0.0, max_steps=30, eval_every=1, early_stopping_patience=2)
    config = load_config(tiny_project)
    run_data_build(config)
    lines: list[str] = []
    result = run_train(config, progress=True, log=lines.append)
    m = result.metrics

    assert m["stopped_early"] is True and m["steps"] < 30
    assert m["steps"] == m["best_step"] + 2, "two validations without a new best, then stop"
    records = read_jsonl(result.run_dir / "metrics.jsonl")
    val = {r["step"]: r["val_loss"] for r in records if "val_loss" in r}
    assert min(val.values()) == pytest.approx(m["best_val_loss"], abs=1e-5) and val[m["best_step"]] == min(val.values())
    stop_line = next(line for line in lines if line.startswith("early stopping"))
    assert f"at step {m['steps']} (" in stop_line and f"keeping the adapter of step {m['best_step']}" in stop_line
    assert "(paired over the rows) from the best" in stop_line  # the evidence: the latest against the best
    assert m["early_stopping"]["decision"] == stop_line

    # The saved adapter holds the best step's weights, not the last step's.
    adapter = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    last = load_file(str(result.run_dir / "checkpoints" / "last" / "weights.safetensors"))
    best_file = result.run_dir / "checkpoints" / "last" / "best.safetensors"
    best = load_file(str(best_file)) if best_file.exists() else last
    by_adapter_name = {k.replace(".default", ""): v for k, v in best.items()}
    assert all(torch.equal(adapter[k], by_adapter_name[k]) for k in adapter)
    if m["best_step"] != m["steps"]:
        assert any(not torch.equal(by_adapter_name[k], last[k2]) for k2 in last for k in [k2.replace(".default", "")])

    # The bar shows loss, tokens/s and an ETA.
    err = capsys.readouterr().err
    assert "ETA" in err and "tok_s=" in err and "loss=" in err

    # loss.svg: a train line with a point per step, validation points, and the best step marked.
    svg = ET.parse(result.run_dir / "loss.svg").getroot()
    lines_by_series = {p.get("class"): p for p in svg.iter(f"{SVG}polyline")}
    assert len(lines_by_series["s-train"].get("points", "").split()) == m["steps"]
    assert len(lines_by_series["s-validation"].get("points", "").split()) == len(val)
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert f"best: step {m['best_step']}" in texts


def test_line_chart_draws_each_series_and_skips_missing_points():
    svg = line_chart(
        "c",
        "a <title>",
        [("train", [(1, 2.0), (2, float("nan")), (3, 1.0)]), ("validation", [])],
        marks=[(3, "best")],
        x_label="step",
    )
    root = ET.fromstring(svg)  # well-formed, escaped
    (train,) = root.iter(f"{SVG}polyline")
    assert len(train.get("points", "").split()) == 2 and train.get("stroke") == "#0072B2"
    assert root.find(f"{SVG}title").text == "a <title>"
    assert svg == line_chart(
        "c", "a <title>", [("train", [(1, 2.0), (3, 1.0)]), ("validation", [])], marks=[(3, "best")], x_label="step"
    )


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_listed_logger_that_is_not_installed_stops_the_run_before_any_work(tiny_project, capsys):
    set_train(tiny_project, loggers=["wandb"])
    code, _, err = run_cli(capsys, "train", "-p", str(tiny_project), "-q")
    assert code == 2
    assert "train.loggers: wandb is listed but not installed" in err and "pip install wandb" in err
    assert not (tiny_project / ".slmkit" / "runs").exists(), "nothing may start before the check"


def test_tensorboard_receives_the_metrics_jsonl_records(tiny_project):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    set_train(tiny_project, loggers=["tensorboard"])
    config = load_config(tiny_project)
    run_data_build(config)
    result = run_train(config, progress=False)
    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    records = read_jsonl(result.run_dir / "metrics.jsonl")
    assert [(e.step, round(e.value, 5)) for e in events.Scalars("loss")] == [
        (r["step"], pytest.approx(r["loss"], abs=1e-5)) for r in records if "loss" in r
    ]
    assert [e.step for e in events.Scalars("val_loss")] == [r["step"] for r in records if "val_loss" in r]


def test_mlflow_receives_the_metrics_jsonl_records_in_the_run_folder(tiny_project, monkeypatch):
    pytest.importorskip("mlflow", reason="the MLflow logger is tested where the dev extras installed mlflow-skinny")
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    set_train(tiny_project, loggers=["mlflow"])
    config = load_config(tiny_project)
    run_data_build(config)
    result = run_train(config, progress=False)

    client = MlflowClient(tracking_uri=f"sqlite:///{tiny_project / '.slmkit' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("slmkit-training")
    assert experiment.artifact_location.startswith((tiny_project / ".slmkit").resolve().as_uri())
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == result.run_id and run.info.status == "FINISHED"
    records = read_jsonl(result.run_dir / "metrics.jsonl")
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [(m.step, round(m.value, 5)) for m in history] == [
        (r["step"], pytest.approx(r["val_loss"], abs=1e-5)) for r in records if "val_loss" in r
    ]
    assert run.data.params["train.max_steps"] == "6"
