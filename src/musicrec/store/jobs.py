"""The jobs table: create, claim, report progress, finish, cancel, recover after a crash."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select, update

from musicrec.errors import ConflictError, NotFoundError
from musicrec.store.tables import as_utc, jobs, models

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
INTERRUPTED = "interrupted: the service stopped while the job ran"


@dataclass
class JobRecord:
    id: str
    kind: str
    status: str
    progress: float
    message: str | None
    params: dict[str, Any]
    model_id: str | None
    error: str | None
    cancel_requested: bool
    worker_pid: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


def _record(row: Any) -> JobRecord:
    fields = {k: getattr(row, k) for k in JobRecord.__dataclass_fields__}
    for key in ("created_at", "started_at", "finished_at", "updated_at"):
        fields[key] = as_utc(fields[key])
    return JobRecord(**fields)


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, kind: str, params: dict[str, Any], model_id: str | None = None) -> JobRecord:
        now = datetime.now(UTC)
        job_id = f"job_{uuid.uuid4().hex[:16]}"
        with self.engine.begin() as conn:
            conn.execute(
                insert(jobs).values(
                    id=job_id,
                    kind=kind,
                    status="queued",
                    progress=0.0,
                    message="queued",
                    params=params,
                    model_id=model_id,
                    cancel_requested=False,
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get(job_id)

    def get(self, job_id: str) -> JobRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"job {job_id!r} not found")
        return _record(row)

    def list_jobs(self, limit: int = 100, status: str | None = None) -> list[JobRecord]:
        query = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
        if status:
            query = query.where(jobs.c.status == status)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query).all()]

    def counts_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
        counts = dict.fromkeys(JOB_STATUSES, 0)
        counts.update({status: int(n) for status, n in rows})
        return counts

    def claim_next(self) -> JobRecord | None:
        """Atomically move the oldest queued job to running; None when the queue is empty."""
        with self.engine.connect() as conn:
            candidate = conn.execute(
                select(jobs.c.id)
                .where(jobs.c.status == "queued")
                .order_by(jobs.c.created_at)
                .limit(1)
            ).scalar()
        if candidate is None:
            return None
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(jobs)
                .where(and_(jobs.c.id == candidate, jobs.c.status == "queued"))
                .values(status="running", started_at=now, updated_at=now, message="starting")
            ).rowcount
        return self.get(candidate) if claimed else None

    def set_worker(self, job_id: str, pid: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(worker_pid=pid))

    def report(self, job_id: str, progress: float, message: str) -> bool:
        """Store progress (0-1) and a message; returns True when a cancel was requested."""
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs)
                .where(and_(jobs.c.id == job_id, jobs.c.status == "running"))
                .values(
                    progress=max(0.0, min(1.0, progress)),
                    message=message,
                    updated_at=datetime.now(UTC),
                )
            )
            row = conn.execute(
                select(jobs.c.cancel_requested, jobs.c.status).where(jobs.c.id == job_id)
            ).one()
        return bool(row.cancel_requested) or row.status != "running"

    def finish(self, job_id: str, status: str, message: str, error: str | None = None) -> bool:
        """Close a running (or queued) job; False if it was already finished by someone else."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "status": status,
            "message": message,
            "error": error,
            "finished_at": now,
            "updated_at": now,
        }
        if status == "succeeded":
            values["progress"] = 1.0
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(jobs)
                .where(and_(jobs.c.id == job_id, jobs.c.status.in_(("queued", "running"))))
                .values(**values)
            ).rowcount
            if changed and status != "succeeded":
                model_id = conn.execute(select(jobs.c.model_id).where(jobs.c.id == job_id)).scalar()
                if model_id:
                    conn.execute(
                        update(models)
                        .where(
                            and_(
                                models.c.id == model_id, models.c.status.in_(("queued", "training"))
                            )
                        )
                        .values(status="failed", error=error or status, finished_at=now)
                    )
        return bool(changed)

    def request_cancel(self, job_id: str) -> JobRecord:
        job = self.get(job_id)
        if job.status in FINISHED:
            raise ConflictError(f"job {job_id!r} is already {job.status}")
        if job.status == "queued":
            self.finish(job_id, "cancelled", "cancelled before it started", error="cancelled")
        else:
            with self.engine.begin() as conn:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True))
        return self.get(job_id)

    def recover_interrupted(self) -> list[JobRecord]:
        """After a crash: running jobs become failed ('interrupted'); queued ones stay queued."""
        stale = self.list_jobs(limit=10_000, status="running")
        for job in stale:
            self.finish(job.id, "failed", "interrupted", error=INTERRUPTED)
        return stale
