"""Deterministic scenario platforms with known, injected billing drift.

``build_platform(spec, now=..., seed=...)`` gives a ``Platform`` (billing rows, logs,
spans, and the answer key ``expected`` / ``correct_cases``); ``demo_spec()`` is the
platform ``recon demo`` seeds. ``bot.scenario.load`` puts a platform into PostgreSQL,
``bot.scenario.evidence_files`` writes its logs and traces as an offline evidence
folder, ``bot.scenario.evidence`` gives it to the pure checks directly. The spec, every
injection and every correct case: docs/scenario.md.
"""

from bot.scenario.demo import DEMO_SEED, demo_spec
from bot.scenario.emission import SERVICES
from bot.scenario.generate import build_platform, demo_platform
from bot.scenario.platform import CorrectCase, Expected, LifecycleCall, Platform
from bot.scenario.prices import charge_minor
from bot.scenario.spec import (
    ALL_CORRECT_CASES,
    EXPONENTS,
    FLAVOURS,
    GRACE,
    CorrectCaseKind,
    Injection,
    InstanceSpec,
    OrgSpec,
    Plant,
    ProjectSpec,
    ScenarioError,
    ScenarioSpec,
)

__all__ = [
    "ALL_CORRECT_CASES",
    "DEMO_SEED",
    "EXPONENTS",
    "FLAVOURS",
    "GRACE",
    "SERVICES",
    "CorrectCase",
    "CorrectCaseKind",
    "Expected",
    "Injection",
    "InstanceSpec",
    "LifecycleCall",
    "OrgSpec",
    "Plant",
    "Platform",
    "ProjectSpec",
    "ScenarioError",
    "ScenarioSpec",
    "build_platform",
    "charge_minor",
    "demo_platform",
    "demo_spec",
]
