"""Tokens and CSRF protection, with nothing but the standard library.

- Invitation and admin tokens are 256-bit random strings shown once; the database keeps only their
  SHA-256 (a stolen database does not let anyone in), and every check ends in ``hmac.compare_digest``.
  A fast hash is enough here: the tokens are random, not passwords, so there is nothing to brute-force.
- CSRF: every form carries ``HMAC(secret, session id)``, where the session id is a random cookie of the
  browser (SameSite=Strict) and the secret lives in the database; a forged cross-site POST cannot read the
  page to learn the value. The JSON API takes a bearer token instead of cookies, so it needs no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


def new_token() -> str:
    """A fresh URL-safe random token (256 bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token: what the database stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def plausible_token(token: str | None) -> bool:
    """Cheap shape check before any database lookup (rejects empty, huge or odd strings)."""
    return bool(token) and _TOKEN_RE.fullmatch(token) is not None


def token_matches(token: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    if stored_hash is None or not plausible_token(token):
        return False
    return hmac.compare_digest(hash_token(token), stored_hash)


def csrf_token(secret: str, session_id: str) -> str:
    """The CSRF token of a browser session: HMAC-SHA256(secret, session id)."""
    return hmac.new(secret.encode(), b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, session_id: str | None, presented: str | None) -> bool:
    """Whether a form's CSRF token belongs to this browser session (constant time)."""
    if not session_id or not presented or len(presented) != 64:
        return False
    return hmac.compare_digest(csrf_token(secret, session_id), presented)
