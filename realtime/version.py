"""PartSight's version: the installed package's metadata, else (a checkout run without installing)
the version pyproject.toml states, which is what the metadata is made from."""
from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def version() -> str:
    """e.g. "0.1.0"; "unknown" when neither the metadata nor pyproject.toml is there."""
    try:
        return metadata.version("partsight")
    except metadata.PackageNotFoundError:
        pass
    try:
        return tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"
