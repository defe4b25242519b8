"""Test SOS: residents and technicians try the alarm, and nobody must be sent for it.

Rules:

* An SOS the device marks ``test`` (``anbu agent verify`` does) is recorded as a ``sos_test``
  event and acknowledged to the device, so its held copy is released exactly as for a real one;
  it opens no dispatch, queues no notification and is counted apart.
* A real SOS that turns out to be someone trying the feature can be **marked as a test** by staff:
  an open or acknowledged SOS dispatch is resolved with outcome ``test`` (escalation stops, as for
  any resolution); a resolved one keeps its times and has its outcome changed to ``test``, with the
  earlier outcome kept in the note. Marking twice changes nothing. Only SOS dispatches can be
  tests: a silence alert was raised by the collector, not tried out by anyone.

Pure: no clock, no database; ``now`` is an argument.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from collector.domain.lifecycle import Lifecycle, Outcome, Resolve, Status, apply

TEST_SOS_EVENT = "sos_test"
"""The ``events.kind`` a test SOS is recorded as (a real one is ``sos``)."""


@dataclass(frozen=True, slots=True)
class IncomingSos:
    """What to do with an SOS that arrived from a device."""

    record_as: str
    """``sos`` or ``sos_test``: the event kind stored, and the counter it goes to."""
    open_dispatch: bool
    notify: bool
    acknowledge: bool = True
    """Always: an unacknowledged SOS stays held on the device and is re-sent for ever."""


def incoming_sos(*, test: bool) -> IncomingSos:
    """A test SOS is stored and acknowledged only; a real one goes on to dispatch."""
    if test:
        return IncomingSos(record_as=TEST_SOS_EVENT, open_dispatch=False, notify=False)
    return IncomingSos(record_as="sos", open_dispatch=True, notify=True)


class NotATest(ValueError):
    """This dispatch cannot be marked as a test; the message says why."""


def mark_as_test(
    state: Lifecycle, *, reason: str, by: str | None, note: str | None, now: dt.datetime
) -> Lifecycle:
    """The dispatch's lifecycle once marked as a test; unchanged if it already is one."""
    if reason != "sos":
        raise NotATest(f"only an SOS dispatch can be marked as a test (this one is {reason!r})")
    if state.outcome is Outcome.TEST:
        return state
    if state.status is not Status.RESOLVED:
        return apply(state, Resolve(Outcome.TEST, note, by), now=now)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    earlier = f"marked as a test; was resolved as {state.outcome}" if state.outcome else None
    parts = [p for p in (state.note, earlier, (note or "").strip() or None) if p]
    return dataclasses.replace(state, outcome=Outcome.TEST, note=" | ".join(parts) or None)
