"""Values several test files share, written once.

A file whose clock deliberately differs (its own scenario, its own rows) keeps its own
``NOW``/``T0`` and says so where it defines it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.diagnosis.model import Window

H = timedelta(hours=1)

# The generated platforms of the end-to-end and report tests are built as of NOW.
NOW = datetime(2026, 11, 20, 12, 17, 31, tzinfo=UTC)

# The sources' logs and traces (tests/fixtures/loki, tests/fixtures/tempo) are around T0.
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = Window(T0 - H, T0 + H)
TRACE = "0af7651916cd43dd8448eb211c80319c"  # the trace of tests/fixtures/tempo

# The instant of the hand-built diagnoses of the unit tests (a window of no length).
T = datetime(2026, 11, 20, tzinfo=UTC)
