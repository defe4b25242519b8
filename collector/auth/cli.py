"""``anbu collector add-account``: make a login for a person, with the password from stdin.

    printf '%s\\n' "$PASSWORD" | anbu collector add-account --username kim.jiwon \\
        --role caregiver --name 김지원 --district seodaemun --caregiver-id 3

The password is read from standard input (never from the command line, where ``ps`` shows it);
without a pipe it is asked for twice on the terminal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys

from collector.auth.accounts import AccountError, create_account
from collector.auth.passwords import WeakPassword
from collector.settings import CollectorSettings
from collector.store.accounts import Role
from collector.store.db import Database


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "add-account",
        parents=[common],
        help="make a login for a caregiver, supervisor, admin or technician",
        description="Create an account for the pages; the password is read from stdin.",
    )
    p.add_argument("--username", required=True)
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--name", required=True, help="shown on pages and timelines")
    p.add_argument("--district", help="required for supervisor and caregiver")
    p.add_argument("--caregiver-id", type=int, help="required for caregiver: the caregiver record")
    p.add_argument("--language", default="ko", choices=["ko", "en"])


def _password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise WeakPassword("the two passwords differ")
    return first


def add_account(settings: CollectorSettings, args: argparse.Namespace, prog: str) -> int:
    try:
        password = _password()
    except WeakPassword as exc:
        print(f"{prog} add-account: {exc}", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    db.create_schema()
    try:
        with db.session() as session:
            account = create_account(
                session,
                username=args.username,
                password=password,
                role=Role(args.role),
                display_name=args.name,
                district=args.district,
                caregiver_id=args.caregiver_id,
                language=args.language,
                now=dt.datetime.now(dt.UTC),
            )
            shown = {"id": account.id, "username": account.username, "role": account.role.value}
    except (AccountError, WeakPassword) as exc:
        print(f"{prog} add-account: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(json.dumps(shown, ensure_ascii=False))
    return 0
