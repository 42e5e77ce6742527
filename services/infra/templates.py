"""The package's data files (Maven POM, broker properties, log4j2 configuration)."""

from __future__ import annotations

from importlib import resources
from string import Template


def read(name: str) -> str:
    return resources.files("services.infra").joinpath("templates", name).read_text()


def render(name: str, **values: object) -> str:
    """The template with every `${name}` replaced (a missing value is an error)."""
    return Template(read(name)).substitute({key: str(value) for key, value in values.items()})
