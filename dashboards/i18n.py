"""The admin console's text in English and Chinese, the same way the notebook side does it
(a key → template table per language). The language comes from a setting (``--lang`` /
``DEEPSPACE_LANG``), else from the browser's ``Accept-Language``; the header switches it."""

from __future__ import annotations

from .i18n_admin import ADMIN_TEXT
from .i18n_pages import TEXT_PAGES

LANGS = ("en", "zh")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "DeepSpace Lab admin", "dashboard": "Dashboard", "users": "Users", "models": "Models",
        "billing": "Billing", "audit": "Audit", "risk": "Risk & Policy", "system": "System",
        "signed_in": "Signed in as {who}", "scope_platform": "platform admin: every org",
        "scope_org": "org admin: org {org} only", "logout": "Log out", "language": "Language",
        "simulated": "SIMULATED upstream — model replies come from the built-in simulator, not from an AI",
        "not_ready": "The Gateway is not ready: {checks}",
        "login": "Log in", "email": "Email", "password": "Password",
        "login_intro": "Platform admins and org admins sign in with their DeepSpace account.",
        "refused_not_admin": "This console is for platform admins and org admins only; your account is neither.",
        "refused_credentials": "Wrong email or password.",
        "refused_rate_limited": "Too many attempts; wait a little and try again.",
        "refused_unreachable": "The Gateway cannot be reached at {url}.",
        "refused_missing": "Enter your email and password.",
        "previous": "Previous", "next": "Next", "page_size": "Rows per page", "page": "Page {page}",
        "page_rows": "Page {page} · {rows} rows", "no_rows": "No rows", "refresh": "Refresh",
        "required": "required", "saved": "Saved", "submit": "Submit",
        "job_queued": "Queued", "job_running": "Running: {done} of {total}", "job_running_unknown": "Running…",
        "job_done": "Done", "job_failed": "Failed: {error}",
        "roles_permissions": "Roles & permissions", "organizations": "Organizations", "user_list": "Users",
        "action": "Action", "key_scope": "Key scope", "note": "Note",
        "platform_only": "platform admins only", "own_org_only": "platform admins; org admins on their own org",
        "matrix_intro": "Who may do what, as the Gateway decides it (GET /deepspace/admin/api/permissions). "
                        "A key's rights are its scopes within its owner's role.",
        "catalog": "Catalog", "price_history": "Price history", "price_history_of": "Model",
        "price_units": "Prices in credits per million tokens; a scheduled one takes effect at its time.",
        "platform_admins_page": "The models catalog and prices are managed by platform admins.",
        "wallets": "Wallets", "transactions": "Transactions",
        "filter_org": "Org id", "filter_type": "Type", "filter_trace": "Trace id", "in_credits": "{name} (credits)",
    },
    "zh": {
        "title": "DeepSpace Lab 管理后台", "dashboard": "仪表盘", "users": "用户", "models": "模型",
        "billing": "计费", "audit": "审计", "risk": "风控与策略", "system": "系统",
        "signed_in": "当前登录：{who}", "scope_platform": "平台管理员：全部组织",
        "scope_org": "组织管理员：仅组织 {org}", "logout": "退出", "language": "语言",
        "simulated": "模拟上游 — 模型回复由内置模拟器生成，并非 AI",
        "not_ready": "网关未就绪：{checks}",
        "login": "登录", "email": "邮箱", "password": "密码",
        "login_intro": "平台管理员和组织管理员使用 DeepSpace 账号登录。",
        "refused_not_admin": "此后台仅供平台管理员和组织管理员使用；你的账号都不是。",
        "refused_credentials": "邮箱或密码错误。",
        "refused_rate_limited": "尝试次数过多，请稍后再试。",
        "refused_unreachable": "无法连接网关 {url}。",
        "refused_missing": "请输入邮箱和密码。",
        "previous": "上一页", "next": "下一页", "page_size": "每页行数", "page": "第 {page} 页",
        "page_rows": "第 {page} 页 · {rows} 行", "no_rows": "没有数据", "refresh": "刷新",
        "required": "必填", "saved": "已保存", "submit": "提交",
        "job_queued": "排队中", "job_running": "运行中：{done} / {total}", "job_running_unknown": "运行中…",
        "job_done": "已完成", "job_failed": "失败：{error}",
        "roles_permissions": "角色与权限", "organizations": "组织", "user_list": "用户列表",
        "action": "操作", "key_scope": "密钥范围", "note": "说明",
        "platform_only": "仅平台管理员", "own_org_only": "平台管理员；组织管理员仅限本组织",
        "matrix_intro": "谁可以做什么，由网关判定（GET /deepspace/admin/api/permissions）。"
                        "密钥的权限是其范围与所有者角色的交集。",
        "catalog": "模型目录", "price_history": "价格历史", "price_history_of": "模型",
        "price_units": "价格单位：积分 / 百万 token；预约的价格在其生效时间起生效。",
        "platform_admins_page": "模型目录和价格由平台管理员管理。",
        "wallets": "钱包", "transactions": "交易记录",
        "filter_org": "组织 ID", "filter_type": "类型", "filter_trace": "链路 ID", "in_credits": "{name}（积分）",
    },
}

TEXT["en"].update(TEXT_PAGES["en"])  # the Dashboard, Models, Billing and Audit pages' text
TEXT["zh"].update(TEXT_PAGES["zh"])
TEXT["en"].update(ADMIN_TEXT["en"])  # the Users, Risk & Policy and System pages' text
TEXT["zh"].update(ADMIN_TEXT["zh"])


def pick_language(setting: str | None = None, accept_language: str | None = None) -> str:
    """``setting`` if it names a language, else the browser's first preference we have, else English."""
    if setting and setting.lower()[:2] in LANGS:
        return setting.lower()[:2]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGS:
            return tag
    return "en"


def credits(micros: object) -> str:
    """Micro-credits as credits (exact: six decimals, trailing zeros dropped); "—" for none."""
    if micros is None or isinstance(micros, float) and micros != micros:
        return "—"
    value = int(micros)  # type: ignore[call-overload]
    whole, frac = divmod(abs(value), 1_000_000)
    return ("-" if value < 0 else "") + f"{whole:,}" + (f".{frac:06d}".rstrip("0") if frac else "")


class Text:
    """``text("page_rows", page=2, rows=25)``: the template in this language (English if missing)."""

    def __init__(self, lang: str = "en") -> None:
        self.lang = lang if lang in LANGS else "en"

    def __call__(self, key: str, **values: object) -> str:
        template = TEXT[self.lang].get(key) or TEXT["en"][key]
        return template.format(**values) if values else template

    def has(self, key: str) -> bool:
        return key in TEXT["en"]
