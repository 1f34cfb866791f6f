"""files: what callers stored (uploads) and what jobs produced (exports, statements),
per org and project. The bytes live in storage under ``<org>/<project>/<file id>``."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base, CreatedAt

FILE_KINDS = ("upload", "export", "statement", "artifact")


class File(CreatedAt, Base):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_org_id_project_id_created_at", "org_id", "project_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="upload")
    #: the path inside storage (never shown to callers)
    storage_key: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
