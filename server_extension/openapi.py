"""The OpenAPI 3 document of every route (``GET /deepspace/api/openapi.json``).

Written by hand next to the handlers; tests keep it exact: each route and method here has a
handler and each handler method is here, and schemathesis checks live answers against it.
"""

from __future__ import annotations

from typing import Any

from deepspace_lab import __version__

from .base import DeepSpaceHandler

ID = {"type": "string", "pattern": "^[A-Za-z0-9_]{1,40}$"}
TIME = {"type": "string", "format": "date-time"}
NTIME = {"type": ["string", "null"], "format": "date-time"}
STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Any], required: list[str] | None = None, extra: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": extra}
    if required is not None:
        schema["required"] = required
    return schema


def listing(item: str, *, paged: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"data": {"type": "array", "items": ref(item)}}
    if paged:
        props["next_cursor"] = NSTR
    return obj(props, list(props))


#: the OpenAI error object: what ``Error`` wraps, and the data of the stream's ``error`` event
ERROR_OBJECT = obj({"message": STR, "type": STR, "param": NSTR, "code": STR}, ["message", "type", "code"], extra=True)

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": ERROR_OBJECT}, ["error"]),
    "ChatMessage": obj({"role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
                        "content": {"type": ["string", "array", "null"]}}, ["role"], extra=True),
    "ChatCompletionRequest": obj({
        "model": {"type": "string", "minLength": 1},
        "messages": {"type": "array", "minItems": 1, "items": ref("ChatMessage")},
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number"},
        "top_p": {"type": "number"},
        "n": {"type": "integer", "minimum": 1},
        "conversation_id": {**ID, "description": "store this turn under a conversation of yours (DeepSpace extra)"},
    }, ["model", "messages"], extra=True),
    "ChatCompletion": obj({"id": STR, "object": STR, "model": STR, "choices": {"type": "array"},
                           "usage": {"type": ["object", "null"]}}, ["id", "choices"], extra=True),
    "Model": obj({"id": STR, "object": STR, "created": {"type": "integer"}, "owned_by": STR,
                  "context_window": {"type": "integer"}, "description": STR}, ["id", "object"]),
    "ModelList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}},
                     ["object", "data"]),
    "Conversation": obj({"id": STR, "object": {"const": "conversation"}, "title": STR, "project_id": STR,
                         "created_at": TIME}, ["id", "object", "title", "project_id", "created_at"]),
    "Message": obj({"role": STR, "content": STR, "model": NSTR, "tokens": {"type": ["integer", "null"]},
                    "trace_id": STR, "request_id": STR, "created_at": TIME}),
    "ConversationWithMessages": {"allOf": [ref("Conversation")], "type": "object",
                                 "properties": {"messages": {"type": "array", "items": ref("Message")}},
                                 "required": ["messages"]},
    "ConversationList": listing("Conversation", paged=True),
    "NewConversation": obj({"title": {"type": "string", "maxLength": 300}}),
    "Rename": obj({"title": {"type": "string", "maxLength": 300}}, ["title"]),
    "Login": obj({"email": {"type": "string", "minLength": 1}, "password": {"type": "string", "minLength": 1}},
                 ["email", "password"]),
    "HubToken": obj({"hub_token": {"type": "string", "minLength": 1}}, ["hub_token"]),
    "Refresh": obj({"refresh_token": {"type": "string", "minLength": 1}}, ["refresh_token"]),
    "TokenPair": obj({"access_token": STR, "token_type": {"const": "bearer"}, "expires_in": {"type": "integer"},
                      "refresh_token": STR, "refresh_expires_at": TIME},
                     ["access_token", "token_type", "expires_in", "refresh_token"]),
    "OrgRef": obj({"id": STR, "name": STR, "role": STR}, ["id", "name", "role"]),
    "OrgList": listing("OrgRef"),
    "Me": obj({"user": obj({"id": STR, "email": STR, "name": STR, "is_platform_admin": {"type": "boolean"}}),
               "org_id": STR, "project_id": STR, "role": STR, "via": {"enum": ["api_key", "jwt"]},
               "scopes": {"type": ["array", "null"], "items": STR}, "orgs": {"type": "array", "items": ref("OrgRef")}},
              ["user", "org_id", "project_id", "role", "via"]),
    "Member": obj({"user_id": STR, "email": STR, "name": STR, "role": STR, "status": STR},
                  ["user_id", "email", "role"]),
    "MemberList": listing("Member"),
    "NewMember": obj({"email": {"type": "string", "minLength": 1},
                      "role": {"enum": ["viewer", "member", "admin", "owner"]}}, ["email", "role"]),
    "RoleChange": obj({"role": {"enum": ["viewer", "member", "admin", "owner"]}}, ["role"]),
    "Project": obj({"id": STR, "org_id": STR, "name": STR, "created_at": TIME}, ["id", "org_id", "name"]),
    "ProjectList": listing("Project"),
    "ProjectName": obj({"name": {"type": "string", "minLength": 1, "maxLength": 200}}, ["name"]),
    "ApiKey": obj({"id": STR, "name": STR, "prefix": STR, "project_id": STR, "user_id": STR,
                   "scopes": {"type": "array", "items": STR}, "created_at": TIME, "expires_at": NTIME,
                   "revoked_at": NTIME, "last_used_at": NTIME, "api_key": STR},
                  ["id", "prefix", "project_id", "scopes"]),
    "ApiKeyList": listing("ApiKey"),
    "NewApiKey": obj({"name": {"type": "string", "maxLength": 200}, "project_id": ID,
                      "scopes": {"type": "array", "items": {"enum": ["chat", "knowledge", "workflows", "account",
                                                                     "admin-read", "admin"]}},
                      "expires_at": {"type": "string", "format": "date-time"}}),
    "Wallet": obj({"object": {"const": "wallet"}, "org_id": STR, "balance_micros": {"type": "integer"},
                   "frozen_micros": {"type": "integer"}, "overdraft_limit_micros": {"type": "integer"},
                   "available_micros": {"type": "integer"}},
                  ["object", "org_id", "balance_micros", "frozen_micros", "overdraft_limit_micros"]),
    "Limits": obj({
        "object": {"const": "limits"},
        "rate_limits": {"type": "array", "items": obj({
            "scope": {"enum": ["org", "project", "key"]}, "scope_id": STR,
            "limit": {"enum": ["requests_per_minute", "tokens_per_minute", "concurrent_requests"]},
            "max": {"type": "integer"}, "window_s": {"type": ["number", "null"]},
            "used": {"type": ["integer", "null"], "description": "in the last window, or in flight now; null when "
                                                                 "the limiter cannot be read"}},
            ["scope", "scope_id", "limit", "max", "used"])},
        "budgets": {"type": "array", "items": {"type": "object"}},
        "allowed_models": {"type": ["array", "null"], "items": STR,
                           "description": "null: every enabled model"},
        "rate_limiter": {"enum": ["redis", "in-process"]}},
        ["object", "rate_limits", "budgets", "allowed_models"]),
    "LedgerEntry": obj({"id": {"type": "integer"}, "object": {"const": "ledger_entry"},
                        "type": {"enum": ["credit", "debit", "hold", "capture", "release", "refund"]}, "ref": STR,
                        "amount_micros": {"type": "integer"}, "balance_after_micros": {"type": ["integer", "null"]},
                        "frozen_after_micros": {"type": ["integer", "null"]}, "hold_id": NSTR,
                        "refund_of": {"type": ["integer", "null"]}, "reason": NSTR, "trace_id": NSTR,
                        "request_id": NSTR, "created_at": TIME}, ["id", "type", "ref", "amount_micros"]),
    "LedgerPage": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("LedgerEntry")},
                       "has_more": {"type": "boolean"}, "next_cursor": NSTR}, ["object", "data", "has_more"]),
    # Open (extra=True): the pipeline adds columns to usage records and the route shows them all.
    "UsageRecord": obj({"id": {"type": "integer"}, "object": {"const": "usage_record"}, "request_id": STR,
                        "trace_id": STR, "org_id": STR, "project_id": NSTR, "user_id": NSTR, "api_key_id": NSTR,
                        "model": STR, "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
                        "delivered_tokens": {"type": "integer"}, "cost_micros": {"type": "integer"},
                        "measured": STR, "finish_reason": NSTR, "price_id": {"type": ["integer", "null"]},
                        "upstream_response_id": NSTR, "status": STR, "held_micros": {"type": "integer"},
                        "stream": {"type": "boolean"}, "error_code": NSTR, "settled_at": NTIME, "created_at": TIME},
                       ["id", "object", "request_id", "model", "cost_micros", "created_at"], extra=True),
    "UsagePage": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("UsageRecord")},
                      "has_more": {"type": "boolean"}, "next_cursor": NSTR}, ["object", "data", "has_more"]),
    "Job": obj({"id": STR, "object": {"const": "job"}, "kind": STR, "project_id": NSTR, "created_by": NSTR,
                "state": {"enum": ["queued", "running", "done", "failed"]}, "params": {"type": "object"},
                "attempts": {"type": "integer"}, "max_attempts": {"type": "integer"}, "last_error": NSTR,
                "progress": obj({"done": {"type": "integer"}, "total": {"type": ["integer", "null"]},
                                 "percent": {"type": ["number", "null"]}}, ["done", "total", "percent"]),
                "result": {"type": ["object", "null"]}, "trace_id": STR, "created_at": TIME, "started_at": NTIME,
                "finished_at": NTIME, "updated_at": NTIME},
               ["id", "object", "kind", "state", "attempts", "progress", "trace_id", "created_at"]),
    "JobList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("Job")},
                    "next_cursor": NSTR}, ["object", "data", "next_cursor"]),
    "NewExport": obj({"dataset": {"enum": ["conversations", "usage", "transactions"]},
                      "format": {"enum": ["csv", "json", "md"]},
                      "since": {**TIME, "description": "inclusive"}, "until": {**TIME, "description": "exclusive"},
                      "project_id": {**ID, "description": "one project of your org (not for transactions)"}},
                     ["dataset"]),
    "NewStatement": obj({"month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}}, ["month"]),
    "UsageSummary": obj({"object": {"const": "usage_summary"}, "group_by": {"enum": ["day", "project", "model"]},
                         "since": TIME, "until": TIME, "rolled_until": {
                             **NTIME, "description": "usage before this time is in the roll-ups; later hours are "
                                                     "not summed yet"},
                         "data": {"type": "array", "items": obj({
                             "key": NSTR, "requests": {"type": "integer"}, "prompt_tokens": {"type": "integer"},
                             "completion_tokens": {"type": "integer"}, "cost_micros": {"type": "integer"}},
                             ["key", "requests", "prompt_tokens", "completion_tokens", "cost_micros"])}},
                        ["object", "group_by", "since", "until", "data"]),
    "File": obj({"id": STR, "object": {"const": "file"}, "project_id": NSTR, "name": STR, "content_type": STR,
                 "size_bytes": {"type": "integer"}, "sha256": STR,
                 "kind": {"enum": ["upload", "export", "statement", "artifact"]}, "job_id": NSTR,
                 "created_at": TIME}, ["id", "object", "name", "content_type", "size_bytes", "kind", "created_at"]),
    "FileList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("File")},
                     "next_cursor": NSTR}, ["object", "data", "next_cursor"]),
    "ProductChatRequest": obj({
        "conversation_id": ID, "model": {"type": "string", "minLength": 1, "maxLength": 200},
        "content": {"type": "string", "minLength": 1, "description": "the new user message (not with `regenerate`)"},
        "system": {"type": "string", "maxLength": 20000, "description": "a system prompt, sent first"},
        "regenerate": {"type": "boolean", "description": "answer the conversation's last user message again"},
        "temperature": {"type": "number"}, "top_p": {"type": "number"},
        "max_tokens": {"type": "integer", "minimum": 1},
        "workflow": {**obj({"id": ID, "name": {"type": "string", "minLength": 1, "maxLength": 200},
                            "version": {"type": "integer", "minimum": 1},
                            "inputs": {"type": "object", "description": "the run's inputs, checked against the "
                                                                        "definition"}}, []),
                     "description": "run this workflow of yours (`id`, or `name` in your project; `version` "
                                    "default the latest) instead of a model call: its progress streams as "
                                    "`thought` events, its result is the reply; this request itself is billed "
                                    "nothing (its hold is released, the run's calls bill themselves); Stop "
                                    "cancels the run. 404 `workflow_not_found`, 400 `invalid_workflow_inputs`, "
                                    "403 without the `workflows` right. Not with `regenerate`."}},
        ["conversation_id", "model"]),
    "ChatEstimate": obj({"object": {"const": "chat.estimate"}, "model": STR,
                         "hold_micros": {"type": "integer", "description": "what the request would hold: the most it "
                                                                          "can cost"},
                         "prompt_tokens_bound": {"type": "integer"}, "max_output_tokens": {"type": "integer"},
                         "history_messages": {"type": "integer"}, "history_dropped": {"type": "integer"},
                         "input_micros_per_mtok": {"type": "integer"}, "output_micros_per_mtok": {"type": "integer"}},
                        ["object", "model", "hold_micros"]),
    "ChatCancel": obj({"object": {"const": "chat.cancel"}, "request_id": STR, "status": {"const": "cancelling"}},
                      ["object", "request_id", "status"]),
    "StreamEventDelta": obj({"content": STR}, ["content"]),
    "StreamEventThought": obj({"content": STR, "event": {"type": "string", "description": "a workflow run's event "
                                                                           "(`step.started`, …)"},
                               "step_id": NSTR, "workflow_run_id": STR, "data": {"type": "object"}}, ["content"]),
    "StreamEventToolCall": obj({"tool_calls": {"type": "array"}}, ["tool_calls"]),
    "StreamEventToolResult": {"type": "object", "description": "a tool's result, as the tool step reports it"},
    "StreamEventCitation": {"type": "object", "description": "a source the answer cites (RAG)"},
    "StreamEventUsage": obj({"prompt_tokens": {"type": "integer"}, "completion_tokens": {
        "type": "integer", "description": "generated by the upstream (what is billed)"},
        "delivered_tokens": {"type": "integer", "description": "relayed to the caller"},
        "total_tokens": {"type": "integer"},
        "measured": {"enum": ["upstream", "drained", "estimated", "none"]}},
        ["prompt_tokens", "completion_tokens", "delivered_tokens", "total_tokens", "measured"]),
    "StreamEventBilling": obj({"request_id": STR, "held_micros": {"type": "integer"},
                               "cost_micros": {"type": "integer", "description": "equals the usage record's"},
                               "status": {"enum": ["captured", "released"]}, "balance_micros": {"type": "integer"},
                               "frozen_micros": {"type": "integer"}, "available_micros": {"type": "integer"}},
                              ["request_id", "held_micros", "cost_micros", "status"]),
    "StreamEventError": {**ERROR_OBJECT, "description": "the `error` object of the Error shape (not wrapped)"},
    "StreamEventDone": obj({"request_id": STR, "trace_id": STR, "conversation_id": NSTR, "finish_reason": NSTR,
                            "cancelled": {"type": "boolean"}, "error_code": NSTR},
                           ["request_id", "cancelled"]),
    "Health": obj({"status": STR, "version": STR, "upstream": {"enum": ["simulated", "configured"]}},
                  ["status", "version", "upstream"]),
    "Ready": obj({"status": {"enum": ["ready", "not_ready"]}, "checks": {"type": "object"},
                  "upstream_simulated": {"type": "boolean"}}, ["status", "checks"]),
}

ERRORS = {code: {"description": text, "content": {"application/json": {"schema": ref("Error")}}}
          for code, text in (("400", "bad input"), ("401", "missing or invalid credentials"),
                             ("402", "insufficient funds (`insufficient_funds`)"),
                             ("403", "not allowed (also `ip_denied`: an IP rule refuses your address; "
                                     "`model_not_allowed`: the model policy)"),
                             ("404", "not found (also: another tenant's id)"),
                             ("409", "conflict"),
                             ("413", "too large (`file_too_large`: over DEEPSPACE_STORAGE_MAX_FILE_BYTES)"),
                             ("415", "content type not accepted (`unsupported_content_type`)"),
                             ("422", "unprocessable"),
                             ("429", "a rate limit reached (`rate_limited`), or a budget cap (`budget_exceeded`); "
                                     "`Retry-After` says when to retry"),
                             ("502", "upstream failed"),
                             ("503", "storage cannot be reached (`storage_unavailable`), not ready, the upstream "
                                     "account is out of quota (`upstream_quota_exhausted`), rate limits cannot be "
                                     "checked (`rate_limiter_unavailable`), or a Stop cannot reach the gateway "
                                     "running the stream (`stream_registry_unavailable`)"),
                             ("504", "upstream timed out"))}


def op(summary: str, ok: str, schema: str | None, *, body: str | None = None, errors: tuple[str, ...] = (),
       public: bool = False, params: list[dict[str, Any]] | None = None, sse: bool = False,
       body_required: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {"description": "OK"}
    if schema is not None:
        content: dict[str, Any] = {"application/json": {"schema": ref(schema)}}
        if sse:
            content["text/event-stream"] = {"schema": {"type": "string"}}
        response["content"] = content
    operation: dict[str, Any] = {"summary": summary, "responses": {ok: response}}
    codes = set(errors) | ({"400"} if body or params else set()) | (set() if public else {"401", "403"})
    for code in sorted(codes):
        operation["responses"][code] = ERRORS[code]
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": {"application/json": {"schema": ref(body)}}}
    if public:
        operation["security"] = []
    if params:
        operation["parameters"] = params
    return operation


def path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


PAGING = [{"name": "cursor", "in": "query", "required": False, "schema": STR},
          {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                          "maximum": 200}}]
USAGE_FILTERS = [
    {"name": "project_id", "in": "query", "required": False, "schema": ID},
    {"name": "api_key_id", "in": "query", "required": False, "schema": ID},
    {"name": "model", "in": "query", "required": False, "schema": {"type": "string", "minLength": 1,
                                                                    "maxLength": 200}},
    {"name": "since", "in": "query", "required": False, "schema": TIME,
     "description": "inclusive; ISO-8601, UTC when no offset is given"},
    {"name": "until", "in": "query", "required": False, "schema": TIME,
     "description": "exclusive; ISO-8601, UTC when no offset is given"}]
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    "description": "Run this request at most once per key in your org (kept 24 h). Same key and request after it "
                   "completed: the stored response again, with `Idempotent-Replayed: true`, nothing billed; still "
                   "running: 409 `idempotency_in_progress` with `Retry-After`; another request: 422 "
                   "`idempotency_key_reused`; a malformed key: 400 `invalid_idempotency_key`; a completed response "
                   "too big to keep (over 4 MiB): 409 `idempotent_response_not_stored`. A failed request frees "
                   "its key."}
A = "/deepspace/api"

PATHS: dict[str, dict[str, Any]] = {
    "/deepspace/v1/chat/completions": {"post": op(
        "OpenAI-compatible chat completion (stream or not)", "200", "ChatCompletion", body="ChatCompletionRequest",
        errors=("402", "404", "409", "422", "429", "502", "503", "504"), sse=True, params=[IDEMPOTENCY_KEY])},
    "/deepspace/v1/models": {"get": op("Models you may use", "200", "ModelList")},
    f"{A}/health": {"get": op("Liveness", "200", "Health", public=True)},
    f"{A}/health/ready": {"get": op("Readiness of database, Redis and upstream", "200", "Ready", public=True,
                                    errors=("503",))},
    f"{A}/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": {"description": "OK",
                                                        "content": {"application/json": {"schema": {}}}}}}},
    f"{A}/auth/login": {"post": op("Log in with email and password", "200", "TokenPair", body="Login", public=True,
                                   errors=("401", "403", "429"))},
    f"{A}/auth/refresh": {"post": op("Rotate a refresh token for a new pair", "200", "TokenPair", body="Refresh",
                                     public=True, errors=("401", "403"))},
    f"{A}/auth/jupyterhub": {"post": op(
        "Remote mode: a JupyterHub API token of a user in exchange for that user's tokens", "200", "TokenPair",
        body="HubToken", public=True, errors=("401", "403", "404", "503"))},
    f"{A}/auth/logout": {"post": op("End the login session of this access token (not for API keys: 403)", "204",
                                    None)},
    f"{A}/me": {"get": op("Who you are, where you act", "200", "Me")},
    f"{A}/orgs": {"get": op("Your orgs and your role in each", "200", "OrgList")},
    f"{A}/members": {"get": op("Members of your org", "200", "MemberList"),
                     "post": op("Add a user to your org", "201", "Member", body="NewMember", errors=("404", "409"))},
    f"{A}/members/{{user_id}}": {
        "patch": op("Change a member's role", "200", "Member", body="RoleChange", errors=("404", "409"),
                    params=[path_id("user_id")]),
        "delete": op("Remove a member", "204", None, errors=("404", "409"), params=[path_id("user_id")])},
    f"{A}/projects": {"get": op("Projects of your org", "200", "ProjectList"),
                      "post": op("Create a project", "201", "Project", body="ProjectName", errors=("409",))},
    f"{A}/projects/{{project_id}}": {
        "get": op("A project", "200", "Project", errors=("404",), params=[path_id("project_id")]),
        "patch": op("Rename a project", "200", "Project", body="ProjectName", errors=("404", "409"),
                    params=[path_id("project_id")]),
        "delete": op("Delete an empty project", "204", None, errors=("404", "409"), params=[path_id("project_id")])},
    f"{A}/keys": {"get": op("API keys (yours; all of the org's for admins)", "200", "ApiKeyList"),
                  "post": op("Create an API key (shown once)", "201", "ApiKey", body="NewApiKey", errors=("404",),
                            body_required=False)},
    f"{A}/keys/{{key_id}}": {"delete": op("Revoke an API key", "200", "ApiKey", errors=("404",),
                                          params=[path_id("key_id")])},
    f"{A}/limits": {"get": op("Your rate limits, budget caps and allowed models, with what you use of them now",
                              "200", "Limits")},
    f"{A}/wallet": {"get": op("Your org's wallet (micro-credits)", "200", "Wallet")},
    f"{A}/wallet/transactions": {"get": op("Your org's ledger entries, newest first", "200", "LedgerPage",
                                           params=PAGING)},
    f"{A}/usage": {"get": op("Your org's usage records (one per billed request), newest first", "200", "UsagePage",
                             params=PAGING + USAGE_FILTERS)},
    f"{A}/usage/summary": {"get": op(
        "Your org's usage from the hourly roll-ups, by UTC day, project or model", "200", "UsageSummary", params=[
            {"name": "group_by", "in": "query", "required": False, "schema": {"enum": ["day", "project", "model"]},
             "description": "default day"},
            {"name": "since", "in": "query", "required": False, "schema": TIME,
             "description": "inclusive; default 30 days before `until`"},
            {"name": "until", "in": "query", "required": False, "schema": TIME,
             "description": "exclusive; default now"}])},
    f"{A}/jobs": {"get": op("Your org's Worker jobs, newest first", "200", "JobList", params=PAGING + [
        {"name": "state", "in": "query", "required": False,
         "schema": {"enum": ["queued", "running", "done", "failed"]}},
        {"name": "kind", "in": "query", "required": False,
         "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.\\-]{1,64}$"}},
        {"name": "project_id", "in": "query", "required": False, "schema": ID}])},
    f"{A}/jobs/{{job_id}}": {"get": op("A job: state, attempts, last error, progress, result", "200", "Job",
                                       errors=("404",), params=[path_id("job_id")])},
    f"{A}/exports": {"post": op("Export conversations, usage or transactions as CSV, JSON or Markdown (a job; its "
                                "result names the file to download)", "202", "Job", body="NewExport",
                                errors=("404", "503"))},
    f"{A}/statements": {"post": op("Your org's monthly statement as Markdown and CSV (a job)", "202", "Job",
                                   body="NewStatement", errors=("503",))},
    f"{A}/files": {
        "get": op("Your org's files and artifacts, newest first", "200", "FileList", params=PAGING + [
            {"name": "project_id", "in": "query", "required": False, "schema": ID},
            {"name": "kind", "in": "query", "required": False,
             "schema": {"enum": ["upload", "export", "statement", "artifact"]}}]),
        "post": {**op("Upload a file into your project: the raw body, its Content-Type", "201", "File",
                      errors=("413", "415", "503"),
                      params=[{"name": "name", "in": "query", "required": True,
                               "schema": {"type": "string", "minLength": 1, "maxLength": 255}}]),
                 "requestBody": {"required": True, "content": {"*/*": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}}},
    f"{A}/files/{{file_id}}": {
        "get": op("A file's description", "200", "File", errors=("404",), params=[path_id("file_id")]),
        "delete": op("Delete a file", "204", None, errors=("404", "503"), params=[path_id("file_id")])},
    f"{A}/files/{{file_id}}/content": {"get": {
        **op("Download a file (as an attachment)", "200", None, errors=("404", "503"), params=[path_id("file_id")]),
        "responses": {**op("", "200", None, errors=("404", "503"), params=[path_id("file_id")])["responses"],
                      "200": {"description": "the file's bytes, with its content type",
                              "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}}}},
    f"{A}/chat/stream": {"post": op(
        "Send a message in a conversation; the answer streams as named events (the history is built here)",
        "200", None, body="ProductChatRequest", errors=("402", "404", "422", "429", "502", "503", "504"))},
    f"{A}/chat/estimate": {"post": op(
        "The hold (most it can cost) `POST /chat/stream` would take with this body; nothing is called or billed",
        "200", "ChatEstimate", body="ProductChatRequest", errors=("404",))},
    f"{A}/chat/{{request_id}}/cancel": {"post": op(
        "Stop a running product stream of yours; it ends with its usage, billing and done events", "200",
        "ChatCancel", errors=("404", "503"), params=[path_id("request_id")])},
    f"{A}/conversations": {
        "get": op("Conversations of your project, newest first", "200", "ConversationList", params=PAGING),
        "post": op("Create a conversation", "201", "Conversation", body="NewConversation", body_required=False)},
    f"{A}/conversations/{{conversation_id}}": {
        "get": op("A conversation with its messages", "200", "ConversationWithMessages", errors=("404",),
                  params=[path_id("conversation_id")]),
        "patch": op("Rename a conversation", "200", "Conversation", body="Rename", errors=("404",),
                    params=[path_id("conversation_id")]),
        "delete": op("Delete a conversation and its messages", "204", None, errors=("404",),
                     params=[path_id("conversation_id")])},
}

PATHS[f"{A}/chat/stream"]["post"]["responses"]["200"] = {
    "description": "A stream of named SSE events (`event: <name>` then `data: <JSON>`): `delta`, `thought`, "
                   "`tool_call`, `tool_result`, `citation` and `error` as they come, then always `usage`, `billing` "
                   "and `done`. Each event's data is the schema `StreamEvent<Name>`. `X-Request-Id` names the "
                   "request for the cancel route.",
    "headers": {"X-Request-Id": {"description": "the id `POST /deepspace/api/chat/{request_id}/cancel` takes",
                                 "schema": STR}},
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}

PATHS["/deepspace/v1/chat/completions"]["post"]["responses"]["200"]["headers"] = {
    "Idempotent-Replayed": {"description": "`true` when this is the stored response of an earlier request with the "
                                           "same `Idempotency-Key`", "schema": {"const": "true"}},
    "X-DeepSpace-Cost-Micros": {"description": "What the request cost, in micro-credits (non-streaming responses; "
                                               "a stream that asks for usage gets `usage.cost_micros` in its final "
                                               "chunk)", "schema": {"type": "string", "pattern": "^[0-9]+$"}}}


def openapi_document() -> dict[str, Any]:
    """The document: the paths and schemas above, plus the fragments route modules keep beside
    their handlers (``openapi_paths()`` and ``OPENAPI_SCHEMAS``, e.g. the Admin API's areas)."""
    from .routes import ROUTE_MODULES

    paths, schemas = dict(PATHS), dict(SCHEMAS)
    for module in ROUTE_MODULES:
        if hasattr(module, "openapi_paths"):
            fragment = module.openapi_paths()
            assert not set(fragment) & set(paths), f"{module.__name__} documents a path twice"
            paths.update(fragment)
        extra = getattr(module, "OPENAPI_SCHEMAS", {})
        assert not set(extra) & set(schemas), f"{module.__name__} defines a schema twice"
        schemas.update(extra)
    return {
        "openapi": "3.1.0",
        "info": {"title": "DeepSpace Lab Gateway", "version": __version__,
                 "description": "OpenAI-compatible model access, the product API and, under `/deepspace/admin/api`, "
                                "the Admin API (platform admins; org admins for their own org). Credentials: "
                                "`Authorization: Bearer <API key dsk_… or access token>`; with an access token, "
                                "`X-DeepSpace-Project` names the project."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": schemas},
        "paths": paths,
    }


class OpenApiHandler(DeepSpaceHandler):
    async def get(self) -> None:
        self.write_json(openapi_document())


def default_handlers(runtime: Any) -> list[tuple[str, type, dict[str, Any]]]:
    return [(A + "/openapi.json", OpenApiHandler, {"runtime": runtime})]
