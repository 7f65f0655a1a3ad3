"""A retrain killed with SIGKILL at every stage, as real `slmkit retrain` processes: each run dies at
its point, the next one resumes where the record says, and nothing is ever half done (no dataset
without its manifest, no second run, no release the record does not know, production unmoved
until the release's own transaction)."""

from __future__ import annotations

from slmkit.registry import Registry
from slmkit.retrain.run import KILL_AFTER_ENV
from slmkit.train.checkpoint import KILL_AFTER_STEP_ENV, TEST_HOOKS_ENV
from tests.killwrite import run_killed
from tests.test_retrain import released, reviewed_project  # noqa: F401  (the fixtures)


def test_a_retrain_killed_at_each_stage_resumes_and_never_leaves_anything_half_done(released, monkeypatch):  # noqa: F811
    config = released
    name = config.task.name
    args = ["retrain", "-p", str(config.root), "--why", "test: killed at each stage", "-q"]

    def state() -> tuple[int | None, list[tuple[str | None, str]], list[str], int]:
        with Registry(config.state_dir) as registry:
            retrains = [(r.outcome, r.stage) for r in registry.list_retrains(name)]
            runs = [r.run_id for r in registry.list_runs(name)]
            return registry.aliases(name).get("production"), retrains, runs, len(registry.list_releases(name))

    with Registry(config.state_dir) as registry:
        datasets_before = len(registry.list_datasets(name))
    first_run = state()[2]

    def killed(writing: str | None = None, **env: str) -> None:
        for key in (TEST_HOOKS_ENV, KILL_AFTER_ENV, KILL_AFTER_STEP_ENV):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        done = run_killed(args, writing=writing, after_bytes=10)
        assert done.returncode == -9, done.stdout[-2000:] + done.stderr[-2000:]

    # 1. In the middle of the data build (its manifest half written): no dataset, no retrain record.
    killed(writing="manifest.json")
    assert state() == (1, [], first_run, 1)
    with Registry(config.state_dir) as registry:
        assert len(registry.list_datasets(name)) == datasets_before

    # 2. After the build, before its record: the next run builds the same dataset again.
    killed(**{TEST_HOOKS_ENV: "1", KILL_AFTER_ENV: "build"})
    assert state()[1] == []

    # 3. In the middle of training (after step 2): the record names the run, which stays unfinished.
    killed(**{TEST_HOOKS_ENV: "1", KILL_AFTER_STEP_ENV: "2"})
    production, retrains, runs, releases = state()
    assert (production, retrains, releases) == (1, [(None, "train")], 1)
    (new_run,) = [r for r in runs if r not in first_run]

    # 4. Resumed from its checkpoint and finished, then killed before the record moved on.
    killed(**{TEST_HOOKS_ENV: "1", KILL_AFTER_ENV: "train"})
    production, retrains, runs, _ = state()
    assert retrains == [(None, "train")] and runs == [*first_run, new_run]  # the same run, not a second one
    with Registry(config.state_dir) as registry:
        assert registry.find_run(new_run).status == "completed"

    # 5. In the middle of writing the eval report, then 6. after the evaluation was recorded.
    killed(writing="report.json")
    assert state()[1] == [(None, "eval")]
    killed(**{TEST_HOOKS_ENV: "1", KILL_AFTER_ENV: "eval"})
    assert state()[1] == [(None, "eval")]

    # 7. After the release's transaction, before the retrain's record: production moved once, to v2.
    killed(**{TEST_HOOKS_ENV: "1", KILL_AFTER_ENV: "release"})
    production, retrains, runs, releases = state()
    assert (production, retrains, releases) == (2, [(None, "release")], 2)

    # 8. The last run finds the release made from its run and only records it.
    for key in (TEST_HOOKS_ENV, KILL_AFTER_ENV, KILL_AFTER_STEP_ENV):
        monkeypatch.delenv(key, raising=False)
    done = run_killed(args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "was released from run" in done.stdout
    production, retrains, runs, releases = state()
    assert (production, retrains, runs, releases) == (2, [("released", "done")], [*first_run, new_run], 2)
    with Registry(config.state_dir) as registry:
        assert registry.get_release(name, 2).run_id == new_run
        assert len(registry.list_datasets(name)) == datasets_before + 1
        resumed = [e for e in registry.audit_log(name, limit=100) if e.action == "retrain_resume"]
        assert len(resumed) == 5 and {e.actor for e in resumed} == {"retrain"}
