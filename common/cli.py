"""Subcommand dispatch shared by ``meterit-appliance`` and ``meterit-central``.

Each subcommand lives in its own module with a ``main(argv) -> int`` that parses its own
arguments; the module is imported only when its command runs, so ``migrate`` never pays for
the BACnet stack and a broken optional piece cannot stop the others.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from common import env_file
from common.config import ConfigError

EX_CONFIG = 78

# name -> ("module:function", one-line help)
Commands = dict[str, tuple[str, str]]


def _env_file_option(args: list[str]) -> tuple[str | None, list[str]]:
    """``--env-file FILE`` (or ``--env-file=FILE``) before the command: (FILE, the rest)."""
    if args and args[0].startswith("--env-file="):
        return args[0].partition("=")[2], args[1:]
    if args and args[0] == "--env-file":
        return (args[1], args[2:]) if len(args) > 1 else ("", [])
    return None, args


def run(prog: str, commands: Commands, argv: Sequence[str] | None = None) -> int:
    path, args = _env_file_option(list(sys.argv[1:] if argv is None else argv))
    if path is not None:
        if not path:
            sys.stderr.write(f"{prog}: --env-file needs a file (NAME=value lines)\n")
            return 2
        try:
            # the file's settings win over inherited ones: it is what was asked for by name
            os.environ.update(env_file.read(Path(path)))
        except ConfigError as err:
            sys.stderr.write(f"{prog}: {err}\n")
            return EX_CONFIG
    if not args or args[0] in ("-h", "--help", "help"):
        width = max(len(name) for name in commands)
        lines = [f"usage: {prog} [--env-file FILE] COMMAND [ARGS...]", "", "commands:"]
        lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in commands.items()]
        lines.append(f"\n'{prog} COMMAND --help' tells more about one command.")
        lines.append("--env-file FILE: take METERIT_* settings from FILE (as systemd's")
        lines.append("EnvironmentFile=), e.g. /etc/meterit/appliance.env or .demo/appliance.env")
        sys.stdout.write("\n".join(lines) + "\n")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in commands:
        sys.stderr.write(f"{prog}: unknown command {name!r}; one of: {', '.join(commands)}\n")
        return 2
    target, _ = commands[name]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    result = func(rest)
    return int(result or 0)
