"""Admin API, accounts area (users, orgs, API keys across orgs, webhooks, risk & policy): the
calls, and the methods both clients get from :class:`AccountsAdminCalls` (over the client's
``_send``: answers for the sync client, awaitables for the async one). Admin credentials only
(a platform admin's key or token, or an org admin's token for their own org)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ._base import Call

ADMIN = "/deepspace/admin/api"
R = TypeVar("R")


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def users(filters: dict[str, Any]) -> Call:
    return Call("GET", ADMIN + "/users", params=filters)


def user(user_id: str) -> Call:
    return Call("GET", f"{ADMIN}/users/{user_id}")


def user_status(user_id: str, verb: str) -> Call:
    return Call("POST", f"{ADMIN}/users/{user_id}/{verb}")


def member_role(org_id: str, user_id: str, role: str) -> Call:
    return Call("PATCH", f"{ADMIN}/orgs/{org_id}/members/{user_id}", json={"role": role})


def orgs(filters: dict[str, Any]) -> Call:
    return Call("GET", ADMIN + "/orgs", params=filters)


def org(org_id: str) -> Call:
    return Call("GET", f"{ADMIN}/orgs/{org_id}")


def keys(filters: dict[str, Any]) -> Call:
    return Call("GET", ADMIN + "/keys", params=filters)


def revoke_key(key_id: str) -> Call:
    return Call("DELETE", f"{ADMIN}/keys/{key_id}")


def webhooks(filters: dict[str, Any]) -> Call:
    return Call("GET", ADMIN + "/webhooks", params=filters)


def create_webhook(body: dict[str, Any]) -> Call:
    return Call("POST", ADMIN + "/webhooks", json=body)


def webhook(webhook_id: str, method: str = "GET", body: dict[str, Any] | None = None) -> Call:
    return Call(method, f"{ADMIN}/webhooks/{webhook_id}", json=body)


def rotate_webhook_secret(webhook_id: str) -> Call:
    return Call("POST", f"{ADMIN}/webhooks/{webhook_id}/rotate-secret")


def webhook_deliveries(webhook_id: str, filters: dict[str, Any]) -> Call:
    return Call("GET", f"{ADMIN}/webhooks/{webhook_id}/deliveries", params=filters)


def test_webhook(webhook_id: str) -> Call:
    return Call("POST", f"{ADMIN}/webhooks/{webhook_id}/test")


def redeliver(webhook_id: str, delivery_id: str) -> Call:
    return Call("POST", f"{ADMIN}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")


def policies(filters: dict[str, Any]) -> Call:
    return Call("GET", ADMIN + "/policies", params=filters)


def set_policy(body: dict[str, Any]) -> Call:
    return Call("POST", ADMIN + "/policies", json=body)


def delete_policy(policy_id: int) -> Call:
    return Call("DELETE", f"{ADMIN}/policies/{policy_id}")


def budgets(filters: dict[str, Any]) -> Call:
    return Call("GET", ADMIN + "/budgets", params=filters)


def set_budget(body: dict[str, Any]) -> Call:
    return Call("PUT", ADMIN + "/budgets", json=body)


def rate_usage(filters: dict[str, Any]) -> Call:
    return Call("GET", ADMIN + "/limits", params=filters)


def delete_budget(budget_id: int) -> Call:
    return Call("DELETE", f"{ADMIN}/budgets/{budget_id}")


def _new_webhook(url: str, events: list[str], enabled: bool | None, org_id: str | None) -> dict[str, Any]:
    return _body(url=url, events=events, enabled=enabled, org_id=org_id)


def _new_policy(kind: str, scope: str, spec: dict[str, Any], scope_id: str | None, cidr: str | None) -> dict[str, Any]:
    return _body(kind=kind, scope=scope, spec=spec, scope_id=scope_id, cidr=cidr)


def _new_budget(org_id: str, scope: str, period: str, limit_micros: int, scope_id: str | None) -> dict[str, Any]:
    return _body(org_id=org_id, scope=scope, period=period, limit_micros=limit_micros, scope_id=scope_id)


class AccountsAdminCalls(Generic[R]):
    """The accounts area of the Admin API. Lists answer a page ``{"data": [...], "next_cursor": ...}``;
    pass ``cursor=`` to get the next."""

    def _send(self, call: Call) -> R:  # provided by the client
        raise NotImplementedError

    # -- users and orgs -------------------------------------------------------------------
    def admin_users(self, **filters: Any) -> R:
        """Filters: q, status, platform_admin (bool), org_id, cursor, limit."""
        return self._send(users(filters))

    def admin_user(self, user_id: str) -> R:
        """A user with their memberships."""
        return self._send(user(user_id))

    def admin_disable_user(self, user_id: str) -> R:
        """Their keys and sessions are refused from their next request."""
        return self._send(user_status(user_id, "disable"))

    def admin_enable_user(self, user_id: str) -> R:
        return self._send(user_status(user_id, "enable"))

    def admin_set_member_role(self, org_id: str, user_id: str, role: str) -> R:
        return self._send(member_role(org_id, user_id, role))

    def admin_orgs(self, **filters: Any) -> R:
        """Filters: q, cursor, limit."""
        return self._send(orgs(filters))

    def admin_org(self, org_id: str) -> R:
        """An org with its projects and members."""
        return self._send(org(org_id))

    # -- API keys and webhooks ------------------------------------------------------------
    def admin_keys(self, **filters: Any) -> R:
        """Every org's keys. Filters: org_id, user_id, project_id, revoked (bool), cursor, limit."""
        return self._send(keys(filters))

    def admin_revoke_key(self, key_id: str) -> R:
        return self._send(revoke_key(key_id))

    def admin_webhooks(self, **filters: Any) -> R:
        """Filters: org_id, cursor, limit."""
        return self._send(webhooks(filters))

    def admin_create_webhook(self, *, url: str, events: list[str], enabled: bool | None = None,
                             org_id: str | None = None) -> R:
        """A new webhook; its signing ``secret`` is in this answer only."""
        return self._send(create_webhook(_new_webhook(url, events, enabled, org_id)))

    def admin_webhook(self, webhook_id: str) -> R:
        return self._send(webhook(webhook_id))

    def admin_update_webhook(self, webhook_id: str, **changes: Any) -> R:
        """Changes: url, events, enabled."""
        return self._send(webhook(webhook_id, "PATCH", changes))

    def admin_delete_webhook(self, webhook_id: str) -> R:
        return self._send(webhook(webhook_id, "DELETE"))

    def admin_rotate_webhook_secret(self, webhook_id: str) -> R:
        """A new signing ``secret`` (the old one stops at once), in this answer only."""
        return self._send(rotate_webhook_secret(webhook_id))

    def admin_webhook_deliveries(self, webhook_id: str, **filters: Any) -> R:
        """The hook's delivery attempts, newest first. Filters: cursor, limit."""
        return self._send(webhook_deliveries(webhook_id, filters))

    def admin_test_webhook(self, webhook_id: str) -> R:
        """Queue a signed ``ping`` to the hook; answers the Worker job (202)."""
        return self._send(test_webhook(webhook_id))

    def admin_redeliver_webhook(self, webhook_id: str, delivery_id: str) -> R:
        """Send an earlier delivery's event again (same body and event id, fresh signature)."""
        return self._send(redeliver(webhook_id, delivery_id))

    # -- risk & policy --------------------------------------------------------------------
    def admin_policies(self, **filters: Any) -> R:
        """Filters: org_id, kind, history (bool), cursor, limit."""
        return self._send(policies(filters))

    def admin_set_policy(self, *, kind: str, scope: str, spec: dict[str, Any], scope_id: str | None = None,
                         cidr: str | None = None) -> R:
        return self._send(set_policy(_new_policy(kind, scope, spec, scope_id, cidr)))

    def admin_delete_policy(self, policy_id: int) -> R:
        return self._send(delete_policy(policy_id))

    def admin_budgets(self, **filters: Any) -> R:
        """Caps with this period's spend. Filters: org_id, cursor, limit."""
        return self._send(budgets(filters))

    def admin_set_budget(self, *, org_id: str, scope: str, period: str, limit_micros: int,
                         scope_id: str | None = None) -> R:
        return self._send(set_budget(_new_budget(org_id, scope, period, limit_micros, scope_id)))

    def admin_delete_budget(self, budget_id: int) -> R:
        return self._send(delete_budget(budget_id))

    def admin_rate_usage(self, org_id: str, *, project_id: str | None = None, api_key_id: str | None = None) -> R:
        """The rate limits a caller of this org (project, key) is under, each with its use now."""
        return self._send(rate_usage(_body(org_id=org_id, project_id=project_id, api_key_id=api_key_id)))
