"""Deterministic scenario platforms with known, injected billing drift.

``build_platform(spec, now=..., seed=...)`` gives a ``Platform`` (billing rows, logs,
spans, and the answer key ``expected`` / ``correct_cases``); ``demo_spec()`` is the
platform ``recon demo`` seeds. ``bot.scenario.load`` puts a platform into PostgreSQL,
``bot.scenario.evidence_files`` writes its logs and traces as an offline evidence
folder. See ``bot.scenario.generate`` for the spec, every injection and correct case.
"""

from bot.scenario.generate import (
    ALL_CORRECT_CASES,
    DEMO_SEED,
    EXPONENTS,
    FLAVOURS,
    GRACE,
    SERVICES,
    CorrectCase,
    CorrectCaseKind,
    Expected,
    Injection,
    InstanceSpec,
    LifecycleCall,
    OrgSpec,
    Plant,
    Platform,
    ProjectSpec,
    ScenarioError,
    ScenarioSpec,
    build_platform,
    charge_minor,
    demo_platform,
    demo_spec,
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
