"""
greetd's tests: unit tests here (trial-compatible), integration tests in
L{tests.integration} (pytest, against the real daemon).

Every hypothesis test runs under the C{greetd} settings profile, loaded
here so that trial and pytest alike get it: no deadline on an example,
and no health check failing a test for slow generation, since a JIT
compile on PyPy or a descheduling on a busy machine makes one example
slow without any defect (hypothesis then raises C{Flaky}).  The work
stays bounded by each test's C{max_examples}.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "greetd", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("greetd")
