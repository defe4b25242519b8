"""Which device belongs to which household: an in-memory index kept in step with the store.

Every message's topic names a district, a household and a device; the collector accepts it only
if the store registers that device to that household. Looking that up in the database for every
heartbeat is what made ingestion slow, so the index holds one small entry per device (about
200 bytes) and asks the store only about what it does not know or what no longer matches:

* an unknown device is looked up once, then remembered as unknown for ``negative_ttl_s`` so a
  flood from an unregistered device cannot turn into a flood of queries;
* a device whose topic names another household is looked up again before its message is refused,
  so a device moved to another home by staff is followed without a restart.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from collector.store.models import Device, Household


@dataclass(frozen=True, slots=True)
class DeviceHome:
    household_id: str
    district: str


Lookup = Callable[[Iterable[str]], Mapping[str, DeviceHome]]


def store_lookup(session_factory: Callable[[], Session]) -> Lookup:
    """A lookup that asks the store for the homes of the given devices."""

    def lookup(device_ids: Iterable[str]) -> Mapping[str, DeviceHome]:
        ids = list(dict.fromkeys(device_ids))
        found: dict[str, DeviceHome] = {}
        with session_factory() as session:
            for start in range(0, len(ids), 500):
                rows = session.execute(
                    select(Device.id, Household.id, Household.district)
                    .join(Household, Device.household_id == Household.id)
                    .where(Device.id.in_(ids[start : start + 500]))
                )
                for device_id, household_id, district in rows:
                    found[device_id] = DeviceHome(sys.intern(household_id), sys.intern(district))
        return found

    return lookup


def load_all(session: Session) -> dict[str, DeviceHome]:
    """Every registered device and its home, for a collector that is starting."""
    rows = session.execute(
        select(Device.id, Household.id, Household.district).join(
            Household, Device.household_id == Household.id
        )
    )
    return {d: DeviceHome(sys.intern(h), sys.intern(dist)) for d, h, dist in rows}


class DeviceRegistry:
    """``check(device, household, district)`` answers from memory, asking the store when unsure."""

    def __init__(self, lookup: Lookup, *, negative_ttl_s: float = 30.0) -> None:
        self._lookup = lookup
        self._homes: dict[str, DeviceHome] = {}
        self._unknown_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.negative_ttl_s = negative_ttl_s
        self.lookups = 0

    def __len__(self) -> int:
        return len(self._homes)

    def replace_all(self, homes: Mapping[str, DeviceHome]) -> None:
        with self._lock:
            self._homes = dict(homes)
            self._unknown_until.clear()

    def remember(self, device_id: str, home: DeviceHome) -> None:
        with self._lock:
            self._homes[device_id] = home
            self._unknown_until.pop(device_id, None)

    def resolve(
        self, wanted: Iterable[tuple[str, str, str]], now_s: float
    ) -> dict[str, DeviceHome | None]:
        """The home of each device in ``(device, household, district)`` triples.

        Triples that do not match what is in memory are looked up in the store, all at once.
        """
        answer: dict[str, DeviceHome | None] = {}
        ask: list[str] = []
        for device, household, district in wanted:
            if device in answer:
                continue
            home = self._homes.get(device)
            answer[device] = home
            matches = home is not None and (home.household_id, home.district) == (
                household,
                district,
            )
            if not matches and self._unknown_until.get(device, 0.0) <= now_s:
                ask.append(device)
        if ask:
            self.lookups += 1
            found = self._lookup(ask)
            with self._lock:
                for device in ask:
                    home = found.get(device)
                    if home is None:
                        self._homes.pop(device, None)
                        self._unknown_until[device] = now_s + self.negative_ttl_s
                    else:
                        self._homes[device] = home
                        # a mismatch stays a mismatch for a while: do not ask again per message
                        self._unknown_until[device] = now_s + self.negative_ttl_s
                    answer[device] = home
                if len(self._unknown_until) > 100_000:
                    self._unknown_until = {
                        k: v for k, v in self._unknown_until.items() if v > now_s
                    }
        return answer
