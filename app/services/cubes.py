"""MemCube use cases."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import Conflict
from app.memory.access import require_cube
from app.models import Cube
from app.models.base import utcnow
from app.principal import Principal
from app.repositories import audit, cubes
from app.repositories import memories as memories_repo
from app.schemas.cubes import CubeCreate, CubeOut, CubePatch
from app.services.base import Idempotency, Transactor, Tx
from app.services.derived import DerivedIndexes
from app.services.quotas import reserve


def cube_out(cube: Cube, memory_count: int, enrichment_pending: int = 0) -> CubeOut:
    return CubeOut(id=cube.id, tenant_id=cube.tenant_id, name=cube.name, description=cube.description,
                   owner_id=cube.owner_id, status=cube.status, memory_count=memory_count,
                   forget_policy=cube.forget_policy, enrichment_pending=enrichment_pending,
                   created_at=cube.created_at, updated_at=cube.updated_at)


class CubeService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], tx: Transactor,
                 indexes: DerivedIndexes) -> None:
        self.settings = settings
        self.sessions = sessions
        self.tx = tx
        self.indexes = indexes

    def create(self, principal: Principal, body: CubeCreate, idem: Idempotency | None = None) -> CubeOut:
        tenant_id = principal.require_unscoped("write")

        def work(tx: Tx) -> CubeOut:
            if cubes.live_cube_by_name(tx.session, tenant_id, body.name) is not None:
                raise Conflict(f"a cube named {body.name!r} exists", {"name": body.name})
            reserve(tx.session, self.settings, tenant_id, "cubes", 1)
            cube = cubes.add_cube(tx.session, tenant_id=tenant_id, name=body.name, description=body.description,
                                  owner_id=body.owner_id)
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="cube.create",
                         object_type="cube", object_id=cube.id, details={"name": body.name})
            return cube_out(cube, 0)

        return self.tx.run(principal, idem, CubeOut, work)

    def _pending(self, s: Session, cube_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Memories whose enrichment, or whose deferred fine indexing (imports), has not run yet."""
        counts = memories_repo.count_unenriched(s, cube_ids)
        return {c: counts.get(c, 0) + self.indexes.deferred(c) for c in cube_ids}

    def get(self, principal: Principal, cube_id: uuid.UUID) -> CubeOut:
        tenant_id = principal.require_cube(cube_id, "read")
        with self.sessions() as s:
            cube = require_cube(s, tenant_id, cube_id)
            pending = self._pending(s, [cube.id])[cube.id]
            return cube_out(cube, cubes.memory_counts(s, [cube.id]).get(cube.id, 0), pending)

    def list_all(self, principal: Principal) -> list[CubeOut]:
        tenant_id = principal.require_tenant()
        with self.sessions() as s:
            found = [c for c in cubes.list_live_cubes(s, tenant_id)
                     if principal.cube_ids is None or c.id in principal.cube_ids]
            counts = cubes.memory_counts(s, [c.id for c in found])
            pending = self._pending(s, [c.id for c in found])
            return [cube_out(c, counts.get(c.id, 0), pending[c.id]) for c in found]

    def update(self, principal: Principal, cube_id: uuid.UUID, body: CubePatch) -> CubeOut:
        tenant_id = principal.require_cube(cube_id, "admin")
        fields = body.model_dump(exclude_none=True)

        def work(tx: Tx) -> CubeOut:
            cube = require_cube(tx.session, tenant_id, cube_id, lock=True)
            new_name = fields.get("name")
            if new_name is not None and new_name != cube.name \
                    and cubes.live_cube_by_name(tx.session, tenant_id, new_name) is not None:
                raise Conflict(f"a cube named {new_name!r} exists", {"name": new_name})
            for name, value in fields.items():
                setattr(cube, name, value)
            cube.updated_at = utcnow()
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="cube.update",
                         object_type="cube", object_id=cube.id, details=fields)
            tx.session.flush()
            pending = self._pending(tx.session, [cube.id])[cube.id]
            return cube_out(cube, cubes.memory_counts(tx.session, [cube.id]).get(cube.id, 0), pending)

        return self.tx.run(principal, None, CubeOut, work)

    def delete(self, principal: Principal, cube_id: uuid.UUID) -> None:
        """Soft delete: the rows stay (an operator can recover them), the cube and its index disappear."""
        tenant_id = principal.require_cube(cube_id, "admin")

        def work(tx: Tx) -> CubeOut:
            cube = require_cube(tx.session, tenant_id, cube_id, lock=True)
            cube.status = "deleted"
            audit.record(tx.session, tenant_id=tenant_id, key_id=principal.key_id, action="cube.delete",
                         object_type="cube", object_id=cube.id)
            tx.after_commit.append(lambda: self.indexes.drop(cube_id))
            return cube_out(cube, 0)

        self.tx.run(principal, None, CubeOut, work)
