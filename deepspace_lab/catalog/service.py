"""The models catalog: add, list and resolve the models callers may use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.base import new_id
from ..errors import Conflict, InvalidRequest, NotFound
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
    id: str = ""
    enabled: bool = True

    def to_openai(self) -> dict[str, object]:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": self.owned_by,
                "context_window": self.context_window, "description": self.description}


def _info(row: CatalogModel) -> ModelInfo:
    return ModelInfo(
        name=row.name, upstream_name=row.upstream_name, context_window=row.context_window,
        modalities=tuple(row.modalities or ("text",)), description=row.description,
        owned_by=row.owned_by, created=int(row.created_at.timestamp()), id=row.id, enabled=row.enabled,
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
    name = name.strip() if isinstance(name, str) else name
    _check(name=name, upstream_name=upstream_name, context_window=context_window, modalities=modalities,
           description=description)
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


MODALITIES = ("text", "image", "audio", "video", "file")
#: What :func:`update_model` may change.
MODEL_FIELDS = ("enabled", "upstream_name", "context_window", "modalities", "description")


def _text(value: object, param: str, *, most: int, least: int = 1) -> None:
    if not isinstance(value, str) or not least <= len(value.strip() if least else value) <= most:
        raise InvalidRequest(f"`{param}` is a text of {least} to {most} characters",
                             code="invalid_model_name" if param == "name" else f"invalid_{param}", param=param)


def _check(*, name: object = "x", upstream_name: object = None, context_window: object = 1,
           modalities: object = ("text",), description: object = "", enabled: object = True) -> None:
    """The catalog's validation, shared by adding and updating."""
    _text(name, "name", most=200)
    if upstream_name is not None:
        _text(upstream_name, "upstream_name", most=200)
    if isinstance(context_window, bool) or not isinstance(context_window, int) or not 0 < context_window < 2**31:
        raise InvalidRequest("`context_window` must be a positive whole number of tokens",
                             code="invalid_context_window", param="context_window")
    if (isinstance(modalities, str) or not isinstance(modalities, (list, tuple)) or not modalities
            or any(m not in MODALITIES for m in modalities) or len(set(modalities)) != len(modalities)):
        raise InvalidRequest(f"`modalities` is a list of distinct values from {list(MODALITIES)}",
                             code="invalid_modalities", param="modalities")
    _text(description, "description", most=500, least=0)
    if not isinstance(enabled, bool):
        raise InvalidRequest("`enabled` must be true or false", code="invalid_type", param="enabled")


async def get_model(session: AsyncSession, model_id: str) -> ModelInfo:
    row = await session.get(CatalogModel, model_id)
    if row is None:
        raise NotFound(f"no model {model_id!r} in the catalog", code="model_not_found", param="model_id")
    return _info(row)


async def add_model(session: AsyncSession, *, name: str, upstream_name: str | None = None, context_window: int = 8192,
                    modalities: Sequence[str] = ("text",), description: str = "", enabled: bool = True) -> ModelInfo:
    """Add a catalog entry (flushed); ``model_exists`` (409) if the name is taken."""
    _check(name=name, upstream_name=upstream_name, context_window=context_window, modalities=modalities,
           description=description, enabled=enabled)
    if (await session.execute(select(CatalogModel.id).where(CatalogModel.name == name.strip()))).first():
        raise Conflict(f"the catalog already has a model {name.strip()!r}; update it instead", code="model_exists",
                       param="name")
    info, _ = await upsert_model(session, name=name, upstream_name=upstream_name, context_window=context_window,
                                 modalities=modalities, description=description, enabled=enabled)
    return info


async def update_model(session: AsyncSession, *, model_id: str, **changes: object) -> tuple[ModelInfo, ModelInfo]:
    """Change some of :data:`MODEL_FIELDS` of a catalog entry (flushed). Returns (before, after)."""
    unknown = sorted(set(changes) - set(MODEL_FIELDS))
    if unknown:
        raise InvalidRequest(f"unknown fields {unknown}; allowed: {list(MODEL_FIELDS)}", code="unknown_field",
                             param=unknown[0])
    for name, value in changes.items():
        if value is None:
            raise InvalidRequest(f"`{name}` cannot be null", code="invalid_type", param=name)
    _check(**changes)
    row = await session.get(CatalogModel, model_id)
    if row is None:
        raise NotFound(f"no model {model_id!r} in the catalog", code="model_not_found", param="model_id")
    before = _info(row)
    for name, value in changes.items():
        setattr(row, name, list(value) if name == "modalities" else value)  # type: ignore[call-overload]
    await session.flush()
    await session.refresh(row)
    return before, _info(row)
