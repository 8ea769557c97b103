"""Build the email and hand it to SMTP or a local Maildir.

The outbox stores the complete message bytes before any send, so a retry sends exactly
the same message, with the same Message-ID. That is what makes a retry after a crash
harmless: Maildir delivery checks the Message-ID before adding, and over SMTP the
receiving side can drop the copy (many MTAs, list managers and mail clients dedupe on
Message-ID; SMTP itself cannot tell us whether a lost acknowledgment was delivered).
"""

from __future__ import annotations

import hashlib
import mailbox
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Protocol

from chipwatch.errors import DeliveryError
from chipwatch.settings import Settings, SmtpSettings

LIST_ID = "chipwatch digest <digest.chipwatch.localhost>"
_POLICY = policy.SMTP.clone(refold_source="none")


def message_id(digest_id: int, recipient: str, content_hash: str, sender: str) -> str:
    """Stable: the same digest for the same recipient with the same content, same id."""
    digest = hashlib.sha256(f"{digest_id}\0{recipient}\0{content_hash}".encode()).hexdigest()
    domain = parseaddr(sender)[1].rpartition("@")[2] or "chipwatch.localhost"
    return f"<chipwatch.{digest_id}.{digest[:24]}@{domain}>"


def content_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def build_message(
    *,
    subject: str,
    text: str,
    html: str,
    sender: str,
    recipient: str,
    msg_id: str,
    date: datetime,
    list_id: str = LIST_ID,
    extra_headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """multipart/alternative: the text part first, HTML last (the preferred one)."""
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(_aware(date))
    message["Message-ID"] = msg_id
    message["List-Id"] = list_id
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (extra_headers or {}).items():
        # Raw: a long List-Unsubscribe URL must not become an RFC 2047 encoded word,
        # which mail clients would not read as a URL (the policy keeps raw lines as set).
        message.set_raw(name, value)
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Transport(Protocol):
    name: str

    def send(self, message: bytes, recipient: str, msg_id: str) -> None:
        """Deliver or raise DeliveryError; returning means the message was accepted."""


@dataclass
class SmtpTransport:
    smtp: SmtpSettings
    password: str = ""
    name: str = "smtp"

    def send(self, message: bytes, recipient: str, msg_id: str) -> None:
        envelope_from = parseaddr(self.smtp.sender)[1] or "chipwatch@localhost"
        where = f"SMTP {self.smtp.host}:{self.smtp.port} to {recipient}"
        try:
            with self._connect() as client:
                if self.smtp.username:
                    client.login(self.smtp.username, self.password)
                options = _mail_options(client, envelope_from, recipient, where)
                client.sendmail(envelope_from, [recipient], message, mail_options=options)
        except (smtplib.SMTPException, OSError, UnicodeError) as exc:
            # UnicodeError: whatever smtplib could not encode is this digest's failure; it
            # escaped the send loop, and no other reader got a digest either.
            raise DeliveryError(f"{where}: {_describe(exc)}") from exc

    def _connect(self) -> smtplib.SMTP:
        timeout = self.smtp.timeout_seconds
        context = self._tls_context()
        if self.smtp.security == "tls":
            return smtplib.SMTP_SSL(
                self.smtp.host, self.smtp.port, timeout=timeout, context=context
            )
        client = smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=timeout)
        if self.smtp.security == "starttls":
            try:
                client.starttls(context=context)
            except BaseException:
                client.close()
                raise
        return client

    def _tls_context(self) -> ssl.SSLContext:
        # Certificates and host names are always verified; ca_file adds a private CA.
        return ssl.create_default_context(cafile=self.smtp.ca_file or None)


def _mail_options(client: smtplib.SMTP, sender: str, recipient: str, where: str) -> list[str]:
    """SMTPUTF8 where an address is not ASCII (josé@exämple.org), if the server takes it;
    a server that does not cannot carry that digest: its own failure, said as such."""
    if sender.isascii() and recipient.isascii():
        return []
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("smtputf8"):
        raise DeliveryError(
            f"{where}: the address is not ASCII and the server does not offer SMTPUTF8"
        )
    return ["SMTPUTF8"]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        if exc.smtp_code == -1:  # smtplib's code for a reply it could not read
            # (smtplib has cut the line's first four characters: not worth echoing)
            return "not an SMTP server: its reply has no SMTP reply code"
        return f"{exc.smtp_code} {_server_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{r}: {code} {_server_text(msg)}" for r, (code, msg) in exc.recipients.items()
        )
    return f"{type(exc).__name__}: {exc}"


def _server_text(reply: object, limit: int = 200) -> str:
    """A server's reply as one printable line (it may be bytes, binary, or long)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(printable.split())[:limit]


@dataclass
class MaildirTransport:
    path: Path
    name: str = "maildir"

    def send(self, message: bytes, recipient: str, msg_id: str) -> None:
        try:
            # Its parent too: on PostgreSQL nothing else may have made the data folder yet.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            box = mailbox.Maildir(self.path, create=True)
            if maildir_has(box, msg_id):
                return  # delivered before a crash lost the commit: do not add it twice
            box.add(message)
        except OSError as exc:
            raise DeliveryError(f"Maildir {self.path}: {exc}") from exc


def maildir_has(box: mailbox.Maildir, msg_id: str) -> bool:
    """Scan the headers of new/ and cur/ (a personal digest box stays small)."""
    parser = BytesHeaderParser(policy=policy.default)
    for key in box.iterkeys():
        try:
            with box.get_file(key) as handle:
                headers = parser.parse(handle)  # type: ignore[arg-type]
        except (FileNotFoundError, KeyError):
            continue  # moved or deleted by a mail client meanwhile
        if (headers.get("Message-ID") or "").strip() == msg_id:
            return True
    return False


def transport_for(settings: Settings) -> Transport:
    if settings.smtp.host:
        return SmtpTransport(settings.smtp, settings.smtp_password)
    return MaildirTransport(settings.maildir_path)
