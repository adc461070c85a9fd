"""The ``shopthelook`` command. Subcommands live in ``shopthelook/commands/*.py``.

Each command module defines ``register(subparsers)`` that adds its parser(s) and sets
``func`` to a callable taking the parsed args and returning an exit code. Errors that are
the user's (ShopTheLookError) are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from shopthelook.core.errors import ShopTheLookError

COMMAND_MODULES = (
    "shopthelook.commands.catalog",
    "shopthelook.commands.look",
    "shopthelook.commands.classify",
    "shopthelook.commands.evaluate",
    "shopthelook.commands.same",
    "shopthelook.commands.coherence",
    "shopthelook.commands.ranker",
    "shopthelook.commands.serve",
    "shopthelook.commands.scale",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopthelook",
        description="Find the objects in a scene photo and the catalog products that match them.",
    )
    parser.add_argument(
        "--config", help="TOML settings file (default: $SHOPTHELOOK_CONFIG or ./shopthelook.toml)"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # a command group not built yet
            raise
        module.register(sub)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("ultralytics", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # Dask logs every worker start and stop; the jobs report what went wrong
    logging.getLogger("distributed").setLevel(logging.ERROR if verbosity == 0 else level)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not as a warning at exit
        return code
    except ShopTheLookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`shopthelook look ... | head`): stop quietly, as cat would
        _silence_stdout()
        return 141  # 128 + SIGPIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is no real file (tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
