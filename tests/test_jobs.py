"""Background jobs with real worker processes: progress, cancel, and crashes at bad moments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from musicrec import jobs as jobs_module
from musicrec.config import Settings
from musicrec.jobs import JobRunner, worker_environment
from musicrec.store import open_store

FAST = {"factors": 8, "iterations": 5}


def settings_for(database_url: str, tmp_path, **extra) -> Settings:
    return Settings(
        database_url=database_url,
        artifact_dir=tmp_path / "artifacts",
        job_poll_seconds=0.1,
        **extra,
    )


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def runner_factory(store, database_url, tmp_path, sample_csv):
    store.datasets.import_file("kkbox-sample", sample_csv)
    made = []

    def make(**extra) -> JobRunner:
        runner = JobRunner(store, settings_for(database_url, tmp_path, **extra))
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.stop()


def test_train_job_runs_in_a_worker_and_publishes(runner_factory, store):
    runner = runner_factory()
    runner.start()
    job, model = runner.submit_train("kkbox-sample", "first", "als", FAST)
    assert job.status == "queued" and model.status == "queued"
    seen_progress = set()
    deadline = time.monotonic() + 120
    while (current := store.jobs.get(job.id)).status in ("queued", "running"):
        seen_progress.add(round(current.progress, 2))
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert current.status == "succeeded", current.error
    assert current.progress == 1.0 and current.worker_pid != os.getpid()
    ready = store.registry.get(model.id)
    assert ready.status == "ready"
    assert ready.metrics["recall@10"] > 0 and "auc" in ready.metrics
    assert store.registry.load(model.id).model.n_songs == 5772
    assert len(seen_progress) >= 2  # progress moved while we watched


def test_failing_job_reports_the_reason(runner_factory, store):
    runner = runner_factory()
    runner.start()
    job, model = runner.submit_train("kkbox-sample", "doomed", "als", FAST)
    store.datasets.delete("kkbox-sample")  # the data disappears before the worker reads it
    finished = runner.wait(job.id, 120)
    assert finished.status == "failed" and "not found" in finished.error
    assert store.registry.get(model.id).status == "failed"


def test_cancel_a_running_job(runner_factory, store, monkeypatch):
    monkeypatch.setattr(jobs_module, "CANCEL_GRACE_SECONDS", 1.0)
    runner = runner_factory(fault_pause_at="training:60")
    runner.start()
    job, model = runner.submit_train("kkbox-sample", "cancel-me", "als", FAST)
    wait_for(lambda: store.jobs.get(job.id).message == "paused at training", what="pause")
    runner.cancel(job.id)
    finished = runner.wait(job.id, 60)
    assert finished.status == "cancelled"
    assert store.registry.get(model.id).status == "failed"


def ready_active_model(runner_factory, store):
    runner = runner_factory()
    runner.start()
    job, model = runner.submit_train("kkbox-sample", "before-crash", "als", FAST)
    assert runner.wait(job.id, 120).status == "succeeded"
    store.registry.set_active(model.id)
    runner.stop()
    return model.id


def test_worker_killed_mid_training(runner_factory, store):
    active = ready_active_model(runner_factory, store)
    runner = runner_factory(fault_pause_at="training:60")
    runner.start()
    job, model = runner.submit_train("kkbox-sample", "victim", "als", FAST)
    wait_for(lambda: store.jobs.get(job.id).message == "paused at training", what="pause")
    os.kill(store.jobs.get(job.id).worker_pid, signal.SIGKILL)
    finished = runner.wait(job.id, 30)
    assert finished.status == "failed" and "killed by signal 9" in finished.error
    assert store.registry.get(model.id).status == "failed"
    assert store.registry.active_id() == active
    assert store.registry.load(active).model.n_songs == 5772


def test_service_and_worker_killed_mid_artifact_write(
    runner_factory, store, database_url, tmp_path
):
    active = ready_active_model(runner_factory, store)
    settings = settings_for(database_url, tmp_path, fault_pause_at="artifact-write:60")
    dispatcher = subprocess.Popen(
        [sys.executable, "-m", "musicrec.jobs", "dispatch"], env=worker_environment(settings)
    )
    try:
        job, model = JobRunner(store, settings).submit_train("kkbox-sample", "victim", "als", FAST)
        wait_for(lambda: store.jobs.get(job.id).message == "paused at artifact-write", what="pause")
        artifact_dir = store.registry.artifact_dir
        half_written = [p for p in artifact_dir.iterdir() if p.name.startswith(".")]
        assert half_written, "the worker should be inside the artifact write"
        os.kill(store.jobs.get(job.id).worker_pid, signal.SIGKILL)
        dispatcher.kill()  # the whole service dies with it
    finally:
        dispatcher.kill()
        dispatcher.wait()

    # Restart: a new store and runner, as a new process would.
    reopened = open_store(database_url, settings.artifact_dir)
    restarted = JobRunner(reopened, settings_for(database_url, tmp_path))
    restarted.recover()
    after = reopened.jobs.get(job.id)
    assert after.status == "failed" and "interrupted" in after.error
    victim = reopened.registry.get(model.id)
    assert victim.status == "failed" and victim.artifact_path is None
    assert reopened.registry.active_id() == active
    assert reopened.registry.load(active).model.n_songs == 5772
    assert [m.id for m in reopened.registry.list_models() if m.status == "ready"] == [active]
    assert not [p for p in artifact_dir.iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in artifact_dir.iterdir()) == [active]
    reopened.close()
