"""
greetd 0.1's log module, kept for its documented C{twistd --logger
greetd.log.jsonLogger}, which is deprecated: give C{twistd greetd
--log-format json} instead (L{greetd.ops.log}).
"""

from __future__ import annotations

from greetd.ops.log import deprecatedJsonLogger as jsonLogger

__all__ = ["jsonLogger"]
