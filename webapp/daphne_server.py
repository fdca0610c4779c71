"""Daphne as this application runs it: `python -m webapp.daphne_server [daphne's options] webapp.asgi:application`.

Daphne's own command line, options and all, with one difference: a websocket
frame over the limit gets an answer. Stock Daphne has autobahn drop the TCP
connection at its 1 MiB limit (failByDrop), so the client sees an abnormal
closure (1006) and never learns why. Here the limit is the largest frame a
valid client event needs (`consumers.max_frame_bytes()`), and a frame over it
gets an `error` event (`frame_too_large`), then a close with 1009 and a
reason. Autobahn decides from the frame's header, before reading its payload,
and throws the payload away as it arrives. And a frame is written without
formatting a debug line nobody logs (`ChatProtocol.sendData`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

# Daphne's default. Autobahn holds what the server *sends* to the message limit
# as well, so it stays at least this for long replies.
DAPHNE_MAX_MESSAGE_BYTES = 1024 * 1024


class ChatProtocol(WebSocketProtocol):
    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        # Autobahn's own formats the arguments of a debug line (`hltype`, `hlval`) for
        # every frame it writes, logged or not: 9 of the 13 µs it took to send a token
        # event. Its other cases (a queue, chopping, octet logging) stay its own.
        if chopsize or sync or self.send_queue or self.logOctets:
            super().sendData(data, sync, chopsize)
            return
        self.transport.write(data)
        if self.state == WebSocketProtocol.STATE_OPEN:
            self.trafficStats.outgoingOctetsWireLevel += len(data)
        elif self.state in (WebSocketProtocol.STATE_CONNECTING, WebSocketProtocol.STATE_PROXY_CONNECTING):
            self.trafficStats.preopenOutgoingOctetsWireLevel += len(data)

    def _max_message_size_exceeded(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        # Autobahn's hook for a frame, or a fragmented message, over its limit. The
        # frame limit is the one to name: the message limit is only higher (see above).
        from webapp.chat.events import error_event

        limit = self.maxFramePayloadSize
        event = error_event("frame_too_large", f"The frame is {msg_size} bytes; the limit is {limit}.")
        self.sendMessage(json.dumps(event).encode())
        # A close frame with the code, not a dropped connection; this connection only,
        # so the other failures (invalid UTF-8) keep Daphne's behaviour.
        self.failByDrop = False
        super()._max_message_size_exceeded(
            msg_size, max_msg_size, f"frame too large: {msg_size} bytes, limit {limit}"
        )


class ChatServer(Server):
    def __init__(
        self,
        *args: Any,
        websocket_max_frame_size: int | None = None,
        websocket_max_message_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        # The command line loads the application (and so Django) before it builds the server.
        from webapp.chat.consumers import max_frame_bytes

        frame = websocket_max_frame_size or max_frame_bytes()
        message = websocket_max_message_size or max(frame, DAPHNE_MAX_MESSAGE_BYTES)
        super().__init__(*args, websocket_max_frame_size=frame, websocket_max_message_size=message, **kwargs)
        # Daphne builds its websocket factory in run(); the ready callback comes after
        # that and before the reactor starts, so before any connection is made.
        self._ready_after = self.ready_callable
        self.ready_callable = self._use_chat_protocol

    def _use_chat_protocol(self) -> None:
        self.ws_factory.protocol = ChatProtocol
        if self._ready_after:
            self._ready_after()


class ChatCommandLine(CommandLineInterface):
    server_class = ChatServer

    def __init__(self) -> None:
        super().__init__()
        # Unset unless given: the server derives them from the settings.
        self.parser.set_defaults(websocket_max_frame_size=None, websocket_max_message_size=None)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    ChatCommandLine.entrypoint()


if __name__ == "__main__":
    main()
