"""SMTP over STARTTLS and implicit TLS, with login, against a real aiosmtpd server.

A throwaway certificate authority is made with openssl for each test session; the server
presents a certificate for 127.0.0.1 signed by it. chipwatch verifies certificates
always: it trusts that CA only when `smtp.ca_file` names it.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from smtpserver import free_port

from chipwatch.digest.deliver import SmtpTransport, build_message
from chipwatch.errors import DeliveryError
from chipwatch.settings import SmtpSettings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")

USER, PASSWORD = "watch", "s3cret-from-the-environment"


@dataclass
class Inbox:
    messages: list[bytes] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.messages.append(bytes(envelope.original_content or b""))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == USER
            and data.password.decode() == PASSWORD
        )
        if ok:
            self.logins.append(USER)
        # handled=False: the server answers 535 itself
        return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca_pem = folder / "ca.key", folder / "ca.pem"
    key, csr, pem = folder / "server.key", folder / "server.csr", folder / "server.pem"
    extensions = folder / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="ascii")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_pem),
        "-days",
        "2",
        "-subj",
        "/CN=chipwatch test CA",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_pem),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(pem),
        "-days",
        "2",
        "-extfile",
        str(extensions),
    )
    return {"ca": ca_pem, "cert": pem, "key": key}


def server_context(certificates: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates["cert"], certificates["key"])
    return context


@pytest.fixture()
def starttls_server(certificates: dict[str, Path]) -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context(certificates),
        require_starttls=True,
        authenticator=inbox.authenticate,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN"],  # smtplib then tries PLAIN only
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture()
def tls_server(certificates: dict[str, Path]) -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        ssl_context=server_context(certificates),
        authenticator=inbox.authenticate,
        auth_require_tls=False,  # the whole connection is TLS; aiosmtpd only sees STARTTLS
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def a_message() -> bytes:
    from datetime import UTC, datetime

    return build_message(
        subject="chipwatch: 1 story, 1 licensing",
        text="One story.",
        html="<p>One story.</p>",
        sender="chipwatch <watch@example.org>",
        recipient="analyst@example.org",
        msg_id="<tls-test@chipwatch>",
        date=datetime(2026, 1, 15, 7, 30, tzinfo=UTC),
    ).as_bytes()


def transport(
    port: int, security: str, ca_file: Path | None, password: str = PASSWORD
) -> SmtpTransport:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=port,
        security=security,
        username=USER,
        ca_file=str(ca_file) if ca_file else "",
        timeout_seconds=10.0,
    )
    return SmtpTransport(settings, password)


def test_starttls_with_login_delivers(
    starttls_server: tuple[Inbox, int], certificates: dict[str, Path]
) -> None:
    inbox, port = starttls_server
    transport(port, "starttls", certificates["ca"]).send(
        a_message(), "analyst@example.org", "<tls-test@chipwatch>"
    )
    assert inbox.logins == [USER]
    received = BytesParser(policy=policy.default).parsebytes(inbox.messages[0])
    assert received["Message-ID"] == "<tls-test@chipwatch>"


def test_implicit_tls_with_login_delivers(
    tls_server: tuple[Inbox, int], certificates: dict[str, Path]
) -> None:
    inbox, port = tls_server
    transport(port, "tls", certificates["ca"]).send(
        a_message(), "analyst@example.org", "<tls-test@chipwatch>"
    )
    assert len(inbox.messages) == 1 and inbox.logins == [USER]


def test_untrusted_certificate_is_refused(starttls_server: tuple[Inbox, int]) -> None:
    inbox, port = starttls_server
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
        transport(port, "starttls", None).send(a_message(), "analyst@example.org", "<x@y>")
    assert inbox.messages == []


def test_wrong_password_is_a_delivery_error(
    starttls_server: tuple[Inbox, int], certificates: dict[str, Path]
) -> None:
    inbox, port = starttls_server
    with pytest.raises(DeliveryError, match="535"):
        transport(port, "starttls", certificates["ca"], password="wrong").send(
            a_message(), "analyst@example.org", "<x@y>"
        )
    assert inbox.messages == []
