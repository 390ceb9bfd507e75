"""Settings read from the environment (prefix ``MUSICREC_``), validated once, used everywhere."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
SAMPLE_TRAIN_CSV = SAMPLE_DIR / "kkbox_train_10k.csv"
SAMPLE_SONGS_CSV = SAMPLE_DIR / "kkbox_songs.csv"
SAMPLE_MEMBERS_CSV = SAMPLE_DIR / "kkbox_members.csv"


class Settings(BaseSettings):
    """Every knob of musicrec; the README's configuration table is generated from this class."""

    model_config = SettingsConfigDict(env_prefix="MUSICREC_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/musicrec.db",
        description="SQLAlchemy URL of the registry database (SQLite file or postgresql+psycopg).",
    )
    artifact_dir: Path = Field(
        default=Path("var/artifacts"), description="Directory holding model artifact files."
    )
    sample_data: Path = Field(
        default=SAMPLE_TRAIN_CSV, description="The bundled KKBox sample used by demos."
    )
    threads_per_job: int = Field(
        default=1,
        ge=1,
        le=64,
        description="BLAS/OpenMP threads one training job may use (keeps serving responsive).",
    )
    seed: int = Field(default=42, description="Default random seed for splits and training.")
    worker_pool_size: int = Field(
        default=1, ge=1, le=32, description="Training/federation jobs that may run at once."
    )
    job_poll_seconds: float = Field(
        default=0.5, gt=0, le=60, description="How often the job dispatcher looks for work."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="When set, every mutating API endpoint requires this value in X-API-Key.",
    )
    bootstrap: bool = Field(
        default=True,
        description=(
            "On first start with an empty registry, import the bundled sample as dataset "
            "'kkbox-sample' and train and activate a default ALS model."
        ),
    )
    run_jobs: bool = Field(
        default=True,
        description="Run the job dispatcher inside the API process (false: `musicrec worker`).",
    )
    max_upload_bytes: int = Field(
        default=1 << 30, ge=1, description="Largest dataset upload accepted (bytes); 413 past it."
    )
    songs_csv: Path | None = Field(
        default=SAMPLE_SONGS_CSV,
        description="songs.csv whose metadata /predict?details=true adds (empty: none).",
    )
    precompute_top_n: int = Field(
        default=100,
        ge=0,
        le=1000,
        description=(
            "After a model is activated, precompute every listener's top-N list in the "
            "background so /predict (n <= N) is a lookup; 0 scores every request live."
        ),
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (JSON list); empty: CORS off."
    )
    log_level: str = Field(default="INFO", description="Log level of the service.")
    log_file: Path | None = Field(
        default=None, description="Also write JSON log lines to this file (e.g. logs/api.log)."
    )
    api_url: str = Field(default="http://127.0.0.1:8000", description="Where the UI finds the API.")
    fault_pause_at: str | None = Field(
        default=None,
        description=(
            "Testing only: 'STAGE:SECONDS' makes a job worker pause at a stage "
            "(training, artifact-write) so crash tests can kill it there."
        ),
    )

    @field_validator("api_key", "log_file", "fault_pause_at", "songs_csv", mode="before")
    @classmethod
    def empty_means_unset(cls, value: object) -> object:
        # `MUSICREC_API_KEY=` in an env file means no key, not the empty key.
        return None if isinstance(value, str) and not value.strip() else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def settings_table() -> str:
    """The README's configuration table, generated from ``Settings`` so the two cannot drift."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, Path) and default.is_absolute():
            default = (
                default.relative_to(PROJECT_ROOT)
                if default.is_relative_to(PROJECT_ROOT)
                else default
            )
        shown = "(unset)" if default is None else f"`{default}`"
        if default == []:
            shown = "`[]`"
        rows.append(f"| `MUSICREC_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m musicrec.config: print the table
    print(settings_table())
