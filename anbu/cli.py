"""``anbu``: one program, one subcommand per role.

Each role's own module parses its arguments, so the Pi imports only ``edge_agent`` and the cloud
only ``collector``: ``anbu agent`` never imports FastAPI and ``anbu collector`` never imports Vosk.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

ROLES = {
    "agent": ("edge_agent.cli", "the edge agent on a home's Raspberry Pi"),
    "collector": ("collector.cli", "the cloud service: ingest, dispatch, API"),
    "demo": ("anbu.demo", "broker + collector + a simulated district, on embedded defaults"),
    "sim": ("anbu.sim", "a fleet of simulated homes publishing to a broker, for load tests"),
}

USAGE = "usage: anbu {agent,collector,demo,sim} [--help] ...\n\n" + "\n".join(
    f"  {name:<10} {about}" for name, (_, about) in ROLES.items()
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from anbu import __version__

        print(__version__)
        return 0
    role = ROLES.get(args[0])
    if role is None:
        print(f"anbu: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module = importlib.import_module(role[0])
    result: int = module.main(args[1:])
    return result
