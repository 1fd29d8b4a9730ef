"""
Sphinx configuration for greetd's documentation (C{make docs}).
"""

from __future__ import annotations

project = "greetd"
author = "greetd contributors"
exclude_patterns = ["_build"]
nitpicky = True
