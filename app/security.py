"""API keys with per-collection scopes, the rate limit, and request-content limits.

A key entry is ``key`` (every collection, read-write) or ``key:collections:mode``: collections
joined by ``+`` or ``*`` for all, mode ``rw`` or ``ro``. Keys come from
``RAG_SECURITY__API_KEYS`` and, one entry a line, from ``RAG_SECURITY__API_KEYS_FILE``.

The request middleware (``app/middleware.py``) authenticates every ``/v1`` request and checks
the ``{name}`` path parameter against the key's scope *before* the route looks the collection
up, so an out-of-scope key learns nothing about which collections exist. Routes that take a
collection from the body instead call ``check_collection_access(request, collection, write)``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.schemas import Problem
from core.errors import ConfigurationError, Forbidden

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

    from app.settings import SecuritySettings

PRINCIPAL_SCOPE_KEY = "ragserver.principal"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ONLY_POSTS = frozenset(
    {
        "/v1/collections/{name}/search",
        "/v1/collections/{name}/query",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/prompts/preview",
    }
)
"""POST routes that only read: a read-only key may call them. Every other POST, PUT, PATCH and
DELETE needs a read-write key."""

ACCESS_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or not a valid one."},
    403: {"model": Problem, "description": "The key does not cover this collection or write."},
    413: {"model": Problem, "description": "The request body is over RAG_SECURITY__MAX_UPLOAD_MB."},
    429: {"model": Problem, "description": "Rate limit; see Retry-After."},
    504: {"model": Problem, "description": "No response within RAG_SERVER__REQUEST_TIMEOUT_S."},
}
"""OpenAPI responses every /v1 route can give (the routers are included with them)."""

FORBIDDEN_SCOPE = "this API key is not allowed to use that collection"
FORBIDDEN_WRITE = "this API key is read-only; it cannot create, upload, change or delete"
_MODES = {"rw": False, "ro": True}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's scope, or the anonymous caller of a server without keys.

    Attributes:
        id: A name safe to log and to key the rate limit by (``key:<hash prefix>``); never
            the key itself.
        collections: The collections the caller may use; None for all.
        read_only: The caller may not create, upload, change or delete.
        authenticated: A valid key was presented.
    """

    id: str
    collections: frozenset[str] | None = None
    read_only: bool = False
    authenticated: bool = False

    def may_use(self, collection: str) -> bool:
        """Whether ``collection`` is in scope."""
        return self.collections is None or collection in self.collections


ANONYMOUS = Principal("anonymous")


def key_id(key: str) -> str:
    """Return a loggable name of a key: a prefix of its sha256."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def parse_key_entry(entry: str, where: str) -> tuple[str, Principal]:
    """Parse ``key`` or ``key:collections:mode`` into the key and its principal.

    Args:
        entry: One entry.
        where: Where it comes from, for error messages (never the key itself).

    Raises:
        ConfigurationError: a malformed entry.
    """
    parts = entry.strip().split(":")
    key = parts[0]
    if not key or any(ch.isspace() for ch in key) or len(parts) > 3:
        raise ConfigurationError(
            f"{where}: an API key entry is 'key' or 'key:collections:mode' (no spaces, no ':' "
            "in the key)"
        )
    collections: frozenset[str] | None = None
    if len(parts) >= 2:
        names = [n.strip() for n in parts[1].split("+") if n.strip()]
        if not names:
            raise ConfigurationError(f"{where}: list the collections after the key, or '*'")
        collections = None if "*" in names else frozenset(names)
    mode = parts[2].strip().lower() if len(parts) == 3 else "rw"
    if mode not in _MODES:
        raise ConfigurationError(f"{where}: the mode is '{mode}'; it must be 'rw' or 'ro'")
    return key, Principal(key_id(key), collections, _MODES[mode], authenticated=True)


def read_keys_file(path: Path) -> list[str]:
    """Return the entries of a keys file: one a line, blank lines and ``#`` comments skipped.

    Raises:
        ConfigurationError: the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"the API keys file {path} cannot be read ({exc.strerror or exc}); fix "
            "RAG_SECURITY__API_KEYS_FILE"
        ) from exc
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


class KeyRing:
    """The configured keys, looked up by their sha256 and confirmed in constant time."""

    def __init__(self, entries: Iterable[tuple[str, str]] = ()) -> None:
        """Parse ``(entry, where)`` pairs; an identical entry twice is fine, a clash is not.

        Raises:
            ConfigurationError: a malformed entry, or one key given two different scopes.
        """
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        for entry, where in entries:
            key, principal = parse_key_entry(entry, where)
            digest = hashlib.sha256(key.encode()).digest()
            known = self._by_digest.get(digest)
            if known is not None and known[1] != principal:
                raise ConfigurationError(f"{where}: this key was given another scope before")
            self._by_digest[digest] = (key.encode(), principal)

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> KeyRing:
        """Collect the keys of ``RAG_SECURITY__API_KEYS`` and the keys file."""
        entries = [
            (entry, f"RAG_SECURITY__API_KEYS entry {i}")
            for i, entry in enumerate(security.api_keys, 1)
        ]
        if security.api_keys_file is not None:
            path = security.api_keys_file
            entries += [
                (entry, f"{path} entry {i}") for i, entry in enumerate(read_keys_file(path), 1)
            ]
        return cls(entries)

    @property
    def enabled(self) -> bool:
        """Keys are configured, so every /v1 request needs one."""
        return bool(self._by_digest)

    def __len__(self) -> int:
        return len(self._by_digest)

    def authenticate(self, presented: str) -> Principal | None:
        """Return the principal of a presented key, or None when it is not one of ours."""
        candidate = presented.encode("utf-8", "surrogateescape")
        known = self._by_digest.get(hashlib.sha256(candidate).digest())
        # The dict is keyed by a hash the caller cannot steer; compare the key itself in
        # constant time so a collision-free lookup is not the only check.
        if known is None or not hmac.compare_digest(candidate, known[0]):
            return None
        return known[1]


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class RateLimiter:
    """A token bucket per caller: ``burst`` requests at once, refilled at ``per_minute``.

    Buckets of callers not seen for a while are forgotten (least recently used first) once
    more than ``max_callers`` are tracked, which bounds memory under many client addresses.
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 10_000,
    ) -> None:
        """Create an empty limiter; ``per_minute`` 0 allows everything."""
        self.rate = per_minute / 60.0
        self.burst = float(max(1, burst))
        self.clock = clock
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """A rate is configured."""
        return self.rate > 0

    def acquire(self, caller: str) -> float:
        """Take one token for ``caller``; return 0 if allowed, else seconds until one is due."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.pop(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[caller] = (tokens, now)
        while len(self._buckets) > self.max_callers:
            self._buckets.popitem(last=False)
        return wait


def principal_of(conn: HTTPConnection) -> Principal:
    """Return who is calling (set by the middleware; anonymous when keys are off)."""
    principal = conn.scope.get(PRINCIPAL_SCOPE_KEY)
    return principal if isinstance(principal, Principal) else ANONYMOUS


def access_error(principal: Principal, collection: str | None, write: bool) -> Forbidden | None:
    """Return why ``principal`` may not use ``collection`` (None: any collection), or None."""
    if collection is not None and not principal.may_use(collection):
        return Forbidden(FORBIDDEN_SCOPE)
    if write and principal.read_only:
        return Forbidden(FORBIDDEN_WRITE)
    return None


def check_collection_access(conn: HTTPConnection, collection: str, write: bool = False) -> None:
    """Refuse (403) a caller whose key does not cover ``collection`` or is read-only for a write.

    Call it before looking the collection up, so the answer is the same whether it exists.
    Routes with a ``{name}`` path parameter are checked by the middleware already; routes that
    name the collection in the body (chat completions, prompt previews) call this.

    Raises:
        Forbidden: out of the key's scope, or a write with a read-only key.
    """
    error = access_error(principal_of(conn), collection, write)
    if error is not None:
        raise error


def visible_collections(conn: HTTPConnection, names: Iterable[str]) -> list[str]:
    """Return the names in ``names`` the caller's key covers, in order."""
    principal = principal_of(conn)
    return [name for name in names if principal.may_use(name)]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_access_warnings(keys: KeyRing, host: str) -> list[str]:
    """Return the start-up warnings about an API without keys (none when keys are set)."""
    if keys.enabled:
        return []
    warnings = [
        "no API keys configured: every /v1 route is open to anyone who can connect; set "
        "RAG_SECURITY__API_KEYS or RAG_SECURITY__API_KEYS_FILE to require keys"
    ]
    if not is_loopback(host):
        warnings.append(
            f"!!! SECURITY WARNING: listening on {host}, which is not loopback, WITHOUT API "
            "KEYS: anyone on the network can read, upload and delete documents. Set "
            "RAG_SECURITY__API_KEYS, or bind 127.0.0.1 (RAG_SERVER__HOST) !!!"
        )
    return warnings
