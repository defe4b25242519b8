"""Reads the escalation chains, district contacts and office calendar from a TOML file.

``ANBU_ESCALATION_FILE`` names the file (see docs/escalation.md for a full example)::

    [office]
    opens = "09:00"
    closes = "18:00"
    holidays = ["2026-12-25", "2027-01-01"]

    [chains.sos]                # every district, unless it has its own
    steps = [
      { after_s = 180, notify = ["backup"] },
      { after_s = 180, notify = ["supervisor"] },
      { after_s = 300, notify = ["emergency"] },
    ]

    [districts.seodaemun.contacts.supervisor]
    name = "서대문구 복지정책과"
    phone = "02-330-1234"

    [districts.seodaemun.chains.request]
    steps = [{ working_days = 1, notify = ["supervisor", "department"] }]

A bad file stops the collector at start-up with a message naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collector.domain.dispatch import Contact
from collector.domain.escalation import (
    KINDS,
    ChainStep,
    DistrictContacts,
    EscalationBook,
    EscalationChain,
)
from collector.domain.office_hours import OfficeCalendar


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(_Strict):
    notify: list[str] = Field(min_length=1)
    after_s: float = Field(default=0.0, ge=0)
    working_days: int = Field(default=0, ge=0, le=30)


class _Chain(_Strict):
    steps: list[_Step]


class _Contact(_Strict):
    name: str
    phone: str | None = None
    email: str | None = None


class _Contacts(_Strict):
    supervisor: _Contact | None = None
    department: _Contact | None = None
    emergency: _Contact | None = None


class _District(_Strict):
    contacts: _Contacts = _Contacts()
    chains: dict[str, _Chain] = {}


class _Office(_Strict):
    opens: dt.time = dt.time(9, 0)
    closes: dt.time = dt.time(18, 0)
    workdays: list[int] = [0, 1, 2, 3, 4]
    holidays: list[dt.date] = []


class _File(_Strict):
    office: _Office = _Office()
    chains: dict[str, _Chain] = {}
    districts: dict[str, _District] = {}


class EscalationConfigError(ValueError):
    """The escalation file is missing, not TOML, or has a bad field (the message says which)."""


def _chain(chain: _Chain, where: str) -> EscalationChain:
    try:
        return EscalationChain(
            tuple(ChainStep(tuple(s.notify), s.after_s, s.working_days) for s in chain.steps)
        )
    except ValueError as exc:
        raise EscalationConfigError(f"{where}: {exc}") from None


def _kinds(chains: dict[str, _Chain], where: str) -> dict[str, EscalationChain]:
    out = {}
    for kind, chain in chains.items():
        if kind not in KINDS:
            raise EscalationConfigError(f"{where}.{kind}: unknown kind, use one of {list(KINDS)}")
        out[kind] = _chain(chain, f"{where}.{kind}")
    return out


def _contact(role: str, c: _Contact | None) -> Contact | None:
    return None if c is None else Contact(role, c.name, c.phone, c.email)


def parse_escalation(text: str, source: str) -> tuple[EscalationBook, OfficeCalendar]:
    """The book and the calendar in TOML ``text``; ``source`` names it in error messages."""
    try:
        raw = _File.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise EscalationConfigError(f"{source}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise EscalationConfigError(f"{source}: {field}: {first['msg']}") from None
    try:
        calendar = OfficeCalendar(
            raw.office.opens,
            raw.office.closes,
            frozenset(raw.office.workdays),
            frozenset(raw.office.holidays),
        )
    except ValueError as exc:
        raise EscalationConfigError(f"{source}: office: {exc}") from None
    book = EscalationBook(
        defaults=_kinds(raw.chains, f"{source}: chains"),
        districts={
            name: _kinds(d.chains, f"{source}: districts.{name}.chains")
            for name, d in raw.districts.items()
        },
        contacts={
            name: DistrictContacts(
                _contact("supervisor", d.contacts.supervisor),
                _contact("department", d.contacts.department),
                _contact("emergency", d.contacts.emergency),
            )
            for name, d in raw.districts.items()
        },
    )
    return book, calendar


def load_escalation(path: Path) -> tuple[EscalationBook, OfficeCalendar]:
    """Read and check ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EscalationConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_escalation(text, str(path))
