"""The storage layer, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from musicrec.data.encoding import encode_interactions
from musicrec.data.loading import load_interactions
from musicrec.errors import ArtifactError, ConflictError, InvalidParameterError, NotFoundError
from musicrec.models.artifacts import ARRAYS_FILE
from musicrec.store import datasets as datasets_module
from musicrec.store import open_store
from musicrec.store.migrate import current_revision, upgrade_database
from musicrec.training import train_bundle

PARAMS = {"factors": 8, "iterations": 3, "seed": 7}


def test_migrations_are_applied_and_idempotent(store):
    assert current_revision(store.engine) == "0001"
    upgrade_database(store.engine)  # second start: nothing to do
    assert current_revision(store.engine) == "0001"
    assert store.ping()


def test_import_read_back_equals_file(store, sample_csv):
    info = store.datasets.import_file("kkbox-sample", sample_csv)
    assert (info.rows, info.users, info.songs) == (10_000, 1622, 5772)
    back = store.datasets.read_table("kkbox-sample")
    assert back.equals(load_interactions(sample_csv))
    assert [d.name for d in store.datasets.list_datasets()] == ["kkbox-sample"]


def test_training_from_database_equals_training_from_csv(store, sample_csv):
    store.datasets.import_file("kkbox-sample", sample_csv)
    from_db = train_bundle(
        encode_interactions(store.datasets.read_table("kkbox-sample")), "als", PARAMS
    )
    from_csv = train_bundle(encode_interactions(load_interactions(sample_csv)), "als", PARAMS)
    np.testing.assert_array_equal(
        from_db.model.arrays()["item_factors"], from_csv.model.arrays()["item_factors"]
    )
    np.testing.assert_array_equal(
        from_db.model.arrays()["user_factors"], from_csv.model.arrays()["user_factors"]
    )


def test_dataset_names_and_duplicates(store, sample_csv):
    store.datasets.import_file("a", sample_csv)
    with pytest.raises(ConflictError, match="already exists"):
        store.datasets.import_file("a", sample_csv)
    with pytest.raises(InvalidParameterError, match="invalid dataset name"):
        store.datasets.import_file("../etc/passwd", sample_csv)
    with pytest.raises(NotFoundError):
        store.datasets.read_table("nope")


def test_failed_import_leaves_nothing(store, sample_csv, monkeypatch):
    monkeypatch.setattr(datasets_module, "_BATCH_ROWS", 1000)

    def crash(done, total):
        if done >= 3000:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.datasets.import_file("half", sample_csv, progress=crash)
    assert not store.datasets.exists("half")
    with store.engine.connect() as conn:
        from sqlalchemy import func, select

        from musicrec.store.tables import interactions

        assert conn.execute(select(func.count()).select_from(interactions)).scalar() == 0


def test_append_events(store, sample_csv):
    before = store.datasets.import_file("s", sample_csv)
    events = pa.table(
        {
            "msno": ["new-listener", "new-listener"],
            "song_id": ["song-x", load_interactions(sample_csv).column("song_id")[0].as_py()],
            "source_system_tab": ["my library", "unknown"],
            "source_screen_name": ["unknown", "unknown"],
            "source_type": ["unknown", "unknown"],
            "target": pa.array([1, 0], pa.int8()),
        }
    )
    after = store.datasets.append("s", events)
    assert after.rows == 10_002 and after.users == 1623 and after.songs == 5773
    assert after.fingerprint != before.fingerprint
    back = store.datasets.read_table("s")
    assert back.slice(10_000).column("msno").to_pylist() == ["new-listener"] * 2


def test_registry_lifecycle(store, tmp_path, sample_csv):
    registry = store.registry
    first = registry.create("one", "als", PARAMS)
    second = registry.create("two", "als", PARAMS)
    assert first.status == "queued" and first.id.startswith("als_")
    assert second.id != first.id  # same second: suffixed
    with pytest.raises(ConflictError, match="only a ready model"):
        registry.set_active(first.id)
    with pytest.raises(NotFoundError):
        registry.set_active("als_nope")

    bundle = train_bundle(encode_interactions(load_interactions(sample_csv)), "als", PARAMS)
    ready = registry.publish(first.id, bundle, metrics={"recall@10": 0.1})
    assert ready.status == "ready" and ready.artifact_sha256 and ready.metrics == {"recall@10": 0.1}
    registry.set_active(first.id)
    assert [m.id for m in registry.list_models()][-1] == first.id  # newest first
    assert registry.get(first.id).is_active

    # A new process (new Store) sees the same active model.
    reopened = open_store(
        str(store.engine.url.render_as_string(hide_password=False)), registry.artifact_dir
    )
    assert reopened.registry.active_id() == first.id
    assert reopened.registry.load(first.id).model.n_songs == 5772
    reopened.close()

    with pytest.raises(ConflictError, match="active model"):
        registry.delete(first.id)


def test_register_outside_a_job_never_leaves_a_queued_model(store, sample_csv, monkeypatch):
    registry = store.registry
    bundle = train_bundle(encode_interactions(load_interactions(sample_csv)), "als", PARAMS)
    ready = registry.register("cli-model", bundle, info={"source": "cli"})
    assert ready.status == "ready" and registry.load(ready.id).model.n_songs == 5772

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("musicrec.store.registry.save_bundle", disk_full)
    with pytest.raises(OSError, match="No space"):
        registry.register("cli-model-2", bundle)
    failed = [m for m in registry.list_models() if m.name == "cli-model-2"]
    assert len(failed) == 1 and failed[0].status == "failed"
    assert "No space left" in (failed[0].error or "")
    registry.delete(failed[0].id)  # a failed row can be cleaned up; a queued one could not


def test_corrupt_artifact_marks_broken_and_keeps_active(store, sample_csv):
    registry = store.registry
    data = encode_interactions(load_interactions(sample_csv))
    good = registry.create("good", "als", PARAMS)
    registry.publish(good.id, train_bundle(data, "als", PARAMS))
    registry.set_active(good.id)
    bad = registry.create("bad", "popularity", {})
    registry.publish(bad.id, train_bundle(data, "popularity", {}))
    path = registry.artifact_path(registry.get(bad.id)) / ARRAYS_FILE
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="checksum"):
        registry.load(bad.id)
    assert registry.get(bad.id).status == "broken"
    assert registry.active_id() == good.id
    with pytest.raises(ConflictError):
        registry.set_active(bad.id)


def test_orphan_artifacts_are_removed(store):
    (store.registry.artifact_dir / ".als_x.tmp123").mkdir()
    (store.registry.artifact_dir / "als_gone").mkdir()
    assert sorted(store.registry.remove_orphan_artifacts()) == [".als_x.tmp123", "als_gone"]


def test_job_table_claim_report_cancel_recover(store):
    jobs = store.jobs
    first = jobs.create("train", {"x": 1})
    second = jobs.create("train", {"x": 2})
    claimed = jobs.claim_next()
    assert claimed is not None and claimed.id == first.id and claimed.status == "running"
    assert jobs.report(first.id, 0.5, "iteration 5/10") is False
    assert jobs.get(first.id).progress == 0.5
    jobs.request_cancel(first.id)
    assert jobs.report(first.id, 0.6, "iteration 6/10") is True
    assert jobs.request_cancel(second.id).status == "cancelled"  # queued: cancelled at once
    third = jobs.create("train", {})
    assert [j.id for j in jobs.recover_interrupted()] == [first.id]
    assert jobs.get(first.id).status == "failed" and "interrupted" in jobs.get(first.id).error
    assert jobs.get(third.id).status == "queued"  # resumed later, not lost
    assert jobs.counts_by_status()["failed"] == 1
    with pytest.raises(ConflictError, match="already"):
        jobs.request_cancel(first.id)
