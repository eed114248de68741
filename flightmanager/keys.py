"""Keys derived from the cluster secret, one per purpose.

The cluster secret itself signs and proves nothing: each use has its own key, derived
with HKDF-SHA256 (RFC 5869), so a key that leaks from one use (a token signing key in a
log, say) forges nothing in another.  Executors never hold a key: a push proves itself
with a MAC over its query id (:func:`push_mac`), good for that one query only.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

_SALT = b"spark-flightsql cluster keys v1"
_TOKENS = b"user tokens"
_PUSHES = b"executor pushes"
_TICKETS = b"result tickets"
_HANDLES = b"prepared statement handles"


def hkdf(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 of ``secret`` with this project's salt and ``info`` (RFC 5869)."""
    if not secret:
        raise ValueError("the cluster secret is empty")
    prk = hmac.new(_SALT, secret, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


@dataclass(frozen=True, repr=False)
class ClusterKeys:
    """The keys of a cluster: every node derives the same ones from the same secret."""

    tokens: bytes
    pushes: bytes
    tickets: bytes
    handles: bytes

    @classmethod
    def derive(cls, secret: bytes) -> ClusterKeys:
        return cls(hkdf(secret, _TOKENS), hkdf(secret, _PUSHES), hkdf(secret, _TICKETS), hkdf(secret, _HANDLES))

    def __repr__(self) -> str:  # keys never reach a log through a repr
        return "ClusterKeys(<redacted>)"


def push_mac(push_key: bytes, query_id: str) -> str:
    """The proof a push for ``query_id`` carries: an HMAC of the query id, as hex.

    Executors are handed this value for their query, never the key; it lets them push
    results of that query and nothing else."""
    return hmac.new(push_key, b"push\x00" + query_id.encode("utf-8"), hashlib.sha256).hexdigest()


def check_push_mac(push_key: bytes, query_id: str, mac: str) -> bool:
    """Whether ``mac`` is the push proof of ``query_id`` (constant time)."""
    return hmac.compare_digest(push_mac(push_key, query_id).encode("ascii"), mac.encode("utf-8", "replace"))
