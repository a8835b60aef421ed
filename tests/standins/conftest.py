"""Fixtures for the stand-ins' own tests."""

from tests.standins.slack import slack_standin

__all__ = ["slack_standin"]
