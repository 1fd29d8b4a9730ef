"""
The embedding guide's example application and its trial tests
(C{docs/howto/examples/}) run in the suite, as the guide shows them.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "howto" / "examples"

# The guide's test imports its application as a top-level module, as it
# would in the application's own project.
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from test_greeter import GreeterTests  # noqa: E402

__all__ = ["GreeterTests"]
