"""The models catalog: add, list and resolve the models callers may use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.base import new_id
from ..errors import InvalidRequest
from .models import CatalogModel


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A detached, immutable view of one catalog row (safe to cache)."""

    name: str
    upstream_name: str
    context_window: int
    modalities: tuple[str, ...]
    description: str
    owned_by: str
    created: int

    def to_openai(self) -> dict[str, object]:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": self.owned_by,
                "context_window": self.context_window, "description": self.description}


def _info(row: CatalogModel) -> ModelInfo:
    return ModelInfo(
        name=row.name, upstream_name=row.upstream_name, context_window=row.context_window,
        modalities=tuple(row.modalities or ("text",)), description=row.description,
        owned_by=row.owned_by, created=int(row.created_at.timestamp()),
    )


async def list_models(session: AsyncSession, *, enabled_only: bool = True) -> list[ModelInfo]:
    query = select(CatalogModel).order_by(CatalogModel.name)
    if enabled_only:
        query = query.where(CatalogModel.enabled.is_(True))
    return [_info(row) for row in (await session.execute(query)).scalars()]


async def find_enabled_model(session: AsyncSession, name: str) -> ModelInfo | None:
    row = (await session.execute(
        select(CatalogModel).where(CatalogModel.name == name, CatalogModel.enabled.is_(True))
    )).scalar_one_or_none()
    return None if row is None else _info(row)


async def upsert_model(
    session: AsyncSession,
    *,
    name: str,
    upstream_name: str | None = None,
    context_window: int = 8192,
    modalities: Sequence[str] = ("text",),
    description: str = "",
    owned_by: str = "deepspace",
    enabled: bool = True,
) -> tuple[ModelInfo, bool]:
    """Add or update a catalog entry. Returns (model, created)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("a model name is 1-200 characters", code="invalid_model_name", param="name")
    if context_window <= 0:
        raise InvalidRequest("context_window must be positive", code="invalid_context_window")
    row = (await session.execute(select(CatalogModel).where(CatalogModel.name == name))).scalar_one_or_none()
    created = row is None
    if row is None:
        row = CatalogModel(id=new_id("mdl"), name=name)
        session.add(row)
    row.upstream_name = upstream_name or name
    row.context_window = context_window
    row.modalities = list(modalities)
    row.description = description
    row.owned_by = owned_by
    row.enabled = enabled
    await session.flush()
    await session.refresh(row)
    return _info(row), created
