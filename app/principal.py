"""Who is calling: the authenticated API key and what it may do. Below every layer, so the memory core and the
services check access the same way."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.errors import NotFound, PermissionDenied

PERMISSIONS = ("read", "write", "admin")


@dataclass(frozen=True)
class Principal:
    """The authenticated API key: admin keys manage tenants, tenant keys manage one tenant's cubes.

    A scoped tenant key (``cube_ids`` set) sees only those cubes, with ``permission`` read < write < admin;
    an unscoped tenant key is admin on every cube of its tenant.
    """

    key_id: uuid.UUID
    scope: str
    tenant_id: uuid.UUID | None
    cube_ids: frozenset[uuid.UUID] | None = None
    permission: str = "admin"

    @property
    def scoped(self) -> bool:
        return self.cube_ids is not None

    def require_cube(self, cube_id: uuid.UUID, need: str = "read") -> uuid.UUID:
        """The tenant id, once this key may ``need`` on ``cube_id``: a cube outside a scoped key's grant does
        not exist for it (404, like another tenant's), a weaker permission than needed is a 403."""
        tenant_id = self.require_tenant()
        if self.cube_ids is not None and cube_id not in self.cube_ids:
            raise NotFound("cube", cube_id)
        self.require_permission(need)
        return tenant_id

    def require_object(self, cube_id: uuid.UUID, need: str, what: str, object_id: uuid.UUID) -> None:
        """For routes that address an object (a memory, a job...) by id, once it is loaded: one in a cube outside
        a scoped key's grant does not exist for it (a 404 naming the object, not its cube)."""
        if self.cube_ids is not None and cube_id not in self.cube_ids:
            raise NotFound(what, object_id)
        self.require_permission(need)

    def require_permission(self, need: str) -> None:
        if PERMISSIONS.index(self.permission) < PERMISSIONS.index(need):
            raise PermissionDenied(f"this API key has {self.permission!r} permission; this needs {need!r}",
                                   {"permission": self.permission, "needed": need})

    def require_unscoped(self, need: str = "write") -> uuid.UUID:
        """Routes that are not about one granted cube (creating a cube, say) need a key of the whole tenant
        with at least ``need`` (by default write: a tenant-wide read key creates nothing)."""
        tenant_id = self.require_tenant()
        if self.cube_ids is not None:
            raise PermissionDenied("this API key is scoped to some cubes; this needs a key for the whole tenant")
        self.require_permission(need)
        return tenant_id

    def require_tenant(self) -> uuid.UUID:
        if self.scope != "tenant" or self.tenant_id is None:
            raise PermissionDenied("this route needs a tenant API key; admin keys manage tenants and keys only")
        return self.tenant_id

    def require_tenant_admin(self, tenant_id: uuid.UUID | None) -> None:
        """Admin keys manage every tenant; an unscoped admin-permission tenant key manages its own tenant (its
        keys, reading its quotas). Another tenant is a 404."""
        if self.scope == "admin":
            return
        if self.require_unscoped("admin") != tenant_id:
            raise NotFound("tenant", tenant_id)

    def require_admin(self) -> None:
        if self.scope != "admin":
            raise PermissionDenied("this route needs an admin API key")
