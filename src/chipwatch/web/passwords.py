"""Password hashes with scrypt (memory-hard; in the standard library).

Format: scrypt$<log2 n>$<r>$<p>$<salt hex>$<hash hex>, so the cost can be raised later
and old hashes still verify.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# n = 2**15, r = 8: 32 MiB of memory per hash (OWASP's scrypt floor is n = 2**17 at r = 8 with
# p = 1 or an equivalent; 2**15 keeps a login under ~100 ms on the 2-core test machine).
LOG2_N = 15
R = 8
P = 1
_MAXMEM = 64 * 1024 * 1024
# Longer than any passphrase; `users add` refuses more, and a login with more is wrong
# without being hashed (it was cut to this length, so such an account never logged in).
MAX_PASSWORD_CHARS = 1000


def hash_password(password: str, *, log2_n: int = LOG2_N) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, log2_n, R, P)
    return f"scrypt${log2_n}${R}${P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = _scrypt(password, bytes.fromhex(salt), int(log2_n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(computed, bytes.fromhex(digest))


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=32
    )
