"""Database: declarative base, engines and Alembic migrations (level 0).

Domain packages own their tables (``<domain>/models.py``); :mod:`deepspace_lab.schema`
imports them all for migrations.
"""

from .base import Base, new_id, utcnow
from .engine import make_async_engine, make_sessionmaker, make_sync_engine

__all__ = ["Base", "make_async_engine", "make_sessionmaker", "make_sync_engine", "new_id", "utcnow"]
