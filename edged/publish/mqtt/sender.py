"""Moves messages from our bounded outbox into paho, one window at a time, in order, on its own thread.

Why a thread of ours between the pipeline and paho: `publish_result` must return in microseconds whatever the
network does, and paho's own queue is unbounded. So the pipeline only appends to the outbox; this sender hands
messages to paho while connected, never more than `window` unacknowledged, and tracks their acknowledgements.
While disconnected nothing is handed over: results wait (bounded) in the outbox. Messages already in flight
when the connection drops stay with paho, which re-sends them first on reconnect; the sender waits for those
before sending newer ones, so results reach the broker in order.

Locking: one condition guards the outbox and the in-flight table; it is never held while calling into paho, so
paho's callbacks (which take it briefly) cannot deadlock with us.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from paho.mqtt.enums import MQTTErrorCode

from edged.publish.mqtt.outbox import DropCounts, Message, Outbox

log = logging.getLogger(__name__)

#: Late acknowledgements of unknown message ids remembered at most (they are normally matched within microseconds).
_MAX_EARLY_ACKS = 10_000


class _PublishResult(Protocol):
    mid: int
    rc: MQTTErrorCode


class PahoLike(Protocol):
    """The one paho call the sender makes."""

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, properties: Any = None) -> Any: ...


@dataclass
class SenderCounters:
    delivered: int = 0  # acknowledged by the broker (QoS>0) or written to the socket (QoS 0)


class Sender:
    def __init__(
        self,
        client: PahoLike,
        outbox: Outbox,
        window: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._outbox = outbox
        self._window = window
        self._clock = clock
        self._cond = threading.Condition()
        self._inflight: dict[int, Message] = {}
        self._early_acks: set[int] = set()
        self._connected = False
        self._barrier = False
        self._publishing = 0  # messages being handed to paho right now (no lock held then)
        self._stopping = False
        self.counters = SenderCounters()

    # ---- what the publisher hands over (any thread) --------------------------------------------------------
    def put_result(self, topic: str, payload: bytes, qos: int) -> int:
        """Queue a result; returns how many old results had to be dropped for it."""
        message = Message(topic, payload, qos, False, self._clock(), is_result=True)
        with self._cond:
            dropped = self._outbox.put_result(message)
            if self._connected:  # offline, the sender has nothing to do (connected() wakes it)
                self._cond.notify()
        return dropped

    def put(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        *,
        only_online: bool = False,
        coalesce: bool | None = None,
        properties: Any = None,
    ) -> bool:
        """Queue any other message; with only_online it is discarded (False) while disconnected.

        `coalesce` (default: `retain`) keeps only the newest queued message of this topic.
        """
        with self._cond:
            if only_online and not self._connected:
                return False
            message = Message(topic, payload, qos, retain, self._clock(), properties=properties)
            self._outbox.put_other(message, coalesce)
            self._cond.notify()
        return True

    def send_now(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Bypass the queue (availability from paho's on_connect, the stop message); still tracked for flush."""
        message = Message(topic, payload, qos, retain, self._clock())
        with self._cond:
            self._publishing += 1
        self._hand_over(message)

    # ---- paho callbacks (network thread) ---------------------------------------------------------------------
    def connected(self) -> None:
        with self._cond:
            self._connected = True
            self._drop_qos0_inflight()
            # paho re-sends what was in flight right after on_connect returns; newer messages wait for those.
            self._barrier = self._publishing > 0 or any(m.qos > 0 for m in self._inflight.values())
            self._cond.notify_all()

    def disconnected(self) -> None:
        with self._cond:
            self._connected = False
            self._drop_qos0_inflight()
            self._cond.notify_all()

    def acknowledged(self, mid: int) -> Message | None:
        """Record an acknowledgement; returns the message, when it is known, for the caller's log."""
        with self._cond:
            message = self._inflight.pop(mid, None)
            if message is None:
                if len(self._early_acks) >= _MAX_EARLY_ACKS:
                    self._early_acks.clear()
                self._early_acks.add(mid)
            else:
                self.counters.delivered += 1
            self._cond.notify_all()
        return message

    def _drop_qos0_inflight(self) -> None:
        """paho forgets QoS 0 packets still unsent at a disconnect without telling us; forget them too."""
        lost = [mid for mid, message in self._inflight.items() if message.qos == 0]
        for mid in lost:
            del self._inflight[mid]

    # ---- the sending thread (started by the daemon's runtime) ---------------------------------------------------
    def stop(self) -> None:
        """Ends `run` (the caller joins the thread)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _may_send(self) -> bool:
        if not self._connected or len(self._inflight) >= self._window:
            return False
        if self._barrier:
            if any(m.qos > 0 for m in self._inflight.values()):
                return False
            self._barrier = False
        return True

    def run(self) -> None:
        """Hand queued messages to paho, in order, within the in-flight window, until `stop`."""
        while True:
            with self._cond:
                message = None
                while message is None:
                    if self._stopping:
                        return
                    if self._may_send():
                        message = self._outbox.pop(self._clock())
                        if message is not None:
                            self._publishing += 1
                            break
                    else:
                        self._outbox.expire(self._clock())
                    self._cond.wait(0.5)
            self._hand_over(message)

    def _hand_over(self, message: Message) -> None:
        """Give one message to paho (no lock of ours held), then record it as in flight.

        The caller has counted it in `_publishing`, so a reconnect meanwhile knows a message is on its way.
        """
        try:
            info: _PublishResult = self._client.publish(
                message.topic, message.payload, message.qos, message.retain, message.properties
            )
        except (ValueError, TypeError) as exc:  # an invalid topic or payload: a bug, not an outage
            log.error("cannot publish to %r: %s", message.topic, exc)
            with self._cond:
                self._publishing -= 1
                self._cond.notify_all()
            return
        retry_later = False
        with self._cond:
            self._publishing -= 1
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                self._outbox.push_front(message)  # paho's backstop cap: wait for acknowledgements
                retry_later = True
            elif message.qos == 0 and info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                if message.is_result:
                    self._outbox.push_front(message)  # not sent at all; paho keeps no QoS 0 message
            else:
                # QoS>0 with MQTT_ERR_NO_CONN is kept by paho and sent on reconnect, so it is in flight too.
                if info.mid in self._early_acks:
                    self._early_acks.discard(info.mid)
                    self.counters.delivered += 1
                else:
                    self._inflight[info.mid] = message
            self._cond.notify_all()
            if retry_later:
                self._cond.wait(0.05)

    # ---- shutdown and reporting ----------------------------------------------------------------------------------
    def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued has been acknowledged; False if that did not happen in time."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self._outbox) or self._inflight or self._publishing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
        return True

    def wait_delivered(self, timeout_s: float) -> bool:
        """Wait until nothing is in flight (the outbox may still hold messages)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._inflight or self._publishing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.2))
        return True

    @property
    def is_connected(self) -> bool:
        return self._connected

    def pending(self) -> tuple[int, int]:
        """(messages queued, messages in flight)."""
        with self._cond:
            return len(self._outbox), len(self._inflight)

    def buffered_results(self) -> int:
        with self._cond:
            return len(self._outbox.results)

    def take_backlog(self) -> list[Message]:
        """Every result not yet acknowledged (in flight first, then queued), removed: for a publisher swap.

        A result in flight may have reached the old broker after all; handing it over too keeps delivery
        at-least-once rather than risking a gap.
        """
        with self._cond:
            in_flight = [(mid, m) for mid, m in self._inflight.items() if m.is_result]  # in hand-over order
            for mid, _ in in_flight:
                del self._inflight[mid]
            backlog = [m for _, m in in_flight] + list(self._outbox.results)
            self._outbox.results.clear()
            self._cond.notify_all()
            return backlog

    def take_unreported_drops(self) -> DropCounts:
        with self._cond:
            return self._outbox.take_unreported()

    def drops(self) -> DropCounts:
        with self._cond:
            dropped = self._outbox.dropped
            return DropCounts(dropped.overflow, dropped.expired, dropped.other)
