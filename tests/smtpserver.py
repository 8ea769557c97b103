"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), reusable across test files.

server = SmtpServer().start()
... settings with smtp.host=server.host, smtp.port=server.port, security="none" ...
server.messages        # list of email.message.EmailMessage received, in order
server.refuse = "451 4.3.0 Try again later"   # answer DATA with this instead
server.refuse_rcpt = "550 5.1.1 No such user"  # answer RCPT TO with this instead
server.stop(); server.start()                  # down (connection refused), up again
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.server.refuse_rcpt:
            return self.server.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.refuse:
            return self.server.refuse
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        message = BytesParser(policy=policy.default).parsebytes(data)
        with self.server.lock:
            self.server.raw.append(data)
            self.server.messages.append(message)  # type: ignore[arg-type]
            self.server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 OK: queued"


class SmtpServer:
    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, smtputf8: bool = False
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.smtputf8 = smtputf8  # advertise SMTPUTF8 (addresses that are not ASCII)
        self.refuse: str | None = None  # e.g. "451 4.3.0 Try again later"
        self.refuse_rcpt: str | None = None  # answer RCPT TO with this, e.g. "550 no such user"
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        if self._controller is None:
            # decode_data=False keeps the bytes exactly as the client sent them.
            self._controller = Controller(
                _Handler(self),
                hostname=self.host,
                port=self.port,
                decode_data=False,
                enable_SMTPUTF8=self.smtputf8,
            )
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()
