"""The ``aiplatform`` command. Imports nothing heavy until a subcommand needs it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import msgspec

from aiplatform import __version__
from aiplatform.auth.admin_cli import add_admin_commands
from aiplatform.engines.llm.settings import LLMSettings
from aiplatform.observability.logs import configure_logging
from aiplatform.settings import Settings, SettingsError, engine_names, load_settings, select_engines

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "deploy":
        return _deploy(args)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(f"aiplatform: {exc}", file=sys.stderr)
        return 2
    if args.command == "engines":
        return _print_engines(settings)
    if args.command == "admin":
        from aiplatform.auth.admin_cli import run_admin

        return run_admin(args, settings)
    return _serve(settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiplatform",
        description="Self-hosted, OpenAI-compatible AI platform.",
    )
    parser.add_argument("--version", action="version", version=f"aiplatform {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the OpenAI-compatible server with every enabled engine.",
    )
    _add_config(serve)
    serve.add_argument(
        "--engines",
        metavar="NAME,...",
        help=f"serve only these engines (a pod); known: {', '.join(engine_names())}",
    )
    serve.add_argument("--host", help="address to bind (default from settings: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default from settings: 8000)")
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="logging level"
    )

    engines = commands.add_parser(
        "engines", help="list engines and their mode", description="List engines and their mode."
    )
    _add_config(engines)

    deploy = commands.add_parser(
        "deploy", help="deployment files", description="Deployment files made from the engines."
    )
    deploy_commands = deploy.add_subparsers(dest="deploy_command", metavar="COMMAND", required=True)
    render = deploy_commands.add_parser(
        "render",
        help="write the Kubernetes (kustomize) tree and the Compose files",
        description="Write deploy/k8s and deploy/compose from the engine registry.",
    )
    render.add_argument(
        "--out", metavar="DIR", default="deploy", help="the deploy directory (default: ./deploy)"
    )
    _add_config(add_admin_commands(commands))
    return parser


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="TOML settings file (default: $AIPLATFORM_CONFIG)"
    )


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if getattr(args, "engines", None):
        settings = select_engines(settings, args.engines.split(","))
    server = settings.server
    changes = {
        key: value
        for key, value in (
            ("host", getattr(args, "host", None)),
            ("port", getattr(args, "port", None)),
            ("log_level", getattr(args, "log_level", None)),
        )
        if value is not None
    }
    if changes:
        settings = msgspec.structs.replace(
            settings, server=msgspec.structs.replace(server, **changes)
        )
    return settings


def _deploy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aiplatform.deploy.render import render

    for path in render(Path(args.out)):
        print(path)
    return 0


def _print_engines(settings: Settings) -> int:
    print(f"{'ENGINE':<14}{'MODE':<10}DETAIL")
    for name in engine_names():
        section = settings.engine(name)
        if not section.enabled:
            mode, detail = "off", ""
        elif section.url:
            mode, detail = "remote", section.url
        else:
            fields = msgspec.structs.asdict(section)
            mode = "local"
            shown = ("backend", "model", "path", "data_dir")
            detail = " ".join(f"{key}={fields[key]}" for key in shown if fields.get(key))
            if isinstance(section, LLMSettings):
                detail = "models=" + ",".join(f"{m.name}({m.backend})" for m in section.models)
        print(f"{name:<14}{mode:<10}{detail}")
    return 0


def _serve(settings: Settings) -> int:
    server = settings.server
    configure_logging(server.log_format, server.log_level)
    import uvicorn

    from aiplatform.server.app import create_app

    app = create_app(settings)
    uvicorn.run(
        app,
        host=server.host,
        port=server.port,
        log_level=server.log_level,
        log_config=None,  # uvicorn's records go through the handler configure_logging set
        access_log=False,  # the app writes the access log ([server] access_log)
        limit_concurrency=server.limit_concurrency,
        timeout_graceful_shutdown=10,
    )
    return 0
