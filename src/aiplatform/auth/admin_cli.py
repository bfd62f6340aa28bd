"""``aiplatform admin ...``: tenants, users and API keys for headless deployments.

It works on the auth store of the configured data directory directly (the server may be
running: SQLite in WAL mode takes both). A password is read from standard input, never from
the command line, where other users of the machine could read it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import msgspec

from aiplatform.errors import AIPlatformError
from aiplatform.settings import Settings, engine_names

if TYPE_CHECKING:
    from aiplatform.auth.service import AuthService

__all__ = ["add_admin_commands", "run_admin"]


def add_admin_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    admin = commands.add_parser(
        "admin", help="tenants, users and API keys", description="Manage tenants, users and keys."
    )
    actions = admin.add_subparsers(dest="admin_command", metavar="COMMAND", required=True)
    tenant = actions.add_parser("create-tenant", help="create a tenant")
    tenant.add_argument("name")
    user = actions.add_parser(
        "create-user", help="create a user (the password is read from standard input)"
    )
    user.add_argument("username")
    user.add_argument("--tenant", default="default")
    user.add_argument("--role", choices=["admin", "member"], default="member")
    key = actions.add_parser("create-key", help="create an API key and print it (shown once)")
    key.add_argument("name")
    key.add_argument("--tenant", default="default")
    key.add_argument("--engines", metavar="NAME,...", help="limit the key to these engines")
    key.add_argument("--expires-at", type=int, metavar="UNIX_TIME")
    actions.add_parser("list-users", help="list users")
    return admin


def run_admin(args: argparse.Namespace, settings: Settings) -> int:
    # the auth service (Argon2, JWT, anyio) is imported only when an admin command runs, not
    # by every `aiplatform` invocation that builds this parser
    import anyio

    from aiplatform.auth.service import AuthService

    service = AuthService(
        settings.auth,
        known_engines=tuple(engine_names()),
        storage_key=settings.storage.encryption_key,
    )
    try:
        return anyio.run(_run, service, args)
    except AIPlatformError as exc:
        print(f"aiplatform: {exc.message}", file=sys.stderr)
        return 1
    except msgspec.ValidationError as exc:
        print(f"aiplatform: {exc}", file=sys.stderr)
        return 2


async def _run(service: AuthService, args: argparse.Namespace) -> int:
    import anyio.to_thread

    await service.start()
    try:
        return await anyio.to_thread.run_sync(_command, service, args)
    finally:
        await service.stop()


def _command(service: AuthService, args: argparse.Namespace) -> int:
    from aiplatform.api.auth import ApiKeyRequest, UserRequest
    from aiplatform.auth.identity import Identity

    store = service.store
    command = args.admin_command
    if command == "create-tenant":
        if not store.add_tenant(args.name):
            print(f"aiplatform: tenant '{args.name}' exists", file=sys.stderr)
            return 1
        print(f"created tenant {args.name}")
    elif command == "create-user":
        password = sys.stdin.readline().rstrip("\n")
        new_user = msgspec.convert(
            {"username": args.username, "password": password, "tenant": args.tenant,
             "role": args.role},
            UserRequest,
        )  # fmt: skip
        user = service.new_user(new_user)
        print(f"created user {user.username} ({user.role}) in tenant {user.tenant}")
    elif command == "create-key":
        if not store.tenant_exists(args.tenant):
            print(f"aiplatform: no tenant '{args.tenant}'", file=sys.stderr)
            return 1
        engines = args.engines.split(",") if args.engines else None
        new_key = ApiKeyRequest(name=args.name, engines=engines, expires_at=args.expires_at)
        owner = Identity(kind="user", subject="cli", tenant=args.tenant, role="admin")
        print(service.new_key(owner, new_key).key)
    elif command == "list-users":
        for row in store.users():
            print(f"{row.username}\t{row.tenant}\t{row.role}")
    return 0
