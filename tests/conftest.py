"""Shared fixtures: where the shared datasets live, small stores."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when it is absent (a user's fresh clone)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent: the shared datasets/samples live beside the repo in ../shared")
    return p


def sample(name: str) -> Path:
    """A file of ../shared/samples/formats, skipping the test when the folder is absent."""
    return shared_path("samples", "formats", name)
