"""Text of the Dashboard, Models, Billing and Audit pages in English and Chinese (merged into
:data:`.i18n.TEXT`; a test keeps both languages' keys equal)."""

from __future__ import annotations

TEXT_PAGES: dict[str, dict[str, str]] = {
    "en": {
        # dashboard
        "last_days": "Last {days} days", "requests": "Requests", "tokens": "Tokens", "cost_credits": "Cost (credits)",
        "errors": "Errors", "error_rate_today": "Error rate today", "credits": "credits", "org": "Org",
        "anomalies": "Anomalies", "no_anomalies": "No anomalies: nothing needs you now.", "trends": "Trends",
        "top_spenders": "Top spenders", "cost_by_day": "Cost per day", "requests_by_day": "Requests per day",
        "cost_by_model": "Cost per model",
        "cost_by_org": "Cost per org", "act_on": "Act: {page}",
        "rolled_until": "From the hourly roll-ups, built up to {until} (UTC); newer requests show once rolled up.",
        "anomaly_spend_spike_title": "Spend spike",
        "anomaly_spend_spike": "{today} credits spent today, against {baseline} a day over the 7 days before.",
        "anomaly_error_spike_title": "Error-rate spike",
        "anomaly_error_spike": "{today} of today's requests failed ({errors} errors), against {baseline} over the "
                               "7 days before.",
        "anomaly_stuck_holds_title": "Holds stuck open",
        "anomaly_stuck_holds": "{count} holds are open past their lease (oldest lapsed {since}); reconciliation "
                               "releases them (`deepspace-lab scheduled reconcile`).",
        "anomaly_drift_title": "Reconciliation drift",
        "anomaly_drift": "The last reconciliation ({at}) found {count} problems in the ledger's invariants.",
        "anomaly_low_balance_title": "Low balances",
        "anomaly_low_balance": "{count} wallets below {threshold} credits: {names}.",
        # models
        "enable": "Enable", "disable": "Disable", "price_input": "Input (credits / million tokens)",
        "price_output": "Output (credits / million tokens)",
        "effective_at": "In force from (ISO time, UTC; empty: now)",
        "schedule_price": "Schedule a price", "model_name": "Name", "upstream_name": "Upstream name",
        "context_window": "Context window (tokens)", "add_model": "Add a model",
        "schedule_intro": "A new version for the chosen model; a future time schedules it, and requests keep the "
                          "price in force when they started.",
        # billing
        "usage_records": "Usage records", "credit_codes": "Credit codes", "statements": "Statements",
        "filter_model": "Model", "filter_status": "Status", "filter_since": "Since", "filter_until": "Until",
        "credit": "Credit", "debit": "Debit", "amount_credits": "Amount (credits)", "reason": "Reason",
        "apply": "Apply", "adjust_wallet": "Credit or debit a wallet",
        "adjust_intro": "Every change is a ledger entry with its reason. Clicking twice moves the money once; "
                        "change the form to make another operation.",
        "money_moved": "Done: {type} of {amount} credits; the balance is now {balance}.",
        "money_replayed": "Already done (the same operation was sent before): {type} of {amount} credits; the "
                          "balance is {balance}.",
        "month": "Month (YYYY-MM)", "make_statement": "Make the statement",
        "statements_intro": "An org's monthly statement (usage by project and model, credits, debits, captures, "
                            "refunds, opening and closing balance) as Markdown and CSV, made by the Worker.",
        "format": "Format", "export": "Export",
        "code_count": "How many", "expires_at": "Expires at (optional)", "code_org": "Only for org (optional)",
        "create_codes": "Create a batch of codes", "code_batches": "Batches", "codes_of_batch": "Codes of a batch",
        "codes_once": "The new codes — shown this once; copy them now", "batch_id": "Batch id", "code_id": "Code id",
        "filter_state": "State", "revoke_batch": "Revoke the batch", "revoke_code": "Revoke one code",
        # audit
        "trace_lookup": "Trace lookup", "request_log": "Request log", "look_up": "Look up", "timeline": "Timeline",
        "trace_intro": "Everything one trace id touched, in time order: a request, or a whole workflow run with "
                       "its steps. Click a row of the request log to open its trace.",
        "trace_items": "{count} items carry trace `{trace}`.",
        "filter_status_code": "Status", "filter_error_code": "Error code", "filter_path": "Path (prefix)",
        # errors
        "error_invalid_amount": "Not an amount in credits (at most 6 decimals)",
        "error_invalid_number": "Not a whole number", "error_invalid_trace_id": "Not a trace id",
        "error_trace_not_found": "Nothing carries this trace id",
        "error_price_version_exists": "Another price already starts at that time",
        "error_invalid_time": "Not a time (ISO 8601, e.g. 2026-12-31T00:00:00Z)",
        "error_insufficient_funds": "The wallet cannot go that low",
        "error_model_required": "Choose a model first",
    },
    "zh": {
        "last_days": "最近 {days} 天", "requests": "请求数", "tokens": "Token 数", "cost_credits": "费用（积分）",
        "errors": "错误数", "error_rate_today": "今日错误率", "credits": "积分", "org": "组织",
        "anomalies": "异常", "no_anomalies": "没有异常：目前无需处理。", "trends": "趋势",
        "top_spenders": "消费排行", "cost_by_day": "每日费用", "requests_by_day": "每日请求数",
        "cost_by_model": "各模型费用",
        "cost_by_org": "各组织费用", "act_on": "处理：{page}",
        "rolled_until": "数据来自小时汇总，已汇总至 {until}（UTC）；更新的请求汇总后显示。",
        "anomaly_spend_spike_title": "消费激增",
        "anomaly_spend_spike": "今日消费 {today} 积分，前 7 天日均 {baseline} 积分。",
        "anomaly_error_spike_title": "错误率激增",
        "anomaly_error_spike": "今日请求失败率 {today}（{errors} 个错误），前 7 天为 {baseline}。",
        "anomaly_stuck_holds_title": "冻结未释放",
        "anomaly_stuck_holds": "{count} 笔冻结已超过租期仍未结束（最早于 {since} 到期）；对账会释放它们"
                               "（`deepspace-lab scheduled reconcile`）。",
        "anomaly_drift_title": "对账差异",
        "anomaly_drift": "最近一次对账（{at}）发现账本不变量有 {count} 处问题。",
        "anomaly_low_balance_title": "余额不足",
        "anomaly_low_balance": "{count} 个钱包低于 {threshold} 积分：{names}。",
        "enable": "启用", "disable": "停用", "price_input": "输入（积分 / 百万 token）",
        "price_output": "输出（积分 / 百万 token）", "effective_at": "生效时间（ISO 时间，UTC；留空为立即）",
        "schedule_price": "预约价格", "model_name": "名称", "upstream_name": "上游名称",
        "context_window": "上下文窗口（token）", "add_model": "新增模型",
        "schedule_intro": "为所选模型新增一个价格版本；填写未来时间即为预约，请求按其开始时生效的价格计费。",
        "usage_records": "用量记录", "credit_codes": "充值码", "statements": "账单",
        "filter_model": "模型", "filter_status": "状态", "filter_since": "起始", "filter_until": "截止",
        "credit": "充值", "debit": "扣减", "amount_credits": "金额（积分）", "reason": "原因",
        "apply": "执行", "adjust_wallet": "钱包充值或扣减",
        "adjust_intro": "每次变动都是一条带原因的账本记录。重复点击只会执行一次；修改表单即为新的操作。",
        "money_moved": "已完成：{type} {amount} 积分；当前余额 {balance}。",
        "money_replayed": "已执行过（同一操作此前已提交）：{type} {amount} 积分；余额 {balance}。",
        "month": "月份（YYYY-MM）", "make_statement": "生成账单",
        "statements_intro": "组织的月度账单（按项目和模型的用量、充值、扣减、结算、退款、期初和期末余额），"
                            "由 Worker 生成 Markdown 和 CSV。",
        "format": "格式", "export": "导出",
        "code_count": "数量", "expires_at": "过期时间（可选）", "code_org": "仅限组织（可选）",
        "create_codes": "创建一批充值码", "code_batches": "批次", "codes_of_batch": "批次中的充值码",
        "codes_once": "新的充值码 — 仅显示这一次，请立即复制", "batch_id": "批次 ID", "code_id": "充值码 ID",
        "filter_state": "状态", "revoke_batch": "作废整批", "revoke_code": "作废单个充值码",
        "trace_lookup": "链路查询", "request_log": "请求日志", "look_up": "查询", "timeline": "时间线",
        "trace_intro": "一个链路 ID 涉及的全部记录，按时间排序：一次请求，或一次完整的工作流运行及其步骤。"
                       "点击请求日志中的一行即可打开其链路。",
        "trace_items": "链路 `{trace}` 共 {count} 条记录。",
        "filter_status_code": "状态码", "filter_error_code": "错误码", "filter_path": "路径（前缀）",
        "error_invalid_amount": "不是有效的积分金额（最多 6 位小数）",
        "error_invalid_number": "不是整数", "error_invalid_trace_id": "不是有效的链路 ID",
        "error_trace_not_found": "没有记录带有此链路 ID",
        "error_price_version_exists": "该时间已有另一个价格版本",
        "error_invalid_time": "不是有效时间（ISO 8601，例如 2026-12-31T00:00:00Z）",
        "error_insufficient_funds": "钱包余额不能低于此值",
        "error_model_required": "请先选择模型",
    },
}
