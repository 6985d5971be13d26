"""Subcommand dispatch shared by ``meterit-appliance`` and ``meterit-central``.

Each subcommand lives in its own module with a ``main(argv) -> int`` that parses its own
arguments; the module is imported only when its command runs, so ``migrate`` never pays for
the BACnet stack and a broken optional piece cannot stop the others.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> ("module:function", one-line help)
Commands = dict[str, tuple[str, str]]


def run(prog: str, commands: Commands, argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        width = max(len(name) for name in commands)
        lines = [f"usage: {prog} COMMAND [ARGS...]", "", "commands:"]
        lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in commands.items()]
        lines.append(f"\n'{prog} COMMAND --help' tells more about one command.")
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
