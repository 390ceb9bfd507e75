"""The Docker Compose deployment and the docs, checked as far as this machine can.

No Docker engine runs here, so: the compose file parses (and `docker compose config`
accepts it when the client has the compose plugin), every MUSICREC_* variable it sets is a
real setting, every service command is a console script the image installs, .env.example
lists every setting, and the README's configuration table is the generated one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata

import pytest
import yaml

from musicrec.config import Settings, settings_table
from tests.conftest import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
SETTING_NAMES = {f"MUSICREC_{name.upper()}" for name in Settings.model_fields}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: v for k, v in env.items() if k != "<<"}


def test_compose_services_and_healthchecks():
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "api", "ui", "superlink", "supernode-1", "supernode-2"} <= set(services)
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    assert services["api"]["environment"]["MUSICREC_DATABASE_URL"].startswith(
        "postgresql+psycopg://"
    )
    assert "postgres-data" in compose["volumes"]
    for dockerfile in ("Dockerfile.api", "Dockerfile.ui"):
        text = (PROJECT_ROOT / "docker" / dockerfile).read_text()
        assert "FROM python:3.11-slim" in text and "libgomp1" in text
        assert "HEALTHCHECK" in text and re.search(r"^USER musicrec$", text, re.M)


def test_every_musicrec_variable_of_the_compose_file_is_a_setting():
    compose = _compose()
    used = set(compose["x-musicrec-env"])
    for service in compose["services"].values():
        used |= set(_environment(service))
    musicrec_vars = {name for name in used if name.startswith("MUSICREC_")}
    assert musicrec_vars, "the compose file configures musicrec through MUSICREC_* variables"
    assert musicrec_vars <= SETTING_NAMES, musicrec_vars - SETTING_NAMES
    for value in re.findall(r"\$\{(MUSICREC_[A-Z_]+)", COMPOSE.read_text()):
        assert value in SETTING_NAMES


def test_every_service_command_is_an_installed_console_script():
    scripts = {ep.name for ep in metadata.entry_points(group="console_scripts")}
    for name, service in _compose()["services"].items():
        command = service.get("command")
        if command is None:
            continue
        program = command[0] if isinstance(command, list) else command.split()[0]
        assert program in scripts, f"{name}: {program} is not a console script"
        if program == "musicrec":
            sub = subprocess.run(
                [sys.executable, "-m", "musicrec.cli", command[1], "--help"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert sub.returncode == 0, f"{name}: musicrec {command[1]} --help failed"


def test_env_example_lists_every_setting_and_nothing_else():
    listed = set()
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        if line.startswith("MUSICREC_"):
            listed.add(line.split("=", 1)[0])
    assert listed == SETTING_NAMES


def test_readme_configuration_table_is_the_generated_one():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert settings_table() in readme, "regenerate it: python -m musicrec.config"


def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("no docker compose client on this machine (the YAML checks above still ran)")
    done = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--profile", "federated", "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
