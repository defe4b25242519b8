"""Deadlines for every home in one heap, so nothing scans all homes on every tick.

A life sign moves a home's deadline: the new deadline is pushed and the old heap entry is left
where it is (lazy invalidation) — it is recognised and dropped when it reaches the top, because
it no longer matches the home's current deadline. Costs: a life sign O(log n), a due flag
O(log n), and the heap is compacted when stale entries outnumber live ones, so memory stays
within twice the number of homes.

:class:`SilenceTracker` puts the pieces together: it keeps each home's last life sign, period and
routine, turns them into a deadline with :func:`~collector.domain.silence.silence_deadline`, and
hands out each quiet stretch's flag exactly once. After a restart it is rebuilt from the stored
rows (:class:`HomeRow`); a row whose flag was already raised for its current stretch is not
raised again, and a deadline that passed while the collector was down is raised at once.

Pure: no clock, no I/O; ``now`` is an argument (float seconds since the epoch or aware datetime).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from collector.domain.silence import (
    Deadline,
    LifeSignKind,
    SilenceFlag,
    SilenceLimit,
    SilenceReason,
    from_epoch,
    silence_deadline,
)
from collector.domain.silence_routine import Routine


class DeadlineHeap:
    """Key → deadline, ordered by deadline, with O(log n) set/remove/pop."""

    __slots__ = ("_current", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._current: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, key: object) -> bool:
        return key in self._current

    def get(self, key: str) -> float | None:
        return self._current.get(key)

    def set(self, key: str, due_s: float) -> None:
        """Give ``key`` the deadline ``due_s`` (replacing any earlier one)."""
        if self._current.get(key) == due_s:
            return
        self._current[key] = due_s
        heapq.heappush(self._heap, (due_s, key))
        if len(self._heap) > 2 * len(self._current) + 64:
            self._compact()

    def remove(self, key: str) -> None:
        """Forget ``key``; its heap entry goes stale and is dropped later."""
        self._current.pop(key, None)

    def next_due(self) -> float | None:
        """The earliest live deadline (for the runtime's sleep), or None."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_s: float) -> Iterator[tuple[str, float]]:
        """Remove and yield ``(key, due_s)`` for every deadline ``<= now_s``, earliest first."""
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now_s:
                return
            due_s, key = heapq.heappop(self._heap)
            del self._current[key]
            yield key, due_s

    def _drop_stale(self) -> None:
        heap, current = self._heap, self._current
        while heap and current.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)

    def _compact(self) -> None:
        self._heap = [(due, key) for key, due in self._current.items()]
        heapq.heapify(self._heap)


@dataclass(frozen=True, slots=True)
class HomeRow:
    """What the store keeps per household, enough to rebuild its deadline after a restart."""

    household_id: str
    last_life_sign_s: float
    period_h: float
    routine: Routine | None = None
    last_kind: LifeSignKind | None = None
    flagged_for_s: float | None = None
    """``last_life_sign_s`` of the stretch whose flag was already raised, if any."""
    last_context: str | None = None
    """The routine context of the last sign; None: its kind's value (what the collector uses)."""


@dataclass(slots=True)
class _Home:
    last_s: float
    period_h: float
    routine: Routine | None
    last_kind: LifeSignKind | None
    deadline: Deadline | None
    routine_suspended: bool = False
    last_context: str | None = None


class SilenceTracker:
    """Every home's quiet stretch and its deadline; flags come out of :meth:`due`, once each."""

    def __init__(self) -> None:
        self._homes: dict[str, _Home] = {}
        self._heap = DeadlineHeap()

    def __len__(self) -> int:
        return len(self._homes)

    def restore(self, rows: Iterable[HomeRow]) -> None:
        """Rebuild from the store. A stretch already flagged gets no deadline (no second flag)."""
        for row in rows:
            home = _Home(
                row.last_life_sign_s,
                row.period_h,
                row.routine,
                row.last_kind,
                None,
                last_context=_context(row.last_context, row.last_kind),
            )
            self._homes[row.household_id] = home
            if row.flagged_for_s is None or row.flagged_for_s < row.last_life_sign_s:
                self._arm(row.household_id, home)

    def configure(
        self, household_id: str, *, period_h: float, routine: Routine | None, now_s: float
    ) -> None:
        """Set a home's period and routine (new home, staff override, relearned routine).

        A home seen for the first time starts its stretch at ``now_s``.
        """
        home = self._homes.get(household_id)
        if home is None:
            home = _Home(now_s, period_h, routine, None, None)
            self._homes[household_id] = home
            self._arm(household_id, home)
            return
        home.period_h, home.routine = period_h, routine
        if household_id in self._heap:
            self._arm(household_id, home)

    def life_sign(
        self,
        household_id: str,
        at_s: float,
        kind: LifeSignKind | None = None,
        *,
        period_h: float | None = None,
        context: str | None = None,
    ) -> bool:
        """Record a life sign; return False if it is older than the one already known.

        A home not configured yet needs ``period_h``. Late, out-of-order signs never move a
        deadline backwards. ``context`` labels the sign for the routine (default: the kind's
        value).
        """
        context = _context(context, kind)
        home = self._homes.get(household_id)
        if home is None:
            if period_h is None:
                raise KeyError(f"household {household_id!r} has no silence period configured")
            home = _Home(at_s, period_h, None, kind, None, last_context=context)
            self._homes[household_id] = home
        elif at_s < home.last_s:
            return False
        else:
            home.last_s, home.last_kind, home.last_context = at_s, kind, context
        self._arm(household_id, home)
        return True

    def suspend_routine(self, household_id: str) -> None:
        """The home's device went offline: only the fixed period applies until resumed.

        A home whose routine flag was already handed out gets its fixed deadline back, so a
        device that stays offline with no other life sign still ends in a silence flag.
        """
        home = self._homes.get(household_id)
        if home is None or home.routine_suspended:
            return
        home.routine_suspended = True
        routine_flag_out = (
            household_id not in self._heap
            and home.deadline is not None
            and home.deadline.limit is SilenceLimit.ROUTINE
        )
        if household_id in self._heap or routine_flag_out:
            self._arm(household_id, home)

    def resume_routine(self, household_id: str) -> None:
        """The device is back: the learned routine applies again."""
        home = self._homes.get(household_id)
        if home is None or not home.routine_suspended:
            return
        home.routine_suspended = False
        if household_id in self._heap:
            self._arm(household_id, home)

    def forget(self, household_id: str) -> None:
        """The home left the programme."""
        self._homes.pop(household_id, None)
        self._heap.remove(household_id)

    def deadline(self, household_id: str) -> Deadline | None:
        """The home's pending deadline, or None if flagged (until its next life sign)."""
        home = self._homes.get(household_id)
        return None if home is None or household_id not in self._heap else home.deadline

    def __contains__(self, household_id: object) -> bool:
        return household_id in self._homes

    def last_life_sign_s(self, household_id: str) -> float | None:
        home = self._homes.get(household_id)
        return None if home is None else home.last_s

    def last_context(self, household_id: str) -> str | None:
        """The routine context of the home's last life sign (what began its quiet stretch)."""
        home = self._homes.get(household_id)
        return None if home is None else home.last_context

    def routine_of(self, household_id: str) -> Routine | None:
        home = self._homes.get(household_id)
        return None if home is None else home.routine

    def row(self, household_id: str) -> HomeRow | None:
        """The home as the store keeps it (what :meth:`restore` takes back), or None."""
        home = self._homes.get(household_id)
        if home is None:
            return None
        flagged = None if household_id in self._heap else home.last_s
        return HomeRow(
            household_id,
            home.last_s,
            home.period_h,
            home.routine,
            home.last_kind,
            flagged,
            home.last_context,
        )

    def rows(self) -> list[HomeRow]:
        """Every home as the store keeps it."""
        return [row for household_id in self._homes if (row := self.row(household_id))]

    def next_due_s(self) -> float | None:
        return self._heap.next_due()

    def due(self, now_s: float) -> list[SilenceFlag]:
        """Every flag whose deadline is ``<= now_s``; each stretch is flagged once."""
        flags = []
        for household_id, due_s in self._heap.pop_due(now_s):
            home = self._homes[household_id]
            deadline = home.deadline
            assert deadline is not None  # armed homes always have one  # noqa: S101
            limit = deadline.limit
            if home.routine_suspended and limit is SilenceLimit.PERIOD:
                # The device is offline: nothing could be heard, and staff should see that.
                limit = SilenceLimit.DEVICE_OFFLINE
            reason = SilenceReason(
                limit,
                from_epoch(home.last_s),
                home.last_kind,
                deadline.limit_h,
                home.period_h,
            )
            flags.append(SilenceFlag(household_id, from_epoch(now_s), from_epoch(due_s), reason))
        return flags

    def _arm(self, household_id: str, home: _Home) -> None:
        routine = None if home.routine_suspended else home.routine
        home.deadline = silence_deadline(home.last_s, home.period_h, routine, home.last_context)
        self._heap.set(household_id, home.deadline.due_s)


def _context(context: str | None, kind: LifeSignKind | None) -> str | None:
    if context is not None:
        return context
    return None if kind is None else kind.value
