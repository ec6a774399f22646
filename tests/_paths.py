"""Where tests find shared data: $PARTSIGHT_FIXTURES_DIR, else <repo>/../shared/fixtures."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path:
    return Path(os.environ.get("PARTSIGHT_FIXTURES_DIR") or REPO.parent / "shared" / "fixtures")


def datasets_dir() -> Path:
    """The shared datasets folder, next to the fixtures folder."""
    return fixtures_dir().parent / "datasets"
