"""Fill the store: a made-up district for demos and tests, or a welfare office's own list.

    result = seed_district(db, "seodaemun", homes=250, caregivers=3, rng_seed=7)
    result.household_ids[0], result.device_ids[0]      # "h0001", "d0001"

Everything :func:`seed_district` makes up — Korean names, Seoul-area addresses and coordinates,
guardians, risk colours, silence periods — comes from one seeded generator, so the same arguments
on an empty database give the same district every time. Household ``hNNNN`` always has the one
device ``dNNNN`` (:func:`device_id_for`), so a simulator can derive one from the other.
Caregivers are assigned by the rule of :func:`collector.domain.assignment.choose_caregiver`, one
per 100, from loads kept in memory (a heap), and rows are written with bulk inserts: 100,000
homes take seconds, not minutes (``bench/seed.py``).

:func:`load_households_json` imports a real list (format in its docstring and ``docs/api.md``).
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from collector.domain.assignment import CAPACITY, CaregiverLoad, choose_caregiver
from collector.store.db import Database
from collector.store.models import Caregiver, Device, Household, RiskLevel
from collector.store.queries import caregiver_loads
from firmware_config.topics import ID_PATTERN

# slug: (구 name, latitude, longitude) — near each district office, good enough for a map.
SEOUL_DISTRICTS: dict[str, tuple[str, float, float]] = {
    "jongno": ("종로구", 37.5735, 126.9790),
    "jung": ("중구", 37.5641, 126.9979),
    "yongsan": ("용산구", 37.5324, 126.9900),
    "seongdong": ("성동구", 37.5634, 127.0369),
    "gwangjin": ("광진구", 37.5385, 127.0823),
    "dongdaemun": ("동대문구", 37.5744, 127.0396),
    "jungnang": ("중랑구", 37.6066, 127.0927),
    "seongbuk": ("성북구", 37.5894, 127.0167),
    "gangbuk": ("강북구", 37.6396, 127.0257),
    "dobong": ("도봉구", 37.6688, 127.0471),
    "nowon": ("노원구", 37.6542, 127.0568),
    "eunpyeong": ("은평구", 37.6027, 126.9291),
    "seodaemun": ("서대문구", 37.5791, 126.9368),
    "mapo": ("마포구", 37.5663, 126.9019),
    "yangcheon": ("양천구", 37.5170, 126.8665),
    "gangseo": ("강서구", 37.5509, 126.8495),
    "guro": ("구로구", 37.4954, 126.8874),
    "geumcheon": ("금천구", 37.4569, 126.8955),
    "yeongdeungpo": ("영등포구", 37.5264, 126.8962),
    "dongjak": ("동작구", 37.5124, 126.9393),
    "gwanak": ("관악구", 37.4784, 126.9516),
    "seocho": ("서초구", 37.4837, 127.0324),
    "gangnam": ("강남구", 37.5172, 127.0473),
    "songpa": ("송파구", 37.5145, 127.1059),
    "gangdong": ("강동구", 37.5301, 127.1238),
}
_CITY_HALL = (37.5665, 126.9780)
_SPREAD_DEG = 0.018  # about 2 km: homes scatter around the district office

_SURNAMES = "김김김김이이이박박최정강조윤장임한오서신권황안송류전홍"
_ELDER_WOMEN = (
    "순자", "영자", "정숙", "말순", "옥순", "춘자", "영숙", "정자", "순례", "복순",
    "금순", "명자", "경자", "옥자", "점순", "분이", "갑순", "순덕",
)  # fmt: skip
_ELDER_MEN = ("영수", "영철", "정호", "상철", "만복", "춘식", "병철", "재만", "용수", "덕수")
_WORKERS = (
    "미영", "지원", "은정", "현주", "수진", "정희", "경희", "혜숙", "선영", "민정",
    "정호", "성민", "지훈", "은영",
)  # fmt: skip
_CHILDREN = ("민수", "지훈", "수연", "현정", "동현", "은영", "성호", "지영", "재원", "미경")
_ROADS = (
    "중앙로", "새터로", "느티나무길", "햇살로", "은행나무길", "샘골로", "버들길", "큰마을로",
    "솔밭길", "안산로",
)  # fmt: skip
# Red homes are checked sooner: a shorter silence period before a caregiver is sent.
_RISK_MIX = ((RiskLevel.RED, 0.15), (RiskLevel.ORANGE, 0.30), (RiskLevel.BLUE, 0.55))
_SILENCE_H = {
    RiskLevel.RED: (24.0, 36.0),
    RiskLevel.ORANGE: (36.0, 48.0, 72.0),
    RiskLevel.BLUE: (72.0, 96.0, 120.0),
}
_HOUSEHOLD_ID = re.compile(r"^h(\d+)$")


def household_id(number: int) -> str:
    """``h0001`` for 1."""
    return f"h{number:04d}"


def device_id_for(household: str) -> str:
    """The seeded device of a seeded household: ``h0001`` → ``d0001``."""
    if not _HOUSEHOLD_ID.match(household):
        raise ValueError(f"{household!r} is not a seeded household id (h0001, h0002, ...)")
    return "d" + household[1:]


@dataclass(frozen=True, slots=True)
class SeedResult:
    district: str
    caregiver_ids: tuple[int, ...]
    household_ids: tuple[str, ...]
    device_ids: tuple[str, ...]
    unassigned: tuple[str, ...] = field(default=())
    """Households left without a caregiver because every caregiver was full."""


class _Loads:
    """Caregiver loads kept in memory while many households are assigned in one go.

    Gives what :func:`choose_caregiver` would (fewest households, then lowest id) in O(log n) per
    home, from a heap with lazily dropped stale entries. Caregivers carry no coordinates today;
    if one ever does, the distance tie-break needs the full scan, which is used then.
    """

    def __init__(self, loads: list[CaregiverLoad], capacity: int) -> None:
        self.capacity = capacity
        self.loads = {load.id: load for load in loads}
        self._heap = [(load.households, load.id) for load in loads]
        heapq.heapify(self._heap)
        self._located = any(load.latitude is not None for load in loads)

    def add_caregiver(self, caregiver_id: int, district: str) -> None:
        self.loads[caregiver_id] = CaregiverLoad(caregiver_id, district, 0)
        heapq.heappush(self._heap, (0, caregiver_id))

    def assign(self, district: str, where: tuple[float, float] | None) -> int | None:
        if self._located:
            chosen = choose_caregiver(
                district, list(self.loads.values()), where=where, capacity=self.capacity
            )
        else:
            chosen = self._fewest(district)
        if chosen is not None:
            self.took(chosen)
        return chosen

    def _fewest(self, district: str) -> int | None:
        while self._heap:
            households, caregiver_id = self._heap[0]
            load = self.loads.get(caregiver_id)
            if load is None or load.households != households or load.district != district:
                heapq.heappop(self._heap)  # stale: the load changed since this entry
                continue
            return caregiver_id if households < self.capacity else None
        return None

    def took(self, caregiver_id: int) -> None:
        self._moved(caregiver_id, +1)

    def left(self, caregiver_id: int) -> None:
        self._moved(caregiver_id, -1)

    def _moved(self, caregiver_id: int, by: int) -> None:
        load = self.loads.get(caregiver_id)
        if load is not None:
            n = max(0, load.households + by)
            self.loads[caregiver_id] = CaregiverLoad(load.id, load.district, n)
            heapq.heappush(self._heap, (n, caregiver_id))


def seed_district(
    db: Database,
    district: str,
    homes: int,
    caregivers: int,
    *,
    rng_seed: int = 1,
    email_domain: str = "example.org",
    guardian_share: float = 0.6,
    capacity: int = CAPACITY,
    now: dt.datetime | None = None,
) -> SeedResult:
    """Add ``caregivers`` caregivers and ``homes`` households, each with a device, to ``district``.

    Household numbers continue after the highest ``hNNNN`` already stored, so seeding twice adds
    more homes rather than failing. ``district`` is an MQTT-safe slug (``seodaemun``); the 25
    Seoul districts get their Korean name and location, any other slug a spot near City Hall.
    """
    if not re.match(ID_PATTERN, district):
        raise ValueError(f"district={district!r} must be lower-case ASCII, digits, - or _")
    if homes < 0 or caregivers < 0:
        raise ValueError("homes and caregivers must not be negative")
    if not 0.0 <= guardian_share <= 1.0:
        raise ValueError("guardian_share must be between 0 and 1")
    now = now or dt.datetime.now(dt.UTC)
    # Not for security: a reproducible made-up district.
    rng = random.Random(f"anbu-seed:{rng_seed}:{district}")  # noqa: S311
    gu, lat0, lon0 = SEOUL_DISTRICTS.get(district, (district, *_CITY_HALL))

    with db.session() as session:
        loads = _Loads(caregiver_loads(session, district), capacity)
        first_caregiver = 1 + (
            session.scalar(select(func.count()).where(Caregiver.district == district)) or 0
        )
        new_caregivers = [
            Caregiver(
                name=_name(rng, _WORKERS),
                phone=f"010-0000-{(first_caregiver + k) % 10000:04d}",
                email=f"cg-{district}-{first_caregiver + k:03d}@{email_domain}",
                district=district,
            )
            for k in range(caregivers)
        ]
        session.add_all(new_caregivers)
        session.flush()
        for caregiver in new_caregivers:
            loads.add_caregiver(caregiver.id, district)

        start = _next_household_number(session)
        households: list[dict[str, Any]] = []
        unassigned: list[str] = []
        for number in range(start, start + homes):
            home = _household(
                rng, number, district, gu, (lat0, lon0), guardian_share, email_domain, now
            )
            home["caregiver_id"] = loads.assign(
                district, _where(home["latitude"], home["longitude"])
            )
            if home["caregiver_id"] is None:
                unassigned.append(home["id"])
            households.append(home)
        _bulk_insert(session, Household, households)
        _bulk_insert(
            session,
            Device,
            [{"id": device_id_for(h["id"]), "household_id": h["id"]} for h in households],
        )

    return SeedResult(
        district=district,
        caregiver_ids=tuple(c.id for c in new_caregivers),
        household_ids=tuple(h["id"] for h in households),
        device_ids=tuple(device_id_for(h["id"]) for h in households),
        unassigned=tuple(unassigned),
    )


_CHUNK = 5_000
"""Rows per statement: well under SQLite's limit on bound parameters."""


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _bulk_insert(session: Session, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """Many rows in few statements, not one ORM object each.

    Core's executemany on the session's connection: the ORM's bulk path would split rows that
    leave some columns NULL into statements of their own.
    """
    for chunk in _chunks(rows):
        session.connection().execute(insert(model.__table__), list(chunk))


def _where(latitude: float | None, longitude: float | None) -> tuple[float, float] | None:
    return (latitude, longitude) if latitude is not None and longitude is not None else None


def _name(rng: random.Random, given: Sequence[str]) -> str:
    return rng.choice(_SURNAMES) + rng.choice(given)


def _next_household_number(session: Session) -> int:
    numbers = [
        int(m.group(1))
        for hid in session.scalars(select(Household.id).where(Household.id.like("h%")))
        if (m := _HOUSEHOLD_ID.match(hid))
    ]
    return max(numbers, default=0) + 1


def _household(
    rng: random.Random,
    number: int,
    district: str,
    gu: str,
    centre: tuple[float, float],
    guardian_share: float,
    email_domain: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """One made-up home's column values (the random draws in a fixed order: reproducible)."""
    hid = household_id(number)
    surname = rng.choice(_SURNAMES)
    resident = surname + rng.choice(_ELDER_WOMEN if rng.random() < 0.7 else _ELDER_MEN)
    road = (
        f"{rng.choice(_ROADS)}{rng.randint(1, 40)}길" if rng.random() < 0.6 else rng.choice(_ROADS)
    )
    address = f"서울특별시 {gu} {road} {rng.randint(1, 199)}"
    if rng.random() < 0.5:
        floor = rng.randint(1, 15)
        address += f", {floor}층 {floor}{rng.randint(1, 6):02d}호"
    risk = rng.choices([r for r, _ in _RISK_MIX], weights=[w for _, w in _RISK_MIX])[0]
    home: dict[str, Any] = {
        "id": hid,
        "district": district,
        "resident_name": resident,
        "address": address,
        "latitude": round(centre[0] + rng.uniform(-_SPREAD_DEG, _SPREAD_DEG), 6),
        "longitude": round(centre[1] + rng.uniform(-_SPREAD_DEG, _SPREAD_DEG), 6),
        "silence_period_h": rng.choice(_SILENCE_H[risk]),
        "risk_level": risk,
        "created_at": now,
        "guardian_name": None,
        "guardian_phone": None,
        "guardian_email": None,
        "guardian_opt_in": False,
    }
    if rng.random() < guardian_share:
        # A son or daughter: usually the resident's surname.
        guardian_surname = surname if rng.random() < 0.7 else rng.choice(_SURNAMES)
        home["guardian_name"] = guardian_surname + rng.choice(_CHILDREN)
        home["guardian_phone"] = f"010-0001-{number % 10000:04d}"
        home["guardian_email"] = f"guardian-{hid}@{email_domain}"
        home["guardian_opt_in"] = True  # the demo's residents agreed: its guardians are told
    return home


# A welfare office's own list

_Id = Annotated[str, Field(pattern=ID_PATTERN)]


class CaregiverRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    phone: str = Field(min_length=3, max_length=32)
    email: str = Field(min_length=3, max_length=254)
    district: _Id
    active: bool = True


class HouseholdRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: _Id
    district: _Id
    resident_name: str = Field(min_length=1, max_length=100)
    address: str = Field(default="", max_length=300)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    guardian_name: str | None = Field(default=None, max_length=100)
    guardian_phone: str | None = Field(default=None, max_length=32)
    guardian_email: str | None = Field(default=None, max_length=254)
    guardian_opt_in: bool | None = None
    """The resident agreed that the guardian is told of alarms; unset keeps what is stored
    (no, for a new home), so a re-import does not undo a consent recorded on the pages."""
    silence_period_h: float = Field(default=48.0, ge=1, le=24 * 14)
    risk_level: RiskLevel = RiskLevel.BLUE
    caregiver_email: str | None = None
    """The caregiver (by e-mail) who looks after this home; without it one is assigned."""
    device_id: _Id | None = None
    """The home's edge agent, registered if missing."""


class HouseholdsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caregivers: list[CaregiverRecord] = []
    households: list[HouseholdRecord]


@dataclass(frozen=True, slots=True)
class ImportResult:
    caregivers_created: int
    caregivers_updated: int
    households_created: int
    households_updated: int
    devices_created: int
    unassigned: tuple[str, ...]


def _stored_households(session: Session, ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
    """``id → (district, caregiver_id)`` of the households among ``ids`` already stored."""
    found: dict[str, tuple[str, int | None]] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Household.id, Household.district, Household.caregiver_id).where(
                Household.id.in_(chunk)
            )
        )
        found.update({hid: (district, cid) for hid, district, cid in rows})
    return found


def _device_owners(session: Session, ids: Sequence[str]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for chunk in _chunks(ids):
        rows = session.execute(select(Device.id, Device.household_id).where(Device.id.in_(chunk)))
        owners.update({did: hid for did, hid in rows})
    return owners


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_households_json(
    db: Database, path: Path | str, *, capacity: int = CAPACITY, now: dt.datetime | None = None
) -> ImportResult:
    """Import ``path``: ``{"caregivers": [...], "households": [...]}`` or just the households list.

    Caregivers are matched by e-mail and households by id: importing the same file again updates
    rather than duplicates. A household without ``caregiver_email`` keeps its caregiver, or a new
    one gets the least-loaded caregiver of its district with room. All or nothing: any invalid
    record rejects the whole file with a message naming the record, field and value.
    """
    path = Path(path)
    now = now or dt.datetime.now(dt.UTC)
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
        data = HouseholdsFile.model_validate({"households": raw} if isinstance(raw, list) else raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (value: {_shown(e['input'])})"
            for e in exc.errors()
        )
        raise ValueError(f"{path}: {problems}") from None

    with db.session() as session:
        by_email = {c.email: c for c in session.scalars(select(Caregiver))}
        created = updated = 0
        for person in data.caregivers:
            existing = by_email.get(person.email)
            if existing is None:
                by_email[person.email] = Caregiver(**person.model_dump())
                session.add(by_email[person.email])
                created += 1
            else:
                for name, value in person.model_dump().items():
                    setattr(existing, name, value)
                updated += 1
        session.flush()

        ids = list(dict.fromkeys(r.id for r in data.households))
        stored = _stored_households(session, ids)
        device_ids = list({r.device_id for r in data.households if r.device_id is not None})
        owners = _device_owners(session, device_ids)
        loads: dict[str, _Loads] = {}

        def loads_of(district: str) -> _Loads:
            # Counted before this file's homes are written; they are added as they are assigned.
            if district not in loads:
                loads[district] = _Loads(caregiver_loads(session, district), capacity)
            return loads[district]

        new_homes: dict[str, dict[str, Any]] = {}
        changed: dict[str, dict[str, Any]] = {}
        new_devices: list[dict[str, str]] = []
        h_created = h_updated = 0
        unassigned: list[str] = []
        for record in data.households:
            values = record.model_dump(exclude={"caregiver_email", "device_id"})
            if values["guardian_opt_in"] is None:
                del values["guardian_opt_in"]
            caregiver_id: int | None = None
            if record.caregiver_email is not None:
                caregiver = by_email.get(record.caregiver_email)
                if caregiver is None:
                    raise ValueError(
                        f"{path}: household {record.id!r}: no caregiver with e-mail "
                        f'{record.caregiver_email!r} (add it under "caregivers")'
                    )
                caregiver_id = caregiver.id
            pending = new_homes.get(record.id)
            before = stored.get(record.id)
            if pending is None and before is None:
                if caregiver_id is None:
                    where = _where(record.latitude, record.longitude)
                    caregiver_id = loads_of(record.district).assign(record.district, where)
                    if caregiver_id is None:
                        unassigned.append(record.id)
                else:
                    loads_of(record.district).took(caregiver_id)
                fresh = {"guardian_opt_in": False, "caregiver_id": caregiver_id, "created_at": now}
                new_homes[record.id] = fresh | values
                h_created += 1
            else:
                # Named again (later in the file, or already stored): update it.
                if pending is not None:
                    current, old_caregiver = pending, pending["caregiver_id"]
                else:
                    current = changed.setdefault(record.id, {})
                    old_caregiver = current.get("caregiver_id", before[1] if before else None)
                current.update(values)
                if caregiver_id is not None and caregiver_id != old_caregiver:
                    current["caregiver_id"] = caregiver_id
                    loads_of(record.district).took(caregiver_id)
                    if old_caregiver is not None:
                        loads_of(record.district).left(old_caregiver)
                h_updated += 1
            if record.device_id is not None:
                owner = owners.get(record.device_id)
                if owner is None:
                    owners[record.device_id] = record.id
                    new_devices.append({"id": record.device_id, "household_id": record.id})
                elif owner != record.id:
                    raise ValueError(
                        f"{path}: household {record.id!r}: device {record.device_id!r} "
                        f"already belongs to household {owner!r}"
                    )
        _bulk_insert(session, Household, list(new_homes.values()))
        for chunk in _chunks([{"id": hid} | v for hid, v in changed.items()]):
            session.execute(update(Household), list(chunk))
        _bulk_insert(session, Device, new_devices)
        devices = len(new_devices)
    return ImportResult(created, updated, h_created, h_updated, devices, tuple(unassigned))
