"""The ``musicrec`` command: generate data, train, evaluate, recommend.

Every command exits 2 with a one-line message on bad input (a MusicrecError), never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from musicrec.config import SAMPLE_SONGS_CSV, get_settings
from musicrec.data.encoding import CONFIDENCE_SCHEMES, DEFAULT_CONFIDENCE, encode_interactions
from musicrec.data.loading import file_fingerprint, load_interactions, load_songs
from musicrec.data.synthetic import FULL_KKBOX, SyntheticSpec, generate
from musicrec.errors import InvalidParameterError, MusicrecError
from musicrec.federated.config import FederatedConfig as _FederatedDefaults
from musicrec.models.als import DEFAULT_ALS_PARAMS, als_backend
from musicrec.models.artifacts import load_bundle, save_bundle
from musicrec.models.base import top_n
from musicrec.store import open_store
from musicrec.training import ModelSpec, compare_models, oracle_spec, train_bundle

FEDERATED_DEFAULTS = _FederatedDefaults()

app = typer.Typer(
    help="musicrec: music recommendations with implicit ALS and federated fine-tuning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
out_console = Console()

DataOption = Annotated[
    Path, typer.Option("--data", help="KKBox-schema listening log (CSV/Parquet).")
]


def fail(message: str) -> None:
    """Print a one-line error and exit 2 (bad input)."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn musicrec's domain errors into the CLI's exit code 2 with the message."""
    try:
        yield
    except MusicrecError as exc:
        fail(str(exc))


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields a callback(done, total)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not enabled or not sys.stderr.isatty(),
    )
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        yield update


def _load_encoded(path: Path) -> tuple[Any, str]:
    with user_errors():
        table = load_interactions(path, for_training=True)
        return encode_interactions(table), file_fingerprint(path)


def _confidence_option(value: str) -> str:
    if value not in CONFIDENCE_SCHEMES:
        raise typer.BadParameter(f"use one of {', '.join(CONFIDENCE_SCHEMES)}")
    return value


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option("--out", help="Output file: .csv or .parquet.")],
    rows: Annotated[int, typer.Option(min=1, help="Listening events to write.")] = 1_000_000,
    users: Annotated[int, typer.Option(min=1)] = 10_000,
    songs: Annotated[int, typer.Option(min=2)] = 100_000,
    full_scale: Annotated[
        bool,
        typer.Option(
            "--full-scale", help="KKBox size: 7,377,418 rows, 30,755 users, 359,966 songs."
        ),
    ] = False,
    scale: Annotated[
        float | None, typer.Option(min=0.0001, max=1.0, help="Fraction of the full KKBox size.")
    ] = None,
    clusters: Annotated[int, typer.Option(min=1, help="Planted taste clusters (rank).")] = 32,
    seed: Annotated[int, typer.Option()] = 42,
) -> None:
    """Generate a synthetic KKBox-schema listening log with planted taste (seeded, streaming)."""
    if full_scale or scale is not None:
        factor = 1.0 if full_scale else float(scale or 1.0)
        rows, users, songs = (
            max(1, round(FULL_KKBOX[key] * factor)) for key in ("rows", "users", "songs")
        )
    spec = SyntheticSpec(rows=rows, users=users, songs=songs, clusters=clusters, seed=seed)
    with user_errors(), progress_bar("generating rows") as update:
        summary = generate(out, spec, progress=update)
    out_console.print_json(json.dumps(summary))


@app.command("train")
def train_command(
    data: DataOption,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory to write the model artifact to.")
    ] = None,
    model_type: Annotated[str, typer.Option("--model-type", help="als or popularity.")] = "als",
    factors: Annotated[int, typer.Option(min=1, max=1024)] = DEFAULT_ALS_PARAMS["factors"],
    iterations: Annotated[int, typer.Option(min=1, max=1000)] = DEFAULT_ALS_PARAMS["iterations"],
    regularization: Annotated[float, typer.Option(min=0.0)] = DEFAULT_ALS_PARAMS["regularization"],
    alpha: Annotated[float, typer.Option(min=0.0)] = DEFAULT_ALS_PARAMS["alpha"],
    seed: Annotated[int, typer.Option()] = DEFAULT_ALS_PARAMS["seed"],
    confidence: Annotated[
        str, typer.Option(callback=_confidence_option, help="How listens become values r.")
    ] = DEFAULT_CONFIDENCE,
    register: Annotated[
        bool,
        typer.Option(
            "--register", help="Also publish the model in the registry (MUSICREC_DATABASE_URL)."
        ),
    ] = False,
    name: Annotated[str | None, typer.Option(help="Registry name (with --register).")] = None,
    threads: Annotated[
        int, typer.Option(min=0, max=256, help="Training threads (0 = every core).")
    ] = 0,
) -> None:
    """Train a model on a listening log; save it as an artifact directory and/or register it."""
    if out is None and not register:
        fail("give --out DIR, --register, or both")
    if out is not None and out.exists():
        fail(f"{out}: already exists; choose a new output directory")
    encoded, fingerprint = _load_encoded(data)
    params = (
        {
            "factors": factors,
            "iterations": iterations,
            "regularization": regularization,
            "alpha": alpha,
            "seed": seed,
        }
        if model_type.lower() == "als"
        else {}
    )
    err_console.print(f"ALS backend: {als_backend()}", highlight=False)
    with user_errors(), progress_bar("training (iterations)") as update, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        bundle = train_bundle(
            encoded,
            model_type,
            params,
            confidence,
            update,
            fingerprint,
            threads=threads,
        )
    for note in bundle.meta.get("warnings", []):
        err_console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    bundle.meta["data_path"] = str(data)
    model_id = None
    with user_errors():
        if out is not None:
            save_bundle(bundle, out)
        if register:
            settings = get_settings()
            store = open_store(settings.database_url, settings.artifact_dir)
            try:
                model_id = store.registry.register(
                    name or (out.name if out else f"{model_type}-cli"),
                    bundle,
                    info={"data_path": str(data), "source": "cli"},
                ).id
            finally:
                store.close()
    out_console.print_json(
        json.dumps(
            {
                "model": str(out) if out else None,
                "model_id": model_id,
                "type": bundle.model.model_type,
                "params": bundle.model.params(),
                "data": bundle.meta["data"],
                "matrix_seconds": bundle.meta["matrix_seconds"],
                "fit_seconds": bundle.meta["fit_seconds"],
            }
        )
    )


def _metric_cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _print_metric_table(report: dict[str, Any]) -> None:
    """Metrics as rows, models as columns: fits an 80-column terminal with several models."""
    models = report["models"]
    keys = list(next(iter(models.values())).keys())
    table = Table(
        title=f"{report['split']['method']} (seed {report['split']['seed']}, "
        f"{report['split']['test_users']} test users)"
    )
    table.add_column("metric", no_wrap=True)
    for name in models:
        table.add_column(name, justify="right", no_wrap=True)
    for key in keys:
        table.add_row(key, *(_metric_cell(metrics.get(key)) for metrics in models.values()))
    out_console.print(table)


@app.command("evaluate")
def evaluate_command(
    data: DataOption,
    model: Annotated[
        Path | None, typer.Option("--model", help="Also evaluate the params of this saved model.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the holdout split.")] = 42,
    k: Annotated[
        int, typer.Option("-k", min=1, max=1000, help="Cut-off of the ranking metrics.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare popularity and ALS (default params) on one per-user holdout split."""
    encoded, _ = _load_encoded(data)
    specs = [
        ModelSpec("popularity", "popularity", {}),
        ModelSpec("als", "als", dict(DEFAULT_ALS_PARAMS)),
    ]
    if model is not None:
        with user_errors():
            saved = load_bundle(model)
        specs.append(
            ModelSpec(
                f"model:{model.name}",
                saved.model.model_type,
                saved.model.params(),
                saved.meta.get("confidence", DEFAULT_CONFIDENCE),
            )
        )
    oracle = oracle_spec(data, encoded)
    if oracle is not None:
        specs.append(oracle)
    with user_errors(), progress_bar("evaluating models", enabled=not as_json) as update:
        report = compare_models(
            encoded,
            specs,
            seed=seed,
            k=k,
            on_stage=lambda _name, i, n: update(i, n),
            threads=get_settings().threads_per_job,
        )
    report["backend"] = als_backend()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print_metric_table(report)


def _resolve_user(bundle: Any, user: str) -> int:
    if user.isdigit():
        index = int(user)
        if index >= len(bundle.users):
            last = len(bundle.users) - 1
            raise InvalidParameterError(
                f"user index {index} is out of range; the model knows users 0..{last}"
            )
        return index
    index = int(bundle.users.lookup([user])[0])
    return index  # -1 means an unknown listener: cold start


@app.command("recommend")
def recommend_command(
    model: Annotated[Path, typer.Option("--model", help="Model artifact directory.")],
    user: Annotated[str, typer.Option("--user", help="User index or msno.")],
    n: Annotated[int, typer.Option("-n", min=1, max=1000, help="How many songs.")] = 10,
    songs_csv: Annotated[
        Path | None, typer.Option("--songs", help="songs.csv for titles (default: bundled).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recommend songs for one listener; unknown listeners get the popular songs (cold start)."""
    with user_errors():
        bundle = load_bundle(model)
        index = _resolve_user(bundle, user)
    cold_start = index < 0
    if cold_start:
        scores = bundle.popular_songs().astype(np.float32)[None, :]
        ids, values = top_n(scores, n)
        ids, values = ids[0], values[0]
    else:
        with user_errors():
            id_rows, value_rows = bundle.model.recommend(
                np.array([index]), n, bundle.heard[[index]]
            )
        ids, values = id_rows[0], value_rows[0]
    keep = ids >= 0
    song_ids = bundle.songs.ids[ids[keep]].tolist()
    rows = [{"song_id": s, "score": float(v)} for s, v in zip(song_ids, values[keep], strict=True)]
    songs_file = songs_csv or SAMPLE_SONGS_CSV
    if songs_file.exists():
        with user_errors():
            meta = load_songs(songs_file).set_index("song_id")
        for row in rows:
            if row["song_id"] in meta.index:
                info = meta.loc[row["song_id"]]
                row["artist_name"] = (
                    None if info.isna()["artist_name"] else str(info["artist_name"])
                )
    result = {"user": user, "cold_start": cold_start, "recommendations": rows}
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    out_console.print(f"user {user}{' (cold start: popular songs)' if cold_start else ''}")
    for rank, row in enumerate(rows, start=1):
        artist = f"  {row['artist_name']}" if row.get("artist_name") else ""
        out_console.print(
            f"{rank:3d}. {row['song_id']}  {row['score']:.4f}{artist}", highlight=False
        )


@app.command("demo")
def demo_command(
    data: Annotated[Path | None, typer.Option("--data")] = None,
) -> None:
    """Train on the bundled sample, evaluate against popularity, print recommendations."""
    path = data or get_settings().sample_data
    out_console.print(f"[bold]musicrec demo[/bold] on {path}")
    evaluate_command(data=path, model=None, seed=42, k=10, as_json=False)
    out_dir = Path(os.environ.get("MUSICREC_DEMO_OUT", "var/demo-model"))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    train_command(
        data=path,
        out=out_dir,
        model_type="als",
        **{
            key: DEFAULT_ALS_PARAMS[key]
            for key in ("factors", "iterations", "regularization", "alpha", "seed")
        },
        confidence=DEFAULT_CONFIDENCE,
        register=False,
        name=None,
        threads=0,
    )
    recommend_command(model=out_dir, user="0", n=10, songs_csv=None, as_json=False)


def _round_line(done: int, total: int, row: dict[str, Any]) -> str:
    quality = ""
    if "recall@10" in row:
        quality = f" recall@10 {row['recall@10']:.4f} ndcg@10 {row['ndcg@10']:.4f}"
    return (
        f"round {done}/{total}{quality} up {row['bytes_up_per_client'] / 1e3:,.0f} kB/client "
        f"down {row['bytes_down_per_client'] / 1e3:,.0f} kB/client {row['seconds']:.2f} s"
    )


@app.command("federate")
def federate_command(
    data: Annotated[
        Path | None, typer.Option("--data", help="Listening log (CSV/Parquet) the clients split.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="A stored dataset instead of --data.")
    ] = None,
    clients: Annotated[
        int | None,
        typer.Option("--clients", min=1, help="Number of clients (silos); same as silo:N."),
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option(help="'user' (one client per listener) or 'silo:N'. Default silo:10."),
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, max=10_000)] = FEDERATED_DEFAULTS.rounds,
    clients_per_round: Annotated[
        int, typer.Option(min=0, help="Clients sampled per round (0 = all).")
    ] = 0,
    dp_epsilon: Annotated[
        float, typer.Option(min=0.0, help="Differential privacy budget (0 = off).")
    ] = 0.0,
    secagg: Annotated[
        bool, typer.Option("--secagg", help="Secure aggregation: the server sees only the sum.")
    ] = False,
    aggregation: Annotated[
        str, typer.Option(help="mean | clip | trimmed-mean | median (robust rules).")
    ] = "mean",
    learning_rate: Annotated[float, typer.Option(min=0.0)] = FEDERATED_DEFAULTS.learning_rate,
    max_upload_bytes: Annotated[
        int, typer.Option(min=1024, help="Bound on one client's upload per round.")
    ] = FEDERATED_DEFAULTS.max_upload_bytes,
    base_model: Annotated[
        str | None,
        typer.Option("--base-model", help="Registry model id (or artifact dir) to fine-tune."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of the resulting model.")] = None,
    seed: Annotated[int, typer.Option()] = 42,
    register: Annotated[
        bool,
        typer.Option("--register/--no-register", help="Publish the model in the registry."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Federated fine-tuning on Flower's simulation engine: clients keep their listens."""
    from musicrec.federated.config import FederatedConfig
    from musicrec.federated.data import parse_partition
    from musicrec.federated.runs import create_federated_model, run_and_publish
    from musicrec.federated.simulation import run_federated

    if (data is None) == (dataset is None):
        fail("give exactly one of --data PATH or --dataset NAME")
    if dataset is not None and not register:
        fail("--dataset runs read the registry's database; drop --no-register")
    if clients is not None and partition is not None:
        fail("give --clients N or --partition, not both")
    scheme = partition or f"silo:{clients or 10}"
    config = FederatedConfig(
        data_path=str(data or ""),
        seed=seed,
        rounds=rounds,
        clients_per_round=clients_per_round,
        learning_rate=learning_rate,
        aggregation=aggregation,
        dp_epsilon=dp_epsilon,
        secagg=secagg,
        max_upload_bytes=max_upload_bytes,
    )
    base_path = Path(base_model) if base_model and Path(base_model).is_dir() else None
    with user_errors():
        parse_partition(scheme, sys.maxsize)  # its syntax now; its size once the data is read
        config.validate() if data is not None else None
        if data is not None and not data.exists():
            raise InvalidParameterError(f"{data}: no such file")
    with progress_bar("federated rounds", enabled=not as_json) as update:

        def on_round(done: int, total: int, row: dict[str, Any]) -> None:
            update(done, total)
            if not as_json:
                err_console.print(_round_line(done, total, row), highlight=False)

        with user_errors():
            if register:
                settings = get_settings()
                store = open_store(settings.database_url, settings.artifact_dir)
                parent = None if base_path else base_model
                if base_path:
                    config.base_model_path = str(base_path)
                if dataset is not None:
                    parse_partition(scheme, store.datasets.get(dataset).users)
                label = name or f"federated-{parent or 'scratch'}"
                record = create_federated_model(store, label, config, scheme, parent, dataset)
                try:
                    report, _ = run_and_publish(
                        store, config, scheme, record.id, dataset=dataset, on_round=on_round
                    )
                    if base_path:
                        report["base_model"] = str(base_path)
                except BaseException as exc:
                    store.registry.mark_failed(record.id, str(exc) or type(exc).__name__)
                    raise
            else:
                if base_model and base_path is None:
                    raise InvalidParameterError(
                        f"--base-model {base_model}: with --no-register give an artifact directory"
                    )
                config.base_model_path = str(base_path or "")
                report, _ = run_federated(config, scheme, on_round=on_round)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _print_metric_table(report)
    privacy = report["privacy"]
    summary = (
        f"aggregation {privacy['aggregation']}, secure aggregation "
        f"{'on' if privacy['secagg'] else 'off'}"
    )
    if privacy.get("epsilon") is not None:
        summary += f", DP epsilon {privacy['epsilon']:.2f} (delta {privacy['delta']:.1e})"
    err_console.print(summary, highlight=False)
    for note in report.get("notes", []):
        err_console.print(f"note: {note}", highlight=False)
    for note in report.get("warnings", []):
        err_console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    if "model_id" in report:
        err_console.print(
            f"registered model {report['model_id']} (parent {report['parent_id'] or 'none'})",
            highlight=False,
        )


@app.command("serve")
def serve_command(
    host: Annotated[
        str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Start the HTTP API (configured by MUSICREC_* environment variables)."""
    import uvicorn

    from musicrec.api.app import create_app

    with user_errors():
        application = create_app()
    uvicorn.run(application, host=host, port=port, log_config=None, access_log=False)


@app.command("export-catalogue")
def export_catalogue_command(
    out: Annotated[Path, typer.Option("--out", help="File to write (.npz with song_ids).")],
    model: Annotated[
        str | None, typer.Option("--model", help="Registry model id (default: the active one).")
    ] = None,
) -> None:
    """Write a model's song catalogue for federated SuperNodes (their catalogue-path)."""
    with user_errors():
        settings = get_settings()
        store = open_store(settings.database_url, settings.artifact_dir)
        try:
            model_id = model or store.registry.active_id()
            if not model_id:
                raise InvalidParameterError("no active model; give --model ID")
            bundle = store.registry.load(model_id)
        finally:
            store.close()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, song_ids=np.asarray(bundle.songs.ids, dtype=str))
        tmp.replace(out)
    out_console.print_json(
        json.dumps({"model_id": model_id, "songs": len(bundle.songs), "catalogue": str(out)})
    )


@app.command("ui")
def ui_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8501,
) -> None:
    """Start the Streamlit UI; it talks to the API at MUSICREC_API_URL over HTTP."""
    app_file = Path(__file__).resolve().parent / "ui" / "app.py"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_file),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # As large as the API's default upload limit (MB): a 1M-row log is about 100 MB.
        "--server.maxUploadSize",
        "1024",
    ]
    os.execv(sys.executable, command)


@app.command("worker")
def worker_command() -> None:
    """Run background jobs in this process (when the API runs with MUSICREC_RUN_JOBS=false)."""
    from musicrec.jobs import serve_workers

    serve_workers()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
