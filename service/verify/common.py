"""Plain data shared by every domain's results (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    """A model that took part in a result, as the AI Device and the audit row name it."""

    name: str
    version: str
