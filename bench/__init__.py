"""
Load, soak and performance runs against the real daemon, outside the
default test run.
"""
