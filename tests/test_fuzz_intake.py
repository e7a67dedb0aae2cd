"""Schemathesis on intake's operations (the machinery: tests/fuzzing.py)."""

from __future__ import annotations

import pytest

from tests.fuzzing import base_urls, fuzz_tests, headers, http

__all__ = ["base_urls", "headers", "http"]  # the fixtures this module's tests use

# Schemathesis' own negative-mode strategies touch `random`; Hypothesis reseeds it per example.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

(
    test_served_schemas_are_the_tested_ones,
    test_intake_boundaries,
    test_intake_fuzzed_as_every_other_role,
) = fuzz_tests("intake")
