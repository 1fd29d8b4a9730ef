"""
Tests for the benchmark's own code, L{bench}.
"""
