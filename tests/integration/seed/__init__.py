"""
The seed tutorial's clients, as it wrote them (reformatted onto lines).

They run as scripts against 127.0.0.1:9999; L{clientSource} points them at
another port by replacing that one literal, which changes nothing else.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def clientSource(name: str, port: int = 9999) -> str:
    """
    The source of the seed's C{tcp_client} or C{udp_client}, aimed at C{port}.
    """
    source = (HERE / f"{name}.py").read_text()
    assert source.count("9999") == 1
    return source.replace("9999", str(port))
