"""
greetd's tests: unit tests here (trial-compatible), integration tests in
L{tests.integration} (pytest, against the real daemon).
"""
