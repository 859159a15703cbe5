"""Studio tokens (stored hashed, compared in constant time) and CSRF tokens."""

from __future__ import annotations

import hashlib

from superalign.studio import security


def test_tokens_are_random_urlsafe_and_stored_as_sha256():
    a, b = security.new_token(), security.new_token()
    assert a != b and len(a) >= 43 and security.plausible_token(a)
    assert security.hash_token(a) == hashlib.sha256(a.encode()).hexdigest()
    assert a not in security.hash_token(a)


def test_token_matches_only_the_right_token():
    token = security.new_token()
    stored = security.hash_token(token)
    assert security.token_matches(token, stored)
    assert not security.token_matches(security.new_token(), stored)
    assert not security.token_matches(token, None)
    assert not security.token_matches("", stored)
    assert not security.token_matches(token + "x" * 100, stored)  # implausible shape: rejected before hashing


def test_plausible_token_rejects_odd_strings():
    for bad in (None, "", "short", "has space in it and is long enough", "x" * 101, "semi;colon" * 3):
        assert not security.plausible_token(bad)


def test_csrf_token_is_bound_to_the_session_and_the_secret():
    secret, sid = security.new_token(), security.new_token()
    token = security.csrf_token(secret, sid)
    assert security.csrf_ok(secret, sid, token)
    assert not security.csrf_ok(secret, security.new_token(), token)  # another browser session
    assert not security.csrf_ok(security.new_token(), sid, token)  # another server secret
    assert not security.csrf_ok(secret, sid, None)
    assert not security.csrf_ok(secret, None, token)
    assert not security.csrf_ok(secret, sid, token[:-1])
