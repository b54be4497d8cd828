"""Noticing another client that uses our client id (two devices with the same device_id), and backing off.

A broker allows one connection per client id: when a second one connects, it hands the session over and closes
the first. Two devices with the same id then take it from each other at every reconnect, every second, for ever,
and their retained availability (and every Home Assistant entity with it) flaps. The pattern is a connection
taken over shortly after it was accepted, several times in a row. Some MQTT 5 brokers say so (a DISCONNECT with
reason 0x8E, *session taken over*: EMQX, HiveMQ); others, and every 3.1.1 broker, just close the connection
(mosquitto 2.0 does, under both protocols), so a short-lived connection closed without a DISCONNECT is the sign,
and the message then says "most likely". A DISCONNECT with another reason (the broker shutting down, a
keepalive timeout) is not counted. Once the pattern is seen, edged waits long before taking the id back
(reconnect_max_s, doubling up to an hour), so the other device keeps a stable connection meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: MQTT 5 DISCONNECT reason code: another connection with the same client id took this session over.
SESSION_TAKEN_OVER = 0x8E
#: Takeovers in a row, each soon after connecting, that make a conflict.
TAKEOVERS_IN_A_ROW = 3
#: Longest wait between two attempts while the conflict lasts.
LONGEST_WAIT_S = 3600


@dataclass(frozen=True)
class Verdict:
    """What to do about a lost connection: back off for `wait_s` (first: say why, once), or go back to normal."""

    wait_s: int | None = None
    first: bool = False
    over: bool = False


class TakeoverWatch:
    def __init__(self, reconnect_min_s: int, reconnect_max_s: int, clock: Callable[[], float]) -> None:
        #: A connection that lived less than this was "taken over right after connecting": longer than one round of
        #: the fight (a reconnect delay plus the connect), shorter than a connection that works.
        self.short_s = 10.0 + 2 * reconnect_min_s
        self._first_wait = max(reconnect_max_s, reconnect_min_s)
        self._clock = clock
        self._since: float | None = None
        self.in_a_row = 0
        self.said_so = 0  # how many of those the broker named "session taken over"
        self.wait_s: int | None = None  # set while a conflict lasts

    @property
    def conflict(self) -> bool:
        return self.wait_s is not None

    def connected(self) -> None:
        self._since = self._clock()

    def lost(self, disconnect_reason: int | None) -> Verdict:
        """An accepted connection ended, not by us; `disconnect_reason` is the reason code of the broker's DISCONNECT
        packet (MQTT 5), None when the broker just closed the connection."""
        since, self._since = self._since, None
        if since is None:
            return Verdict()
        lived = self._clock() - since
        said_so = disconnect_reason == SESSION_TAKEN_OVER
        taken_over = lived < self.short_s and (said_so or disconnect_reason is None)
        if not taken_over:
            self.in_a_row = self.said_so = 0
            if lived >= self.short_s and self.conflict:
                self.wait_s = None
                return Verdict(over=True)
            return Verdict()
        self.in_a_row += 1
        self.said_so += said_so
        if self.in_a_row < TAKEOVERS_IN_A_ROW:
            return Verdict()
        first = self.wait_s is None
        self.wait_s = self._first_wait if self.wait_s is None else min(self.wait_s * 2, LONGEST_WAIT_S)
        return Verdict(wait_s=self.wait_s, first=first)

    def explain(self, client_id: str) -> str:
        """The one clear error: who takes the connection, and what to change."""
        if self.said_so == self.in_a_row:
            seen = f"the broker handed this connection over to another client {self.in_a_row} times in a row"
        else:
            seen = (
                f"the broker closed this connection {self.in_a_row} times in a row within {self.short_s:g} s of "
                "accepting it, which is what it does when another client connects with the same client id; most "
                "likely"
            )
        return (
            f"another client uses client id {client_id!r} ({seen}): two devices with the same device_id? Give "
            "each device its own device_id (or publisher.client_id)"
        )
