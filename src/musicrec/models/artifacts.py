"""Model artifacts: a directory with ``arrays.npz`` (numbers, never pickle) and ``meta.json``.

``meta.json`` records the model type, params, the shape of every array, the sha256 of the npz,
the data fingerprint, metrics and library versions. Loading checks all of them and raises
ArtifactError with the reason, so a corrupt or truncated artifact never serves.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.data.encoding import IdMap
from musicrec.errors import ArtifactError
from musicrec.models import MODEL_TYPES
from musicrec.models.base import Recommender

ARTIFACT_FORMAT = "musicrec-model"
ARTIFACT_VERSION = 1
ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"
_LIBRARIES = ("musicrec", "implicit", "numpy", "scipy", "pyarrow")


@dataclass
class ModelBundle:
    """A fitted model with everything needed to serve it: id maps and what each user heard."""

    model: Recommender
    users: IdMap
    songs: IdMap
    heard: sp.csr_matrix  # users x songs, 1 where the user has the song in training data
    meta: dict[str, Any] = field(default_factory=dict)
    _song_counts: np.ndarray | None = field(default=None, init=False, repr=False)

    def popular_songs(self) -> np.ndarray:
        """Listeners per song in the training data: the cold-start fallback's ranking."""
        if self._song_counts is None:
            self._song_counts = np.bincount(self.heard.indices, minlength=len(self.songs)).astype(
                np.float32
            )
        return self._song_counts


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's numbers."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bundle_arrays(bundle: ModelBundle) -> dict[str, np.ndarray]:
    heard = bundle.heard.tocsr()
    arrays = {f"model.{name}": value for name, value in bundle.model.arrays().items()}
    arrays["user_ids"] = np.asarray(bundle.users.ids, dtype=str)
    arrays["song_ids"] = np.asarray(bundle.songs.ids, dtype=str)
    arrays["heard_indptr"] = heard.indptr.astype(np.int64)
    arrays["heard_indices"] = heard.indices.astype(np.int32)
    return arrays


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_bundle(
    bundle: ModelBundle,
    directory: str | Path,
    before_commit: Callable[[], None] | None = None,
) -> Path:
    """Write the artifact atomically: into a temporary sibling directory, then one rename.

    A crash at any moment leaves either no directory or a complete one (plus, at worst, a
    dot-named temporary directory that the registry cleans up). ``before_commit`` runs just
    before the rename (progress reporting and fault-injection tests).
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    if directory.exists():
        raise ArtifactError(f"{directory}: already exists; choose a new output directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        arrays = _bundle_arrays(bundle)
        arrays_path = tmp / ARRAYS_FILE
        with open(arrays_path, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
        meta = {
            **bundle.meta,
            "format": ARTIFACT_FORMAT,
            "format_version": ARTIFACT_VERSION,
            "model_type": bundle.model.model_type,
            "params": bundle.model.params(),
            "n_users": len(bundle.users),
            "n_songs": len(bundle.songs),
            "shapes": {name: list(value.shape) for name, value in arrays.items()},
            "dtypes": {name: value.dtype.str for name, value in arrays.items()},
            "arrays_sha256": sha256_file(arrays_path),
            "library_versions": library_versions(),
        }
        meta.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
        with open(tmp / META_FILE, "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        if before_commit is not None:
            before_commit()
        os.rename(tmp, directory)
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bundle.meta = meta
    return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The artifact's meta.json, checked for format; raises ArtifactError."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no model artifact here (not a directory)")
    if not meta_path.is_file():
        raise ArtifactError(f"{directory}: {META_FILE} is missing; not a musicrec model")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{meta_path}: corrupt metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{meta_path}: not a musicrec model artifact")
    if meta.get("format_version") != ARTIFACT_VERSION:
        raise ArtifactError(
            f"{meta_path}: artifact format version {meta.get('format_version')} is not "
            f"supported (this musicrec reads version {ARTIFACT_VERSION})"
        )
    if meta.get("model_type") not in MODEL_TYPES:
        raise ArtifactError(f"{meta_path}: unknown model type {meta.get('model_type')!r}")
    return meta


def load_bundle(directory: str | Path, expected_sha256: str | None = None) -> ModelBundle:
    """Load and verify an artifact: checksum, then every array's shape and dtype."""
    directory = Path(directory)
    meta = read_meta(directory)
    arrays_path = directory / ARRAYS_FILE
    if not arrays_path.is_file():
        raise ArtifactError(f"{directory}: {ARRAYS_FILE} is missing")
    actual = sha256_file(arrays_path)
    for expected in filter(None, (meta.get("arrays_sha256"), expected_sha256)):
        if actual != expected:
            raise ArtifactError(
                f"{arrays_path}: checksum mismatch (file is corrupt or was changed); "
                f"expected sha256 {expected[:12]}…, got {actual[:12]}…"
            )
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"{arrays_path}: cannot read arrays ({exc})") from None
    for name, shape in meta.get("shapes", {}).items():
        if name not in arrays:
            raise ArtifactError(f"{arrays_path}: array {name!r} is missing")
        if list(arrays[name].shape) != list(shape):
            raise ArtifactError(
                f"{arrays_path}: array {name!r} has shape {list(arrays[name].shape)}, "
                f"metadata says {shape}"
            )
    model_arrays = {
        name.removeprefix("model."): value
        for name, value in arrays.items()
        if name.startswith("model.")
    }
    model = MODEL_TYPES[meta["model_type"]].from_arrays(meta.get("params", {}), model_arrays)
    users, songs = IdMap(arrays["user_ids"]), IdMap(arrays["song_ids"])
    heard = sp.csr_matrix(
        (
            np.ones(arrays["heard_indices"].shape[0], dtype=np.float32),
            arrays["heard_indices"],
            arrays["heard_indptr"],
        ),
        shape=(len(users), len(songs)),
    )
    if model.n_songs != len(songs) or (model.n_users and model.n_users != len(users)):
        raise ArtifactError(f"{arrays_path}: model and id maps disagree in size")
    return ModelBundle(model=model, users=users, songs=songs, heard=heard, meta=meta)
