"""The console's pages, one module each, in the spec's navigation order (DESIGN §9). Each
page is a class taking the client (the only way to the Gateway) and the text table."""

from .audit import AuditPage
from .base import Page
from .billing import BillingPage
from .dashboard import DashboardPage
from .models import ModelsPage
from .risk import RiskPage
from .system import SystemPage
from .users import UsersPage

#: the navigation: (text key, page class)
PAGES: tuple[type[Page], ...] = (DashboardPage, UsersPage, ModelsPage, BillingPage, AuditPage, RiskPage, SystemPage)

__all__ = ["PAGES", "AuditPage", "BillingPage", "DashboardPage", "ModelsPage", "Page", "RiskPage", "SystemPage",
           "UsersPage"]
