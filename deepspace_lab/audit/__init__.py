"""Audit (level 0): ``audit_logs`` rows for every gateway request and operator action,
each carrying the trace id. Secrets never enter an audit row."""

from .models import AuditLog
from .writer import AuditWriter

__all__ = ["AuditLog", "AuditWriter"]
