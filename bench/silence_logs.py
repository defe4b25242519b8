"""Readers for public smart-home sensor logs, turned into life-sign times for the silence bench.

Ordonez (UCI "ADLs Recognition Using Binary Sensors"): tab-separated ``start end sensor type
place`` with two header lines; every transition (the start and the end of each row) is a life
sign. CASAS: whitespace-separated ``date time sensor value [...]``; every line is a life sign.
Each life sign also gets a *context* for the routine: the sensor and its new state (Ordonez
``Bed:on`` at the start of a row, ``Bed:off`` at its end; CASAS ``M003:ON``), the closest these
logs come to what the resident was doing. Timestamps in both are the home's local time and are
read as if they were UTC, with the routine's ``utc_offset_h`` set to 0, so slots follow the
home's own day.

The logs themselves are never copied into this repository (the Ordonez licence forbids
commercial use): pass a path.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path


class LogFormatError(ValueError):
    """A line of a log could not be read; the message names the file and the line."""


def _parse_time(text: str, where: str) -> float:
    try:
        stamp = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise LogFormatError(f"{where}: bad timestamp {text!r}") from exc
    return stamp.replace(tzinfo=dt.UTC).timestamp()


Sign = tuple[float, str]
"""A life sign's time (seconds) and its context."""


def read_ordonez_contexts(path: Path) -> list[Sign]:
    """Life signs with their contexts from an Ordonez ``*_Sensors.txt`` file, sorted."""
    signs: list[Sign] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            fields = [f.strip() for f in line.rstrip("\r\n").split("\t") if f.strip()]
            if not fields or not fields[0][:1].isdigit():
                continue  # header and separator lines
            where = f"{path}:{number}"
            if len(fields) < 3:
                raise LogFormatError(f"{where}: expected start, end, sensor, ...")
            start, end = _parse_time(fields[0], where), _parse_time(fields[1], where)
            if end < start:
                raise LogFormatError(f"{where}: ends before it starts")
            signs += [(start, f"{fields[2]}:on"), (end, f"{fields[2]}:off")]
    if not signs:
        raise LogFormatError(f"{path}: no sensor rows")
    return sorted(signs)


def read_casas_contexts(path: Path) -> list[Sign]:
    """Life signs with their contexts from a CASAS ``data`` file, sorted."""
    signs: list[Sign] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{number}"
            if len(fields) < 4:
                raise LogFormatError(f"{where}: expected date time sensor value")
            at = _parse_time(f"{fields[0]} {fields[1]}", where)
            signs.append((at, f"{fields[2]}:{fields[3]}"))
    if not signs:
        raise LogFormatError(f"{path}: no sensor lines")
    return sorted(signs)


def read_ordonez(path: Path) -> list[float]:
    """Life-sign times (seconds) from an Ordonez ``*_Sensors.txt`` file, sorted."""
    return [at for at, _ in read_ordonez_contexts(path)]


def read_casas(path: Path) -> list[float]:
    """Life-sign times (seconds) from a CASAS ``data`` file, sorted."""
    return [at for at, _ in read_casas_contexts(path)]


READERS = {"ordonez": read_ordonez, "casas": read_casas}
CONTEXT_READERS = {"ordonez": read_ordonez_contexts, "casas": read_casas_contexts}
