"""Annotator tokens and CSRF tokens. A token is 192 random bits shown once; the project keeps only its
SHA-256 (a slow password hash buys nothing for a secret that long). The CSRF token of a session is an
HMAC of the token's hash under the project secret: stable for the session, useless to anyone else."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(secret: str, token_hash: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{token_hash}".encode(), hashlib.sha256).hexdigest()[:40]


def csrf_ok(secret: str, token_hash: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_for(secret, token_hash), given)
