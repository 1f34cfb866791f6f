"""``deepspace-lab init``: migrate, then create the first admin, org, project, wallet and key.

Idempotent: when a platform admin exists nothing is created and the result says so.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from .audit import AuditWriter
from .auth import create_api_key, create_org, create_project, create_user
from .auth.models import OrgMember, Project, User
from .auth.passwords import MIN_PASSWORD_LENGTH, generate_password, hash_password
from .billing import credit_wallet, list_prices, set_price
from .catalog import upsert_model
from .config import SECRET_KEY_FILE, ConfigError, Settings
from .db import make_async_engine, make_sessionmaker
from .db.migrate import upgrade
from .errors import InvalidRequest
from .simulator import SIMULATED_MODELS
from .tracing import new_trace_id

#: The first admin's key can also manage projects, members and keys through the API.
INIT_KEY_SCOPES = ("chat", "knowledge", "workflows", "account")


@dataclass
class InitResult:
    created: bool
    email: str
    org_id: str
    project_id: str
    api_key: str | None = None
    password: str | None = None
    secret_key_file: str | None = None
    credit_micros: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "api_key"}


def ensure_secret_key(settings: Settings) -> Settings:
    """On the embedded default, generate the secret key into the data dir once."""
    if settings.secret_key:
        return settings
    if not settings.is_sqlite:
        raise ConfigError("DEEPSPACE_SECRET_KEY is required with PostgreSQL: every gateway and worker "
                          "must share it (generate one with `python -c 'import secrets; "
                          "print(secrets.token_urlsafe(48))'`)", code="secret_key_missing")
    path = settings.data_dir / SECRET_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return settings.replace(secret_key=path.read_text().strip())


#: When the simulated models' seeded prices start (fixed, so seeding again is a no-op).
SIMULATED_PRICES_FROM = datetime(2025, 1, 1, tzinfo=UTC)


async def seed_simulated_models(settings: Settings) -> None:
    """The simulated models in the catalog, each with a (simulated) price unless it has one."""
    engine = make_async_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            for model in SIMULATED_MODELS:
                await upsert_model(session, name=model["id"], context_window=model["context_window"],
                                   description=model["description"], owned_by="deepspace-simulator")
                if not await list_prices(session, model_name=model["id"]):
                    await set_price(session, model_name=model["id"], effective_at=SIMULATED_PRICES_FROM,
                                    input_micros_per_mtok=model["input_micros_per_mtok"],
                                    output_micros_per_mtok=model["output_micros_per_mtok"], actor="init")
            await session.commit()
    finally:
        await engine.dispose()


async def init_deployment(
    settings: Settings,
    *,
    email: str = "admin@localhost",
    password: str | None = None,
    org_name: str = "Default org",
    project_name: str = "Default project",
    actor: str = "cli",
) -> InitResult:
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
                             code="weak_password", param="password")
    had_key = bool(settings.secret_key)
    settings = ensure_secret_key(settings)
    upgrade(settings.database_url)
    if settings.uses_simulator:
        await seed_simulated_models(settings)
    engine = make_async_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            admin = (await session.execute(
                select(User).where(User.is_platform_admin.is_(True)).order_by(User.created_at).limit(1)
            )).scalar_one_or_none()
            if admin is not None:
                return await _existing(session, admin)
            generated = password is None
            password = password or generate_password()
            user = await create_user(session, email=email, name="Admin", password_hash=hash_password(password),
                                     is_platform_admin=True)
            org = await create_org(session, name=org_name, owner=user)
            project = await create_project(session, org_id=org.id, name=project_name)
            _key, plaintext = await create_api_key(
                session, secret_key=settings.require_secret_key(), org_id=org.id, project_id=project.id,
                user_id=user.id, name="init", scopes=INIT_KEY_SCOPES)
            await session.commit()
            if settings.init_credit_micros:
                await credit_wallet(session, org_id=org.id, amount_micros=settings.init_credit_micros,
                                    reason="initial grant (deepspace-lab init)", actor=actor,
                                    ref=f"init-grant:{org.id}")
        audit = AuditWriter(engine, flush_interval_ms=0)
        await audit.write(trace_id=new_trace_id(), kind="cli.init", actor=actor, org_id=org.id,
                          project_id=project.id, user_id=user.id,
                          detail={"email": user.email, "api_key_prefix": _key.prefix})
        return InitResult(
            created=True, email=user.email, org_id=org.id, project_id=project.id, api_key=plaintext,
            password=password if generated else None,
            secret_key_file=None if had_key else str(settings.data_dir / SECRET_KEY_FILE),
            credit_micros=settings.init_credit_micros or None,
        )
    finally:
        await engine.dispose()


async def _existing(session: Any, admin: User) -> InitResult:
    member = (await session.execute(
        select(OrgMember).where(OrgMember.user_id == admin.id).order_by(OrgMember.created_at).limit(1)
    )).scalar_one()
    project = (await session.execute(
        select(Project).where(Project.org_id == member.org_id).order_by(Project.created_at).limit(1)
    )).scalar_one()
    return InitResult(created=False, email=admin.email, org_id=member.org_id, project_id=project.id)
