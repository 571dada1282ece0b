"""A real receiver: an HTTP server on 127.0.0.1 in a thread, recording what it was sent and
answering with the status the test chooses."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str):
        """Raises ``WebhookVerificationError`` unless ``secret`` signed it."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Receiver:
    port: int
    status: int = 200
    delay: float = 0.0
    content_length: bool = True
    keep_alive: bool = False
    drop_after: int = 0  # close the connection (silently, for the client) after this many requests
    peers: set = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

            def do_POST(self):  # noqa: N802 - http.server's name
                receiver.peers.add(self.client_address)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = f"status {receiver.status} from the test receiver".encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                if receiver.content_length:  # http.client closes the socket once it has read it
                    self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                if receiver.drop_after and len(receiver.received) == receiver.drop_after:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        return [r.id for r in self.received]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver():
    r = Receiver(port=free_port()).start()
    yield r
    r.stop()


@pytest.fixture
def private_ok(settings):
    """Deliveries to 127.0.0.1 (the test receiver) allowed, retries quick."""
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.WEBHOOKS_RETRY_SCHEDULE = [0.0] * 7
    return settings


@pytest.fixture
def tadmin(staff_factory, acme):
    return staff_factory("hooks-admin@console.test", tenants={acme: "admin"})
