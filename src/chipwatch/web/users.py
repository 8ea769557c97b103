"""`chipwatch users add`: make an account of the review site."""

from __future__ import annotations

import getpass
import sys

from chipwatch.errors import ConfigError
from chipwatch.pipeline import open_sessions
from chipwatch.settings import Settings, mailbox
from chipwatch.store.users import add_user
from chipwatch.web.passwords import MAX_PASSWORD_CHARS, hash_password
from chipwatch.web.site import now_utc

MIN_PASSWORD = 8


def read_password() -> str:
    """Asked on a terminal; otherwise the first line of standard input (scripts, tests)."""
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")


def add_account(settings: Settings, name: str, password: str, email: str = "") -> str:
    if not name.strip() or len(name) > 100 or any(c.isspace() for c in name):
        raise ConfigError("users add", "NAME", "a name is 1-100 characters without spaces")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD_CHARS:
        raise ConfigError(
            "users add", "password", f"{MIN_PASSWORD} to {MAX_PASSWORD_CHARS:,} characters"
        )
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 on standard input
        raise ConfigError("users add", "password", "not UTF-8 text") from None
    if email and not mailbox(email):
        raise ConfigError("users add", "--email", f"not one email address: {email!r}")
    with open_sessions(settings).begin() as session:
        user = add_user(session, name, hash_password(password), email or None, now_utc())
    if user is None:
        raise ConfigError("users add", "NAME", f"a user named {name!r} exists already")
    return f"added user {name}" + (f" ({email})" if email else "")
