"""Every table, imported in one place for migrations and tests (``Base.metadata``)."""

from __future__ import annotations

from .audit.models import AuditLog
from .auth.models import ApiKey, Org, OrgMember, Project, User
from .billing.models import (
    Budget,
    BudgetCounter,
    CreditCode,
    CreditCodeBatch,
    Hold,
    HoldBudgetCounter,
    Price,
    RollupMark,
    Transaction,
    UsageRecord,
    UsageRollup,
    Wallet,
)
from .catalog.models import CatalogModel
from .conversations.models import Conversation, Message
from .db.base import Base
from .files.models import File
from .idempotency.models import IdempotencyKey
from .jobs.models import Job, JobEvent
from .policy.models import Policy, PolicyEpoch
from .webhooks.models import Webhook, WebhookAlert, WebhookDelivery
from .workflows.models import StepRun, Workflow, WorkflowEvent, WorkflowRun, WorkflowVersion

metadata = Base.metadata

__all__ = [
    "ApiKey", "AuditLog", "Budget", "BudgetCounter", "CatalogModel", "Conversation", "CreditCode",
    "CreditCodeBatch", "File", "Hold",
    "HoldBudgetCounter", "IdempotencyKey", "Job", "JobEvent", "Message", "Org", "OrgMember", "Policy", "PolicyEpoch",
    "Price", "Project", "RollupMark", "StepRun", "Transaction", "UsageRecord", "UsageRollup", "User", "Wallet",
    "Webhook", "WebhookAlert", "WebhookDelivery", "Workflow", "WorkflowEvent", "WorkflowRun", "WorkflowVersion",
    "metadata",
]
