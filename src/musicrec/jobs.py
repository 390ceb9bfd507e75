"""Background jobs: training (and federated runs) in worker processes, never in a request.

A dispatcher thread (in the API process, or ``musicrec worker``) claims queued jobs from the
database and starts one worker process per job, at most ``worker_pool_size`` at a time. A
worker is ``python -m musicrec.jobs run JOB_ID``: it reports progress into the jobs table,
checks for cancellation at every report, and publishes its model through the registry.

Thread limits: each worker gets ``threads_per_job`` BLAS/OpenMP threads, so two jobs on two
cores leave the serving path room. A worker that dies (even by SIGKILL) is noticed by the
dispatcher; a dispatcher that dies leaves ``running`` rows that the next start marks failed
('interrupted'), and queued jobs are resumed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicrec.config import Settings, get_settings
from musicrec.data.encoding import DEFAULT_CONFIDENCE, encode_interactions
from musicrec.errors import ConflictError, MusicrecError
from musicrec.models.als import validate_als_params
from musicrec.store import Store, open_store
from musicrec.store.jobs import JobRecord
from musicrec.store.registry import ModelRecord
from musicrec.training import ModelSpec, compare_models, train_bundle

CANCEL_GRACE_SECONDS = 10.0
_REPORT_INTERVAL = 0.5


class JobCancelled(Exception):
    """Raised inside a worker when the job was cancelled."""


def worker_environment(settings: Settings) -> dict[str, str]:
    """A worker's environment: the dispatcher's settings, and thread limits for numeric code."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        key = f"MUSICREC_{name.upper()}"
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    threads = str(settings.threads_per_job)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = threads
    return env


# -- the worker side ------------------------------------------------------------------------


class JobReporter:
    """Progress reports into the jobs table, throttled, raising JobCancelled when asked."""

    def __init__(self, store: Store, job: JobRecord, settings: Settings) -> None:
        self.store, self.job, self.settings = store, job, settings
        self._last = 0.0

    def __call__(self, progress: float, message: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < _REPORT_INTERVAL:
            return
        self._last = now
        if self.store.jobs.report(self.job.id, progress, message):
            raise JobCancelled(message)

    def stage(self, name: str) -> None:
        """Fault injection for crash tests: pause at a named stage when configured."""
        pause = self.settings.fault_pause_at
        if pause and pause.split(":")[0] == name:
            self(self.job.progress, f"paused at {name}", force=True)
            time.sleep(float(pause.split(":")[1]))


def run_train_job(store: Store, job: JobRecord, report: JobReporter, settings: Settings) -> None:
    """Train the job's model from its dataset, evaluate it, publish it."""
    params = job.params
    model_id = job.model_id
    if model_id is None:
        raise MusicrecError("training job has no model")
    store.registry.mark_training(model_id)
    report(0.02, f"reading dataset {params['dataset']}", force=True)
    data = encode_interactions(store.datasets.read_table(params["dataset"]))
    model_type = params["model_type"]
    model_params = params.get("model_params", {})
    confidence = params.get("confidence", DEFAULT_CONFIDENCE)
    metrics = None
    if params.get("evaluate", True):
        report(0.1, "evaluating on a per-user holdout", force=True)
        spec = ModelSpec(model_type, model_type, model_params, confidence)
        evaluation = compare_models(
            data, [spec], seed=settings.seed, threads=settings.threads_per_job
        )
        metrics = {**evaluation["models"][model_type], "split": evaluation["split"]}
    start, span = (0.4, 0.5) if metrics is not None else (0.1, 0.8)

    def on_iteration(done: int, total: int) -> None:
        report(
            start + span * done / max(1, total), f"iteration {done}/{total}", force=done == total
        )
        if done == 1:
            report.stage("training")

    report(start, "training", force=True)
    bundle = train_bundle(
        data,
        model_type,
        model_params,
        confidence,
        on_iteration,
        fingerprint=store.datasets.get(params["dataset"]).fingerprint,
        threads=settings.threads_per_job,
    )
    bundle.meta["dataset"] = params["dataset"]
    report(0.92, "writing artifact", force=True)
    store.registry.publish(model_id, bundle, metrics, before_commit=lambda: _commit_check(report))


def _commit_check(report: JobReporter) -> None:
    report.stage("artifact-write")
    report(0.97, "committing artifact", force=True)  # raises if cancelled or taken over


def run_federate_job(store: Store, job: JobRecord, report: JobReporter, settings: Settings) -> None:
    """A federated fine-tuning run on Flower's simulation engine, published as a new model."""
    # Imported here: Flower and Ray are heavy and only federated jobs need them.
    from musicrec.federated.config import config_from_mapping
    from musicrec.federated.runs import run_and_publish

    params = job.params
    if job.model_id is None:
        raise MusicrecError("federated job has no model")
    config = config_from_mapping(params["config"])
    report(0.02, f"preparing dataset {params['dataset']} for the clients", force=True)

    def on_round(done: int, total: int, row: dict[str, Any]) -> None:
        recall = row.get("recall@10")
        quality = f", recall@10 {recall:.4f}" if recall is not None else ""
        report(0.05 + 0.85 * done / max(1, total), f"round {done}/{total}{quality}", force=True)

    run_and_publish(
        store,
        config,
        params["partition"],
        job.model_id,
        dataset=params["dataset"],
        on_round=on_round,
        before_commit=lambda: _commit_check(report),
    )


JOB_KINDS = {"train": run_train_job, "federate": run_federate_job}


def run_job(job_id: str, settings: Settings | None = None) -> int:
    """Worker entry point: run one claimed job to its end. Returns the process exit code."""
    settings = settings or get_settings()
    store = open_store(settings.database_url, settings.artifact_dir, migrate=False)
    job = store.jobs.get(job_id)
    if job.status != "running":
        return 0
    report = JobReporter(store, job, settings)
    try:
        JOB_KINDS[job.kind](store, job, report, settings)
    except JobCancelled:
        store.jobs.finish(job_id, "cancelled", "cancelled", error="cancelled")
        return 0
    except MusicrecError as exc:
        store.jobs.finish(job_id, "failed", "failed", error=str(exc))
        return 1
    except Exception as exc:  # a bug: keep the trace in the job for whoever reads it
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        store.jobs.finish(job_id, "failed", "failed", error=f"internal error: {detail}")
        traceback.print_exc()
        return 1
    store.jobs.finish(job_id, "succeeded", "done")
    return 0


# -- the dispatcher side --------------------------------------------------------------------


@dataclass
class _Worker:
    job_id: str
    process: subprocess.Popen[bytes]
    cancel_seen_at: float | None = None


@dataclass
class JobRunner:
    """Claims queued jobs and runs each in a worker process; survives worker deaths."""

    store: Store
    settings: Settings
    workers: dict[str, _Worker] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Recover after a crash, then dispatch in a background thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="musicrec-jobs", daemon=True)
        self._thread.start()

    def recover(self) -> list[JobRecord]:
        interrupted = self.store.jobs.recover_interrupted()
        for job in interrupted:
            _kill_stale_worker(job.worker_pid)
        self.store.registry.remove_orphan_artifacts()
        return interrupted

    def stop(self, timeout: float = 10.0) -> None:
        """Stop dispatching; running workers are terminated and their jobs marked failed."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in list(self.workers.values()):
            worker.process.terminate()
        for worker in list(self.workers.values()):
            try:
                worker.process.wait(timeout)
            except subprocess.TimeoutExpired:
                worker.process.kill()
            self.store.jobs.finish(
                worker.job_id, "failed", "interrupted", error="interrupted: the service shut down"
            )
        self.workers.clear()

    def submit_train(
        self,
        dataset: str,
        name: str,
        model_type: str = "als",
        model_params: dict[str, Any] | None = None,
        confidence: str = DEFAULT_CONFIDENCE,
        evaluate: bool = True,
    ) -> tuple[JobRecord, ModelRecord]:
        """Queue a training job; returns the job and the model row it will fill."""
        info = self.store.datasets.get(dataset)
        params = validate_als_params(model_params or {}) if model_type == "als" else {}
        model = self.store.registry.create(
            name,
            model_type,
            params,
            dataset_id=info.id,
            info={"dataset": dataset, "confidence": confidence},
        )
        job = self.store.jobs.create(
            "train",
            {
                "dataset": dataset,
                "model_type": model_type,
                "model_params": params,
                "confidence": confidence,
                "evaluate": evaluate,
            },
            model_id=model.id,
        )
        self._wake.set()
        return job, model

    def submit_federate(
        self,
        dataset: str,
        name: str,
        config: dict[str, Any],
        partition: str,
        base_model_id: str | None,
    ) -> tuple[JobRecord, ModelRecord, list[str]]:
        """Queue a federated run; validates everything a worker would reject, before queueing.

        Returns the job, the model row and warnings the caller should show at once (a DP
        budget whose noise will swamp the updates)."""
        from musicrec.federated.config import config_from_mapping
        from musicrec.federated.data import parse_partition
        from musicrec.federated.privacy import plan_dp
        from musicrec.federated.runs import create_federated_model

        info = self.store.datasets.get(dataset)
        federated = config_from_mapping({**config, "data_path": f"dataset:{dataset}"}).validate()
        n_clients = parse_partition(partition, info.users)
        if base_model_id:
            base = self.store.registry.get(base_model_id)
            if base.status != "ready" or base.type != "als":
                raise ConflictError(
                    f"base model {base_model_id!r} is a {base.status} {base.type} model; "
                    "federated fine-tuning needs a ready ALS model"
                )
            federated.factors = int((base.params or {}).get("factors", federated.factors))
        warning = plan_dp(federated, n_clients, info.songs, federated.factors).warning(
            federated.dp_epsilon
        )
        model = create_federated_model(
            self.store, name, federated, partition, base_model_id, dataset
        )
        job = self.store.jobs.create(
            "federate",
            {
                "dataset": dataset,
                "partition": partition,
                "base_model_id": base_model_id,
                "config": {k: v for k, v in config.items() if k != "data_path"},
            },
            model_id=model.id,
        )
        self._wake.set()
        return job, model, [warning] if warning else []

    def cancel(self, job_id: str) -> JobRecord:
        job = self.store.jobs.request_cancel(job_id)
        self._wake.set()
        return job

    def wait(self, job_id: str, timeout: float = 600.0) -> JobRecord:
        """Block until the job finishes (tests and the CLI); raises ConflictError on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.store.jobs.get(job_id)
            if job.status in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.1)
        raise ConflictError(f"job {job_id} did not finish within {timeout:.0f} s")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive a database hiccup
                traceback.print_exc()
            self._wake.wait(self.settings.job_poll_seconds)
            self._wake.clear()

    def tick(self) -> None:
        """One round: reap finished workers, enforce cancels, start queued jobs."""
        for job_id, worker in list(self.workers.items()):
            code = worker.process.poll()
            if code is not None:
                del self.workers[job_id]
                if code != 0:
                    reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
                    self.store.jobs.finish(job_id, "failed", "failed", error=f"worker {reason}")
                else:  # exit 0 without finishing the row: treat as failure, never 'running'
                    self.store.jobs.finish(job_id, "failed", "failed", error="worker stopped early")
                continue
            if self.store.jobs.get(job_id).cancel_requested:
                worker.cancel_seen_at = worker.cancel_seen_at or time.monotonic()
                if time.monotonic() - worker.cancel_seen_at > CANCEL_GRACE_SECONDS:
                    worker.process.kill()
                    worker.process.wait()
                    del self.workers[job_id]
                    self.store.jobs.finish(job_id, "cancelled", "cancelled", error="cancelled")
        while len(self.workers) < self.settings.worker_pool_size:
            job = self.store.jobs.claim_next()
            if job is None:
                break
            process = subprocess.Popen(
                [sys.executable, "-m", "musicrec.jobs", "run", job.id],
                env=worker_environment(self.settings),
                stdin=subprocess.DEVNULL,
            )
            self.store.jobs.set_worker(job.id, process.pid)
            self.workers[job.id] = _Worker(job.id, process)


def _kill_stale_worker(pid: int | None) -> None:
    """Kill a worker orphaned by a crashed dispatcher, if it is still one of ours."""
    if not pid:
        return
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        if b"musicrec.jobs" in cmdline.read_bytes():
            os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass


def serve_workers(settings: Settings | None = None) -> None:  # pragma: no cover - subprocess
    """Run the dispatcher in the foreground (``python -m musicrec.jobs dispatch``)."""
    settings = settings or get_settings()
    store = open_store(settings.database_url, settings.artifact_dir)
    runner = JobRunner(store, settings)
    runner.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "run":
        return run_job(argv[1])
    if argv == ["dispatch"]:
        serve_workers()
        return 0
    print("usage: python -m musicrec.jobs run JOB_ID | dispatch", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
