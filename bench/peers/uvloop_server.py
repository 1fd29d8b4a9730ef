"""
The uvloop peer: the asyncio peer's protocols on uvloop's event loop.
"""

from __future__ import annotations

import uvloop

from bench.peers import asyncio_server

if __name__ == "__main__":
    asyncio_server.main(run=uvloop.run)
