"""
Flow control for one stream connection: when it reads, how much it answers
in one reactor turn, and whether its peer takes what it is sent.

A connection is its transport's streaming producer: when replies pile up
unread in the transport's buffer, the transport pauses it and it stops
reading, so a client that sends without reading cannot grow the daemon's
memory; once the peer has caught up, the transport resumes it.

One read can hold tens of thousands of pipelined messages, and answering
them all at once would keep every other client waiting for that long.  So
each source (L{greetd.core.sources}) may have at most
L{TurnBudget.perTurn} bytes of its input answered per reactor turn: a
connection whose read goes past its source's share answers up to a
message boundary, holds the rest, stops reading, and answers on in a
later turn, as HAProxy bounds the work of one task per pass of its
scheduler (C{tune.runqueue-depth}, C{tune.maxpollevents}).  A read of
one message (an honest client waiting for each reply), or of at most
L{SHORT_READ} bytes, is answered at once and costs nothing more.  What a
connection holds is bounded in bytes, whatever the scheduling: one read
of input, and replies up to the transport's buffer plus one share's
worth.

What the peer has not made room for is L{FlowControl.unsent}, which the
write timeout watches (L{greetd.protocols.idle}).
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

from greetd.twisted_private import unsentBytes

#: The longest read answered at once whatever it holds: at most 32
#: messages, and testing a short read costs nothing more.
SHORT_READ = 64

#: Bytes of input one source may have answered per reactor turn: at most
#: 128 messages, a tenth of a millisecond or so on CPython, so that a
#: flooding source adds about that to everyone else's round trip.
DEFAULT_PER_TURN = 256


class TurnBudget:
    """
    How many bytes of input each source may still have answered in this
    reactor turn, and the connections waiting for the next one.

    A turn ends when the reactor runs its next round of timed calls: the
    budget asks for one (C{callLater(0)}) the first time a source spends
    in a turn, and only then, so a daemon whose reads are all short never
    asks.

    @ivar perTurn: Bytes per source per turn; 0 for no limit.
    @ivar spent: What each source has spent in this turn.
    """

    def __init__(self, clock: IReactorTime, perTurn: int = DEFAULT_PER_TURN) -> None:
        self.clock = clock
        self.perTurn = perTurn
        self.spent: dict[str | None, int] = {}
        self._waiting: list[FlowControl] = []
        self._turn: IDelayedCall | None = None

    def allowance(self, source: str | None) -> int:
        """
        How many bytes C{source} may still have answered in this turn.
        """
        if not self.perTurn:
            return sys.maxsize
        self._nextTurnComes()
        return self.perTurn - self.spent.get(source, 0)

    def spend(self, source: str | None, size: int) -> None:
        """
        C{source} had C{size} bytes answered.
        """
        if self.perTurn:
            self.spent[source] = self.spent.get(source, 0) + size

    def wait(self, connection: FlowControl) -> None:
        """
        Let C{connection} answer on in the next turn, once however often
        it asks.
        """
        if not connection.waiting:
            connection.waiting = True
            self._waiting.append(connection)
        self._nextTurnComes()

    def _nextTurnComes(self) -> None:
        if self._turn is None:
            self._turn = self.clock.callLater(0, self._newTurn)

    def _newTurn(self) -> None:
        self._turn = None
        self.spent.clear()
        waiting, self._waiting = self._waiting, []
        for connection in waiting:
            connection.waiting = False
            connection.answerHeld()


@implementer(IPushProducer)
class FlowControl:
    """
    The flow control of a stream protocol, mixed into it: it is its
    transport's producer, and it paces what it answers (as the module
    says).  The protocol passes what it reads to L{pace} and answers what
    that returns, and provides L{answer} for what is answered later.  A
    read that holds one message at most (see L{pipelined}) need not be
    paced, nor pay for it, unless L{paced}.

    @ivar transport: The protocol's transport.
    @ivar closing: Whether the protocol is closing (or closed), so that what
        is held is dropped.
    @ivar source: The source whose share of the budget it spends.
    @ivar budget: The L{TurnBudget} it shares with every connection of its
        factory.
    @ivar held: Input read but not answered yet, from L{heldFrom} on (so
        that answering a long read in parts copies each part once); a
        C{bytearray} once a read comes while it is held, grown in place.
    @ivar writePaused: Whether the transport paused it.
    @ivar waiting: Whether it waits for the budget's next turn.
    @ivar paced: Whether input is held or the transport paused it: every
        read must then go through L{pace}.
    @ivar writeMark: What L{unsent} said when the deadline sweep last asked.
    @ivar writeProgressAt: When the sweep last saw L{unsent} shrink or run
        out (the protocol sets it when the connection opens).
    """

    transport: Any
    closing: bool
    source: str | None
    budget: TurnBudget
    held: bytes | bytearray = b""
    heldFrom = 0
    writePaused = False
    waiting = False
    paced = False
    writeMark = 0
    writeProgressAt = 0.0

    def answer(self, data: bytes) -> None:
        """
        Answer C{data}, input held from an earlier turn.
        """
        raise NotImplementedError()

    def splittable(self, data: bytes | bytearray) -> bool:
        """
        Whether C{data} may be answered in parts cut after a line feed:
        only where it is line-framed, or becomes so with it.
        """
        raise NotImplementedError()

    @staticmethod
    def pipelined(data: bytes) -> bool:
        """
        Whether C{data} is to be paced: longer than L{SHORT_READ}, and
        holding more than one message beside an unfinished one (two line
        feeds).  An honest client waiting for each reply sends one at a
        time; its reads are never paced.
        """
        return len(data) > SHORT_READ and data.count(b"\n") > 1

    def pace(self, data: bytes) -> bytes:
        """
        What of C{data}, just read, to answer now; the rest is held, and
        reading paused, until a later turn.
        """
        if self.held or self.writePaused:
            held = self.held
            if type(held) is not bytearray:
                # Grown in place from now on: reads that come while it is
                # held (TLS hands over every record of a read at once)
                # cost what they hold, not what came before them.
                held = bytearray(memoryview(held)[self.heldFrom :])
                self.held, self.heldFrom = held, 0
            held += data
            self.transport.pauseProducing()
            return b""
        return self._portion(data, 0)

    def _portion(self, data: bytes | bytearray, start: int) -> bytes:
        """
        What of C{data} from C{start} the budget lets this turn answer; the
        rest is held for the next turn.
        """
        budget = self.budget
        allowance = budget.allowance(self.source)
        size = len(data) - start
        if size <= allowance or not self.splittable(data):
            budget.spend(self.source, size)
            return bytes(data[start:]) if start else bytes(data)
        cut = data.rfind(b"\n", start, start + max(allowance, 0)) + 1
        if not cut and allowance >= budget.perTurn:
            # One line longer than a whole turn's share: answer it alone.
            cut = data.find(b"\n", start + allowance) + 1 or len(data)
        cut = max(cut, start)
        budget.spend(self.source, cut - start)
        if cut == len(data):
            return bytes(data[start:]) if start else bytes(data)
        self.held, self.heldFrom = data, cut
        self.paced = True
        self.transport.pauseProducing()
        budget.wait(self)
        return bytes(data[start:cut])

    def answerHeld(self) -> None:
        """
        A new turn: answer what is held, as much as the budget allows, and
        read again once nothing is.
        """
        if self.closing:
            self.held = b""
            return
        if self.writePaused:
            # resumeProducing comes back here.
            return
        held, start = self.held, self.heldFrom
        self.held, self.heldFrom = b"", 0
        now = self._portion(held, start) if held else b""
        if now:
            self.answer(now)
        if not (self.held or self.writePaused or self.closing):
            self.paced = False
            self.transport.resumeProducing()

    def pauseProducing(self) -> None:
        """
        The peer is not reading its replies: stop reading its messages.
        """
        self.writePaused = self.paced = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """
        The peer caught up: answer what is held, or read again.
        """
        self.writePaused = False
        if self.held:
            self.budget.wait(self)
        else:
            self.paced = False
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """
        The transport is going away; the protocol's C{connectionLost} cleans
        up.
        """

    def unsent(self) -> int:
        """
        How many bytes of replies wait in the transport, the peer not having
        made room for them.
        """
        return unsentBytes(self.transport)
