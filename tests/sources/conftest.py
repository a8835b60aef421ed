"""Shared fixtures for the source tests: the loopback stand-ins."""

from __future__ import annotations

from tests.standins.loki import loki_standin
from tests.standins.tempo import tempo_standin

__all__ = ["loki_standin", "tempo_standin"]
