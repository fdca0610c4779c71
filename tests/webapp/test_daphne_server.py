"""Daphne as the app runs it (webapp/daphne_server.py): frames written as stock Daphne writes them."""

from __future__ import annotations

from collections import deque

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.protocol import TrafficStats, WebSocketProtocol
from daphne.ws_protocol import WebSocketProtocol as DaphneProtocol

from webapp.daphne_server import ChatProtocol


class Recorder:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def open_protocol(cls: type[DaphneProtocol], state: int = WebSocketProtocol.STATE_OPEN) -> DaphneProtocol:
    """A protocol past its handshake, writing to a recorder: autobahn's own set-up, without a socket."""
    factory = WebSocketServerFactory()
    protocol = cls()
    protocol.factory = factory
    for name in WebSocketProtocol.CONFIG_ATTRS_COMMON + WebSocketProtocol.CONFIG_ATTRS_SERVER:
        setattr(protocol, name, getattr(factory, name))
    protocol.transport = Recorder()
    protocol.state = state
    protocol.send_state = WebSocketProtocol.SEND_STATE_GROUND
    protocol.send_queue = deque()
    protocol.trafficStats = TrafficStats()
    protocol.websocket_version = 13
    protocol._perMessageCompress = None
    protocol.peer = "tcp:127.0.0.1:1"
    protocol.trackedTimings = None
    return protocol


MESSAGES = [b"", b'{"type":"token","seq":1,"text":"hi"}', "é€😀".encode() * 30, b"x" * 70_000]


def test_frames_and_traffic_counts_are_those_of_stock_daphne() -> None:
    ours, stock = open_protocol(ChatProtocol), open_protocol(DaphneProtocol)
    for message in MESSAGES:
        ours.sendMessage(message)
        stock.sendMessage(message)
    assert ours.transport.written == stock.transport.written
    assert len(ours.transport.written) == len(MESSAGES)
    assert vars(ours.trafficStats) == vars(stock.trafficStats)
    assert ours.trafficStats.outgoingOctetsWireLevel > 70_000


def test_bytes_before_the_handshake_ends_are_counted_apart() -> None:
    # The handshake's reply is written with sendData while the state is still "connecting".
    ours, stock = (
        open_protocol(cls, WebSocketProtocol.STATE_CONNECTING) for cls in (ChatProtocol, DaphneProtocol)
    )
    ours.sendData(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    stock.sendData(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert ours.transport.written == stock.transport.written
    assert vars(ours.trafficStats) == vars(stock.trafficStats)
    assert ours.trafficStats.preopenOutgoingOctetsWireLevel == 36


def test_queued_and_chopped_writes_stay_autobahns(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = open_protocol(ChatProtocol)
    triggered: list[int] = []
    monkeypatch.setattr(ours, "_trigger", lambda: triggered.append(len(ours.send_queue)))
    ours.sendData(b"abcdef", chopsize=4)
    assert list(ours.send_queue) == [(b"abcd", True), (b"ef", True)] and triggered == [2]
    ours.sendData(b"later")  # behind what is queued: queued too, never written ahead of it
    assert ours.send_queue[-1] == (b"later", False) and ours.transport.written == []
