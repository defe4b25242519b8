"""Who may see what: a caregiver their households, a supervisor their district, an admin all.

Pure over plain values, so every rule is a one-line test. Routes call :func:`check` and get a
:class:`Forbidden` (403) when the answer is no.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.store.accounts import Role


class Forbidden(Exception):
    """The account may not see or change this; rendered as a 403 page."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The logged-in person, as the scoping rules need them."""

    account_id: int
    username: str
    display_name: str
    role: Role
    district: str | None
    caregiver_id: int | None
    language: str


def may_see_household(viewer: Viewer, *, district: str, caregiver_id: int | None) -> bool:
    if viewer.role is Role.ADMIN:
        return True
    if viewer.role is Role.SUPERVISOR:
        return viewer.district is not None and viewer.district == district
    if viewer.role is Role.CAREGIVER:
        return viewer.caregiver_id is not None and viewer.caregiver_id == caregiver_id
    return False  # technicians see devices, not residents


def may_see_map(viewer: Viewer) -> bool:
    return viewer.role in (Role.ADMIN, Role.SUPERVISOR)


def may_read_audit(viewer: Viewer) -> bool:
    return viewer.role in (Role.ADMIN, Role.SUPERVISOR)


def may_read_docs(viewer: Viewer) -> bool:
    return viewer.role in (Role.ADMIN, Role.SUPERVISOR, Role.TECHNICIAN)


def may_see_tickets(viewer: Viewer) -> bool:
    return viewer.role in (Role.ADMIN, Role.SUPERVISOR, Role.TECHNICIAN)


def check(allowed: bool, what: str) -> None:
    if not allowed:
        raise Forbidden(what)


def may_manage_district(viewer: Viewer, district: str) -> bool:
    """Texts and assignment: a supervisor for their own district, an admin for any."""
    if viewer.role is Role.ADMIN:
        return True
    return (
        viewer.role is Role.SUPERVISOR
        and viewer.district is not None
        and viewer.district == district
    )
