"""Text of the Users, Risk & Policy and System pages, English and Chinese (merged into
:data:`.i18n.TEXT`; a test keeps both languages' keys equal)."""

from __future__ import annotations

ADMIN_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "search": "Search", "status": "Status", "user_id": "User id", "status_change": "Change",
        "role": "Role", "set_role": "Set role",
        "org_detail": "Org id (its projects and members)", "projects": "Projects", "members": "Members",
        "filter_kind": "Kind", "policy_history": "Versions", "in_force_only": "in force",
        "with_history": "with history", "policy_kind": "Kind", "policy_scope": "Scope", "scope_id": "Scope id",
        "cidr": "Address or CIDR", "ip_action": "Action", "concurrency": "in flight",
        "allowed_models": "Allowed models (comma-separated)", "set_policy": "Set a policy", "policy_id": "Policy id",
        "delete_policy": "End policy", "period": "Period", "limit_micros": "Cap (micro-credits)",
        "set_budget": "Set a budget cap", "policies": "Policies", "budgets": "Budget caps",
        "policies_intro": "Rate limits, IP allow/deny rules and model policies in force (every version with "
                          "history). A change is in force from the next request in every gateway process; a denied "
                          "address gets 403 `ip_denied`.",
        "budgets_intro": "Spending caps per org, project or key and UTC day or month, with this period's spend, "
                         "what open requests reserve and what remains: a request that would pass the cap gets "
                         "429 `budget_exceeded`.",
        "risk_read_only": "Policies and caps are changed by platform admins; you see your org's.",
        "usage_now": "A caller's limits, used now", "show_usage": "Show", "project_id": "Project id",
        "filter_revoked": "Keys", "live": "live", "revoked": "revoked", "key_id": "Key id", "revoke": "Revoke",
        "api_keys": "API keys", "webhooks": "Webhooks", "keys_platform_only": "API keys of every org are for "
        "platform admins; your own org's keys are in the workbench's Profile.",
        "webhook_url": "Receiver URL", "webhook_events": "Events", "webhook_org": "Org id (empty: global)",
        "create_webhook": "Add a webhook", "webhook_id": "Webhook id", "delivery_id": "Delivery id",
        "secret_once": "Signing secret of {id}, shown this once — keep it now: `{secret}`",
        "send_test": "Send test event", "redeliver": "Redeliver", "delivery_log": "Delivery log",
        "choose_webhook": "Enter a webhook id first.", "delivering": "Delivering {event}…",
        "error_webhook_required": "Enter a webhook id first",
        "delivery_state": "{status} (attempt {attempt}, HTTP {code})",
        "signature_help": "Each delivery is a POST of JSON signed with the webhook's secret: "
                          "`X-DeepSpace-Signature: sha256=HMAC-SHA256(secret, \"<X-DeepSpace-Timestamp>.<body>\")`; "
                          "failures are retried with backoff, every attempt is logged below.",
    },
    "zh": {
        "search": "搜索", "status": "状态", "user_id": "用户 ID", "status_change": "更改",
        "role": "角色", "set_role": "设置角色",
        "org_detail": "组织 ID（查看其项目和成员）", "projects": "项目", "members": "成员",
        "filter_kind": "类型", "policy_history": "版本", "in_force_only": "生效中",
        "with_history": "含历史", "policy_kind": "类型", "policy_scope": "范围", "scope_id": "范围 ID",
        "cidr": "地址或 CIDR", "ip_action": "动作", "concurrency": "并发",
        "allowed_models": "允许的模型（逗号分隔）", "set_policy": "设置策略", "policy_id": "策略 ID",
        "delete_policy": "结束策略", "period": "周期", "limit_micros": "上限（微积分）",
        "set_budget": "设置预算上限", "policies": "策略", "budgets": "预算上限",
        "policies_intro": "生效中的速率限制、IP 允许/拒绝规则和模型策略（可查看全部历史版本）。"
                          "更改从下一个请求起在所有网关进程生效；被拒绝的地址得到 403 `ip_denied`。",
        "budgets_intro": "按组织、项目或密钥，按 UTC 日或月的消费上限，以及本周期的消费、进行中请求的预留和剩余额度："
                         "超出上限的请求得到 429 `budget_exceeded`。",
        "risk_read_only": "策略和上限由平台管理员修改；你可以查看本组织的。",
        "usage_now": "调用方的限制及当前用量", "show_usage": "查看", "project_id": "项目 ID",
        "filter_revoked": "密钥", "live": "有效", "revoked": "已吊销", "key_id": "密钥 ID", "revoke": "吊销",
        "api_keys": "API 密钥", "webhooks": "Webhook", "keys_platform_only": "所有组织的 API 密钥仅供平台管理员查看；"
        "本组织的密钥在工作台的个人资料中。",
        "webhook_url": "接收地址", "webhook_events": "事件", "webhook_org": "组织 ID（留空：全局）",
        "create_webhook": "新增 Webhook", "webhook_id": "Webhook ID", "delivery_id": "投递 ID",
        "secret_once": "{id} 的签名密钥仅显示这一次，请立即保存：`{secret}`",
        "send_test": "发送测试事件", "redeliver": "重新投递", "delivery_log": "投递记录",
        "choose_webhook": "请先输入 Webhook ID。", "delivering": "正在投递 {event}…",
        "error_webhook_required": "请先输入 Webhook ID",
        "delivery_state": "{status}（第 {attempt} 次尝试，HTTP {code}）",
        "signature_help": "每次投递是一个用 Webhook 密钥签名的 JSON POST："
                          "`X-DeepSpace-Signature: sha256=HMAC-SHA256(密钥, \"<X-DeepSpace-Timestamp>.<正文>\")`；"
                          "失败按退避重试，每次尝试都记录在下方。",
    },
}
