"""
The access log line's text: a count of one takes the singular.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from greetd.core.accessline import Closed


def closed(messages: int, received: int, sent: int) -> Closed:
    return Closed("127.0.0.1:5", "127.0.0.1", 5, 0.25, messages, received, sent, "exit")


class ClosedTextTests(SynchronousTestCase):
    def test_plurals(self) -> None:
        """
        0 and more than 1 take the plural, 1 the singular, each count apart.
        """
        prefix = "Connection from 127.0.0.1:5 closed (exit) after 0.250s: "
        for counts, text in [
            ((0, 0, 0), "0 messages, 0 bytes received, 0 bytes sent"),
            ((1, 1, 1), "1 message, 1 byte received, 1 byte sent"),
            ((1, 7, 13), "1 message, 7 bytes received, 13 bytes sent"),
            ((2, 1, 0), "2 messages, 1 byte received, 0 bytes sent"),
        ]:
            self.assertEqual(closed(*counts).text, prefix + text)
