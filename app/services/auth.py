"""API keys and tenants: authentication, and the admin use cases."""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid

from cachetools import TTLCache
from sqlalchemy.orm import Session, sessionmaker

from app.errors import ConfigurationError, Conflict, InvalidInput, NotFound, Unauthenticated
from app.models import ApiKey
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import audit, cubes, tenants
from app.schemas.admin import KeyCreate, KeyCreated, KeyOut, KeyRevoked, TenantCreated, TenantOut
from app.services.base import Idempotency, Transactor, Tx

KEY_PREFIX = "mck_"
KEY_CACHE_SIZE = 10_000


def hash_key(raw: str) -> str:
    """Keys carry 256 random bits, so a plain SHA-256 is enough (no slow KDF needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class AuthService:
    def __init__(self, sessions: sessionmaker[Session], tx: Transactor, cache_seconds: float = 0.0) -> None:
        self.sessions = sessions
        self.tx = tx
        # Every request authenticates: a lookup remembered briefly (unknown keys too, so a flood of made-up keys
        # costs no queries either) saves a database round trip per request. Keyed by hash, never by the key.
        self._known: TTLCache[str, Principal | None] | None = (
            TTLCache(KEY_CACHE_SIZE, cache_seconds) if cache_seconds > 0 else None)
        self._known_lock = threading.Lock()

    def authenticate(self, raw: str | None) -> Principal:
        if not raw:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        found = self._lookup(hash_key(raw))
        if found is None:
            raise Unauthenticated("invalid or revoked API key")
        return found

    def _lookup(self, digest: str) -> Principal | None:
        if self._known is not None:
            try:
                with self._known_lock:
                    return self._known[digest]
            except KeyError:
                pass
        with self.sessions() as s:
            key = tenants.key_by_hash(s, digest)
            found = None if key is None or key.revoked_at is not None else Principal(
                key_id=key.id, scope=key.scope, tenant_id=key.tenant_id,
                cube_ids=frozenset(key.cube_ids) if key.cube_ids is not None else None, permission=key.permission)
        if self._known is not None:
            with self._known_lock:
                self._known[digest] = found
        return found

    def _forget_keys(self) -> None:
        """Keys changed here: this process stops trusting what it remembered at once (others within the TTL)."""
        if self._known is not None:
            with self._known_lock:
                self._known.clear()

    def ensure_admin_key(self, raw: str) -> bool:
        """Register ``raw`` as an admin key if it is not yet known. Returns True when it was added."""
        with self.sessions.begin() as s:
            return self._ensure_admin_key(s, raw) is None

    def _ensure_admin_key(self, s: Session, raw: str) -> ApiKey | None:
        """The known key, or None after adding it. Processes started together on one database (replicas)
        bootstrap one at a time under a lock, so the second finds the first one's key instead of colliding."""
        tenants.lock_admin_keys(s)
        known = tenants.key_by_hash(s, hash_key(raw))
        if known is not None:
            return known
        key = tenants.add_key(s, tenant_id=None, scope="admin", key_hash=hash_key(raw), prefix=raw[:12],
                              name="bootstrap admin")
        audit.record(s, tenant_id=None, key_id=None, action="key.create", object_type="api_key",
                     object_id=key.id, details={"scope": "admin"})
        return None

    def rotate_admin_key(self, raw: str) -> None:
        """Make ``raw`` the one admin key: registered if new, every other admin key revoked. A key revoked
        before is not brought back (a rotated-out key may have leaked): that is a configuration error."""
        with self.sessions.begin() as s:
            known = self._ensure_admin_key(s, raw)
            if known is not None and known.revoked_at is not None:
                raise ConfigurationError("MEMCUBED_ADMIN_KEY names a revoked admin key; set a new one")
            current = known or tenants.key_by_hash(s, hash_key(raw))
            assert current is not None
            for key in tenants.live_admin_keys(s):
                if key.id != current.id:
                    tenants.revoke_key(s, key, utcnow())
                    audit.record(s, tenant_id=None, key_id=None, action="key.revoke", object_type="api_key",
                                 object_id=key.id, details={"reason": "admin key rotated"})
        self._forget_keys()

    def create_tenant(self, principal: Principal, name: str, idem: Idempotency | None = None) -> TenantCreated:
        principal.require_admin()

        def work(tx: Tx) -> TenantCreated:
            if tenants.tenant_by_name(tx.session, name) is not None:
                raise Conflict(f"a tenant named {name!r} exists", {"name": name})
            tenant = tenants.add_tenant(tx.session, name)
            raw = new_key()
            key = tenants.add_key(tx.session, tenant_id=tenant.id, scope="tenant", key_hash=hash_key(raw),
                                  prefix=raw[:12], name="default")
            audit.record(tx.session, tenant_id=tenant.id, key_id=principal.key_id, action="tenant.create",
                         object_type="tenant", object_id=tenant.id, details={"name": name})
            return TenantCreated(id=tenant.id, name=tenant.name, api_key=raw, key_id=key.id)

        return self.tx.run(principal, idem, TenantCreated, work)

    def list_tenants(self, principal: Principal) -> list[TenantOut]:
        principal.require_admin()
        with self.sessions() as s:
            return [TenantOut.model_validate(t, from_attributes=True) for t in tenants.list_tenants(s)]

    def create_key(self, principal: Principal, tenant_id: uuid.UUID, body: KeyCreate,
                   idem: Idempotency | None = None) -> KeyCreated:
        principal.require_tenant_admin(tenant_id)
        cube_ids = list(dict.fromkeys(body.cube_ids)) if body.cube_ids is not None else None

        def work(tx: Tx) -> KeyCreated:
            if tenants.get_tenant(tx.session, tenant_id) is None:
                raise NotFound("tenant", tenant_id)
            if cube_ids is not None:
                live = cubes.live_cube_ids(tx.session, tenant_id, cube_ids)
                missing = [str(c) for c in cube_ids if c not in live]
                if missing:
                    raise InvalidInput("cube_ids names cubes this tenant does not have",
                                       {"field": "cube_ids", "missing": missing})
            raw = new_key()
            key = tenants.add_key(tx.session, tenant_id=tenant_id, scope="tenant", key_hash=hash_key(raw),
                                  prefix=raw[:12], name=body.name, cube_ids=cube_ids, permission=body.permission)
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="key.create",
                         object_type="api_key", object_id=key.id,
                         details={"cube_ids": [str(c) for c in cube_ids] if cube_ids is not None else None,
                                  "permission": body.permission})
            return KeyCreated(id=key.id, tenant_id=tenant_id, scope=key.scope, api_key=raw,
                              created_at=key.created_at, cube_ids=cube_ids, permission=body.permission)

        return self.tx.run(principal, idem, KeyCreated, work)

    def list_keys(self, principal: Principal, tenant_id: uuid.UUID) -> list[KeyOut]:
        """The tenant's keys, revoked ones included (with when), oldest first."""
        principal.require_tenant_admin(tenant_id)
        with self.sessions() as s:
            if tenants.get_tenant(s, tenant_id) is None:
                raise NotFound("tenant", tenant_id)
            return [KeyOut.model_validate(k, from_attributes=True) for k in tenants.list_keys(s, tenant_id)]

    def revoke_key(self, principal: Principal, key_id: uuid.UUID) -> KeyRevoked:
        if principal.scope != "admin":
            principal.require_unscoped("admin")

        def work(tx: Tx) -> KeyRevoked:
            key = tenants.get_key(tx.session, key_id)
            if key is None or (principal.scope != "admin" and key.tenant_id != principal.tenant_id):
                raise NotFound("api key", key_id)
            if key.revoked_at is None:
                tenants.revoke_key(tx.session, key, utcnow())
                audit.record(tx.session, tenant_id=key.tenant_id, key_id=principal.key_id, action="key.revoke",
                             object_type="api_key", object_id=key.id)
            assert key.revoked_at is not None
            return KeyRevoked(id=key.id, revoked_at=key.revoked_at)

        revoked = self.tx.run(principal, None, KeyRevoked, work)
        self._forget_keys()
        return revoked
