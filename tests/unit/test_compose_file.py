"""docker-compose.yml follows the Compose Specification and runs the whole ledger.

The schema is the Compose Specification's own JSON schema, vendored from the PyPI
package check-jsonschema (see tests/data/compose-spec/README.md).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from services.infra.config import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json"
APP_SERVICES = ("migrate", "consumer", "api")
LONG_RUNNING = ("kafka", "postgres", "consumer", "api")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_file_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("api", "healthcheck", "intervall"), "5s"),
        (("api", "depends_on", "migrate", "condition"), "done"),
        (("consumer", "restart_policy"), "always"),
    ],
)
def test_the_schema_catches_mistakes(
    compose: dict[str, Any], path: tuple[str, ...], value: str
) -> None:
    broken = copy.deepcopy(compose)
    node = broken["services"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    schema = json.loads(SCHEMA.read_text())
    assert list(Draft202012Validator(schema).iter_errors(broken))


def test_all_services_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"kafka", "postgres", *APP_SERVICES}
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["postgres"]["image"].startswith("postgres:")
    commands = {name: services[name]["command"] for name in APP_SERVICES}
    assert commands == {"migrate": ["migrate"], "consumer": ["consume"], "api": ["api"]}
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
        assert services[name]["image"] == "infinite-ledger:latest"
    assert "127.0.0.1:8081:8081" in services["api"]["ports"]
    assert services["api"]["environment"]["LEDGER_API_HOST"] == "0.0.0.0"


def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    environment = compose["services"]["kafka"]["environment"]
    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert environment["KAFKA_NUM_PARTITIONS"] == 4
    assert "INTERNAL://kafka:19092" in environment["KAFKA_ADVERTISED_LISTENERS"]


def test_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        healthcheck = compose["services"][name]["healthcheck"]
        assert healthcheck["test"][0] == "CMD", name
        assert {"interval", "timeout", "retries"} <= set(healthcheck), name


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    assert set(compose["volumes"]) == {"kafka-data", "pg-data"}
    assert "kafka-data:/var/lib/kafka/data" in compose["services"]["kafka"]["volumes"]
    assert "pg-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    assert compose["services"]["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"


def test_the_apps_wait_for_migrations_and_healthy_servers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in ("consumer", "api"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
    assert services["consumer"]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092", name
        assert environment["LEDGER_DATABASE_URL"].endswith("@postgres:5432/ledger"), name


def test_the_dockerfile_installs_the_locked_dependencies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
    assert 'ENTRYPOINT ["ledger"]' in dockerfile
