"""`train.batching`: length-grouped or plain random batches, and what each costs in padding."""

from __future__ import annotations

import json
import random

from slmkit.config import TrainConfig, load_config
from slmkit.data import run_data_build
from slmkit.models.tokens import Encoded
from slmkit.train import run_train
from slmkit.train.batches import epoch_batches, padding_share, random_batches
from slmkit.train.resume import config_differences
from tests.conftest import write_project


def rows(lengths: list[int]) -> list[Encoded]:
    return [Encoded(input_ids=[1] * n, labels=[1] * n, truncated=False) for n in lengths]


def test_padding_share_counts_the_pad_positions_of_each_batch():
    examples = rows([2, 4, 3, 3])
    # [2, 4] pads to 8 positions (2 of padding); [3, 3] needs none: 2 of 14.
    assert padding_share(examples, [[0, 1], [2, 3]]) == 2 / 14
    assert padding_share(examples, [[0], [1], [2], [3]]) == 0.0


def test_random_batches_cover_every_example_once_in_a_new_order_each_epoch():
    batches = random_batches(50, 8, seed=3, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(50))
    assert [len(b) for b in batches] == [8] * 6 + [2]
    assert batches == random_batches(50, 8, seed=3, epoch=0)
    assert batches != random_batches(50, 8, seed=3, epoch=1)
    assert batches != random_batches(50, 8, seed=4, epoch=0)


def test_length_grouped_batches_pad_far_less_than_random_ones():
    lengths = [random.Random(i).randint(20, 400) for i in range(256)]
    examples = rows(lengths)
    grouped = epoch_batches(examples, 8, "length_grouped", seed=1, epoch=0)
    shuffled = epoch_batches(examples, 8, "random", seed=1, epoch=0)
    assert sorted(i for b in grouped for i in b) == sorted(i for b in shuffled for i in b) == list(range(256))
    assert padding_share(examples, grouped) < padding_share(examples, shuffled) / 4


def test_a_run_recorded_before_a_train_setting_existed_still_resumes():
    current = {"train": TrainConfig().model_dump(mode="json")}
    older = {"train": {k: v for k, v in current["train"].items() if k != "batching"}}
    assert config_differences(older, current) == []
    older["train"]["batching"] = "random"
    assert config_differences(older, current) == ["train.batching: 'random' in the run, 'length_grouped' now"]


def test_a_run_with_random_batches_trains_and_records_its_padding(tmp_path, tiny_model_dir):
    shares = {}
    for batching in ("length_grouped", "random"):
        project = write_project(
            tmp_path / batching,
            tiny_model_dir,
            overrides={
                "train.max_steps": 2,
                "train.batch_size": 8,
                "train.eval_every": 2,
                "train.threads": 1,
                "train.batching": batching,
            },
        )
        config = load_config(project)
        run_data_build(config)
        result = run_train(config, progress=False, log=lambda _: None)
        recorded = json.loads((result.run_dir / "run.json").read_text())["metrics"]
        assert recorded["batching"] == batching and recorded["steps"] == 2
        shares[batching] = recorded["padding_share"]
    assert 0 <= shares["length_grouped"] < shares["random"] < 1
