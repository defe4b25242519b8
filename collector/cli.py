"""``anbu collector``: arguments → settings → serve, or a one-off task on the database.

    anbu collector                                   # serve (the default)
    anbu collector --env-file /etc/anbu/collector.env serve
    anbu collector init-db
    anbu collector seed --district seodaemun --homes 250 --caregivers 3
    anbu collector import-households office.json
    anbu collector add-account --username kim --role caregiver --name 김지원 \
        --district seodaemun --caregiver-id 3 < password.txt

Settings come from ``ANBU_*`` environment variables and, with ``--env-file``, a dotenv-style file
(the environment wins). Invalid settings print the field, its value and where it came from, and
exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from collector.auth.cli import add_account
from collector.auth.cli import add_parser as add_account_parser
from collector.settings import CollectorSettings
from collector.store.db import Database

PROG = "anbu collector"
ENV_PREFIX = "ANBU_"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--env-file",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="also read ANBU_* settings from this dotenv-style file (the environment wins)",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The Anbu collector: MQTT ingest, dispatch, notifications and the HTTP API.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "serve",
        parents=[common],
        help="run ingest, notifications, escalation and the HTTP API (the default)",
        description="Run the collector until SIGTERM or Ctrl-C, serving HTTP on "
        "ANBU_HTTP_HOST:ANBU_HTTP_PORT.",
    )
    sub.add_parser(
        "init-db",
        parents=[common],
        help="create the database tables that are missing",
        description="Create missing tables in ANBU_DATABASE_URL; existing data is left alone.",
    )
    seed = sub.add_parser(
        "seed",
        parents=[common],
        help="add a made-up district (demo and tests)",
        description="Add caregivers and households, each with one device (h0001 ↔ d0001), "
        "with made-up but reproducible names, addresses and coordinates.",
    )
    seed.add_argument("--district", required=True, help="district slug, e.g. seodaemun")
    seed.add_argument("--homes", type=int, required=True, help="households to add")
    seed.add_argument(
        "--caregivers", type=int, help="caregivers to add (default: one per 100 homes)"
    )
    seed.add_argument("--rng-seed", type=int, default=1, help="same seed, same district")
    seed.add_argument("--email-domain", default="example.org", help="for made-up addresses")
    load = sub.add_parser(
        "import-households",
        parents=[common],
        help="import a welfare office's household list (JSON)",
        description="Create or update caregivers and households from a JSON file "
        '({"caregivers": [...], "households": [...]}); see docs/api.md.',
    )
    load.add_argument("file", type=Path, help="the JSON file")
    assign = sub.add_parser(
        "assign",
        parents=[common],
        help="share a district's households among its caregivers by geography, with backups",
        description="Stable: only new, orphaned or over-capacity households move (see "
        "collector/domain/geo_assignment.py); --redraw draws the rounds afresh.",
    )
    assign.add_argument("--district", required=True)
    assign.add_argument("--capacity", type=int, default=100, help="households per caregiver")
    assign.add_argument("--redraw", action="store_true", help="redraw every round")
    assign.add_argument("--dry-run", action="store_true", help="say what would change")
    add_account_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    env_file: Path | None = getattr(args, "env_file", None)
    settings = load_settings(env_file)
    if settings is None:
        return 2
    command = args.command or "serve"
    try:
        if command == "serve":
            return _serve(settings)
        if command == "init-db":
            return _init_db(settings)
        if command == "seed":
            return _seed(settings, args)
        if command == "add-account":
            return add_account(settings, args, PROG)
        if command == "assign":
            return _assign(settings, args)
        return _import(settings, args.file)
    except _Refused as refused:
        return refused.code


# Settings


def load_settings(env_file: Path | None = None) -> CollectorSettings | None:
    """The settings, or None after printing what is wrong to stderr."""
    if env_file is not None and not env_file.is_file():
        print(f"{PROG}: --env-file {env_file}: no such file", file=sys.stderr)
        return None
    try:
        # _env_file is pydantic-settings' own keyword, unknown to mypy's view of the model.
        return CollectorSettings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        print(f"{PROG}: invalid settings", file=sys.stderr)
        for line in explain(exc, env_file):
            print(f"  {line}", file=sys.stderr)
        return None


def explain(exc: ValidationError, env_file: Path | None = None) -> list[str]:
    """One line per problem: field, value (secrets masked) and where the value came from."""
    file_values = {k.upper(): v for k, v in dotenv_values(env_file).items()} if env_file else {}
    environ = {k.upper(): v for k, v in os.environ.items()}
    fields = CollectorSettings.model_fields
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        name = str(error["loc"][0]) if error["loc"] else _field_in(message)
        if name is None:
            lines.append(message)
            continue
        if name not in fields:
            key = name.upper()
            where = f"{env_file}" if key in file_values else "the environment"
            lines.append(f"{key}: not a collector setting (in {where}); settings are ANBU_<FIELD>")
            continue
        key = f"{ENV_PREFIX}{name.upper()}"
        if key in environ:
            value: Any = environ[key]
            source = f"environment variable {key}"
        elif key in file_values:
            value = file_values[key]
            source = f"{env_file} ({key})"
        else:
            value = fields[name].default
            source = f"default; set {key}"
        if fields[name].repr is False and value not in (None, "changethis"):
            value = "***"
        lines.append(f"{name} = {value!r} (from {source}): {message}")
    return lines


def _field_in(message: str) -> str | None:
    """The first settings field named in a model-level error message."""
    words: list[str] = re.findall(r"[a-z][a-z_]+", message)
    for word in words:
        if word in CollectorSettings.model_fields:
            return word
    return None


# Commands


class _Refused(Exception):
    """Start-up refused; the message was already printed and logged."""

    def __init__(self, code: int) -> None:
        self.code = code


def _database(settings: CollectorSettings, *, log_too: bool = False) -> Database:
    """The database with its tables, or :class:`_Refused` after one line on stderr."""
    from collector.startup import StartupError, check_sqlite_path, database_problem

    try:
        check_sqlite_path(settings.database_url)
    except StartupError as exc:
        _refuse(str(exc), log_too=log_too)
        raise _Refused(2) from exc
    db = Database(settings.database_url)
    problem = database_problem(db)
    if problem is not None:
        db.dispose()
        _refuse(problem, log_too=log_too)
        raise _Refused(1)
    return db


def _refuse(message: str, *, log_too: bool) -> None:
    if log_too:  # serve: one structured line for the journal, no traceback
        logging.getLogger("anbu.collector").error("cannot start", extra={"error": message})
    else:
        print(f"{PROG}: {message}", file=sys.stderr)


def _report(**fields: object) -> None:
    print(json.dumps(fields, ensure_ascii=False))


def _serve(settings: CollectorSettings) -> int:
    import uvicorn

    from anbu import logs
    from collector.main import create_app
    from collector.runtime import Collector

    logs.setup(settings.log_level)
    _database(settings, log_too=True).dispose()  # one clear line, not a traceback per request
    runtime = Collector(settings)
    app = create_app(runtime, settings=settings)
    # log_config=None keeps our JSON logging; the app logs each request itself.
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )
    return 0


def _init_db(settings: CollectorSettings) -> int:
    db = _database(settings)
    _report(
        database=make_url(settings.database_url).render_as_string(hide_password=True),
        tables=sorted(inspect(db.engine).get_table_names()),
    )
    db.dispose()
    return 0


def _seed(settings: CollectorSettings, args: argparse.Namespace) -> int:
    from collector.domain.assignment import caregivers_needed
    from collector.store.seed import seed_district

    caregivers = caregivers_needed(args.homes) if args.caregivers is None else args.caregivers
    db = _database(settings)
    try:
        result = seed_district(
            db,
            args.district,
            args.homes,
            caregivers,
            rng_seed=args.rng_seed,
            email_domain=args.email_domain,
        )
    except ValueError as exc:
        print(f"{PROG} seed: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    _report(
        district=result.district,
        caregivers=len(result.caregiver_ids),
        households=len(result.household_ids),
        first=result.household_ids[0] if result.household_ids else None,
        last=result.household_ids[-1] if result.household_ids else None,
        unassigned=len(result.unassigned),
    )
    if result.unassigned:
        print(
            f"{PROG} seed: {len(result.unassigned)} households have no caregiver "
            "(all full): add caregivers",
            file=sys.stderr,
        )
    return 0


def _assign(settings: CollectorSettings, args: argparse.Namespace) -> int:
    from collector.store.assignment import assign_district

    if args.capacity < 1:
        print(f"{PROG} assign: --capacity must be at least 1", file=sys.stderr)
        return 2
    db = _database(settings)
    try:
        with db.session() as session:
            result = assign_district(
                session,
                args.district,
                capacity=args.capacity,
                redraw=args.redraw,
                dry_run=args.dry_run,
            )
    finally:
        db.dispose()
    _report(
        district=result.district,
        households=result.households,
        caregivers=result.caregivers,
        moved=result.moved,
        unassigned=len(result.unassigned),
        over_capacity=result.over_capacity,
        backups_changed=result.backups_changed,
        dry_run=args.dry_run,
    )
    if result.unassigned:
        print(
            f"{PROG} assign: {len(result.unassigned)} households have no caregiver "
            "(all full): add caregivers or raise --capacity",
            file=sys.stderr,
        )
    return 0


def _import(settings: CollectorSettings, path: Path) -> int:
    from collector.store.seed import load_households_json

    db = _database(settings)
    try:
        result = load_households_json(db, path)
    except (OSError, ValueError) as exc:
        print(f"{PROG} import-households: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    _report(
        caregivers_created=result.caregivers_created,
        caregivers_updated=result.caregivers_updated,
        households_created=result.households_created,
        households_updated=result.households_updated,
        devices_created=result.devices_created,
        unassigned=list(result.unassigned),
    )
    return 0
