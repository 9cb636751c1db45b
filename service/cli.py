"""The ``bertserve`` command: ``serve`` (flags mirror every setting) and ``models ...``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import typing
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from models.runtime.errors import ModelError
from service.logs import configure_logging
from service.settings import Settings


def _model_flag(value: str) -> dict[str, Any]:
    """Parse ``--model``: a JSON object, or ``NAME=SOURCE[,key=value...]``."""
    if value.lstrip().startswith("{"):
        parsed = json.loads(value)
        if not isinstance(parsed, dict):
            raise argparse.ArgumentTypeError("--model JSON must be an object")
        return parsed
    head, *options = value.split(",")
    name, sep, source = head.partition("=")
    if not sep or not name or not source:
        raise argparse.ArgumentTypeError(f"--model {value!r}: expected NAME=SOURCE[,key=value...]")
    spec: dict[str, Any] = {"name": name, "source": source}
    for option in options:
        key, sep, item = option.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"--model option {option!r}: expected key=value")
        spec[key] = item
    return spec


#: Settings with no flag: secrets on a command line are visible to every user of the machine.
ENV_ONLY_SETTINGS = frozenset({"api_keys"})


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`Settings` field, documented with the field's description."""
    for name, field in Settings.model_fields.items():
        # argparse formats help strings with %: a literal one in a description must be doubled.
        help_text = f"{field.description} [env BERTSERVE_{name.upper()}]".replace("%", "%%")
        if name in ENV_ONLY_SETTINGS:
            continue
        if name == "models":
            parser.add_argument(
                "--model",
                dest="models",
                action="append",
                type=_model_flag,
                metavar="NAME=SOURCE[,task=..,device=..,dtype=..,pooling=..]",
                help=help_text + " (repeat for several models)",
            )
        elif field.annotation is bool:
            parser.add_argument(
                f"--{name.replace('_', '-')}",
                dest=name,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        elif typing.get_origin(field.annotation) is list:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, action="append", help=help_text)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=help_text)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from flags given (others from the environment or defaults)."""
    overrides = {
        name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None
    }
    return Settings(**overrides)


def serve(settings: Settings) -> int:
    """Run the HTTP server until stopped; non-zero if a model cannot be loaded."""
    import uvicorn
    from fastapi import FastAPI

    from service.app import create_app
    from service.engine.loader import ModelLoader
    from service.engine.registry import ModelRegistry
    from service.http.coalesce import CoalescingHttpToolsProtocol
    from service.shutdown import DrainingServer

    try:  # fail before binding the port, with one line naming the model and the problem
        with ThreadPoolExecutor(1) as pool:
            loader = ModelLoader(settings, pool)
            for spec in settings.models:
                loader.check(spec)
    except ModelError as exc:
        print(f"bertserve: cannot start: {exc}", file=sys.stderr)
        return 2
    fatal: list[str] = []
    config = uvicorn.Config(
        "service.app:create_app",
        host=settings.host,
        port=settings.port,
        factory=True,
        log_level=settings.log_level,
        log_config=None,  # configure_logging routes uvicorn's loggers
        access_log=False,  # the app writes its own JSON access line per request
        # No X-Forwarded-* rewriting of the client address and scheme: bertserve uses neither, and it
        # is one more middleware per request.
        proxy_headers=False,
        http=CoalescingHttpToolsProtocol,  # one socket write per response
        lifespan="on",
        # uvicorn annotates int but waits with asyncio.wait_for: fractions of a second work too.
        timeout_graceful_shutdown=settings.shutdown_grace_s,  # type: ignore[arg-type]
    )
    apps: list[FastAPI] = []

    def start_draining() -> bool:
        registry: ModelRegistry | None = apps[0].state.registry if apps else None
        if registry is None or not registry.ready:
            return False  # not in any balancer's rotation yet: nothing to wait for
        registry.start_draining()
        return True

    server = DrainingServer(config, settings.shutdown_delay_s, start_draining)

    def on_fatal(reason: str) -> None:
        fatal.append(reason)
        server.should_exit = True

    def make_app() -> FastAPI:
        app = create_app(settings, on_fatal)
        apps.append(app)
        return app

    config.app = make_app
    server.run()
    if fatal:
        print(f"bertserve: stopped: {fatal[0]}", file=sys.stderr)
        return 1
    return 0 if server.started else 3


def prepare(settings: Settings) -> int:
    """Resolve every configured model into ``settings.home``: build the builtin classifier when it was
    never built, export the ONNX graphs, so that a later ``serve`` (an image, a volume) starts in seconds."""
    from service.engine.loader import LoadedModel, ModelLoader

    loaded: list[LoadedModel] = []
    with ThreadPoolExecutor(1) as pool:
        loader = ModelLoader(settings.model_copy(update={"warmup": False}), pool)
        try:
            for spec in settings.models:
                loaded.append(loader.load(spec))
        finally:
            for model in loaded:
                model.engine.close()
    for model in loaded:
        print(
            json.dumps(
                {
                    "model": model.spec.name,
                    "path": str(model.engine.description.path),
                    "runtime": model.runtime,
                    "dtype": model.dtype,
                    "reason": model.reason,
                    "device": model.device,
                    "seconds": round(model.load_seconds, 1),
                }
            )
        )
    return 0


def _build_parser(with_training: bool) -> argparse.ArgumentParser:
    """The command line. The offline pipeline's commands (``models data|finetune|...``) come from
    :mod:`models.training`, imported only when one of them is asked for: ``serve`` never loads it."""
    parser = argparse.ArgumentParser(prog="bertserve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_settings_flags(commands.add_parser("serve", help="Serve the configured models over HTTP."))
    models = commands.add_parser("models", help="Fetch data; build and evaluate model variants.")
    if with_training:
        from models.training import cli as training_cli

        model_commands = training_cli.add_commands(models)
    else:
        model_commands = models.add_subparsers(dest="model_command", required=True)
    add_settings_flags(
        model_commands.add_parser(
            "prepare",
            help="Build and export the configured models (default: the embedded ones) into the data "
            "directory, e.g. while building an image.",
        )
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bertserve`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    training = argv[:1] == ["models"] and argv[1:2] != ["prepare"]
    try:
        parser = _build_parser(with_training=training)
    except ImportError as exc:  # a serving install: models.training or PyTorch is not there
        print(
            f"bertserve: `bertserve models` needs the training stack, not installed here ({exc}); "
            "pip install 'bertserve[torch]'",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            settings = settings_from_args(args)
            configure_logging(settings.log_level, settings.log_format)
            return serve(settings)
        logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if args.model_command == "prepare":
            return prepare(settings_from_args(args))
        from models.training import cli as training_cli

        return training_cli.run(args)
    except ValidationError as exc:
        print(f"bertserve: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    except ModelError as exc:
        print(f"bertserve: {exc}", file=sys.stderr)
        return 1
