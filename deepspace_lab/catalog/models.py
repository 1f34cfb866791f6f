"""The models catalog: what callers may ask for and what it is called upstream."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, CreatedAt


class CatalogModel(CreatedAt, Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: The name callers use (``model`` in a request, ``id`` in ``/v1/models``).
    name: Mapped[str] = mapped_column(String(200), unique=True)
    upstream_name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    context_window: Mapped[int] = mapped_column(Integer, default=8192)
    modalities: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["text"])
    description: Mapped[str] = mapped_column(String(500), default="")
    owned_by: Mapped[str] = mapped_column(String(100), default="deepspace")
