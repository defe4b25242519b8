"""The broker's access rules, derived from the topic layout: each device owns its own subtree.

Devices log in with their device id as username (or as the CN of their client certificate), so
``%u`` in a Mosquitto ``pattern`` line is the device id. A device may write only below its own id
and read only its own commands; the collector reads everything and writes only commands.
``pattern`` lines apply to every user, so a collector username must never be a valid device id
(the Ansible role uses ``anbu.collector``: ``.`` is not allowed in ids).

``firmware_config/templates/mosquitto-acl.j2`` renders the same rules for provisioning;
tests/ansible checks that the two agree.
"""

from __future__ import annotations

from firmware_config.topics import PREFIX

DEVICE_RULES = (
    f"pattern write {PREFIX}/+/+/%u/#",
    f"pattern read {PREFIX}/+/+/%u/cmd/#",
)


def collector_rules(collector_user: str) -> tuple[str, ...]:
    return (
        f"user {collector_user}",
        f"topic read {PREFIX}/#",
        f"topic write {PREFIX}/+/+/+/cmd/#",
    )


def broker_acl(collector_user: str) -> str:
    """A Mosquitto ``acl_file`` for one collector user and any number of devices."""
    return "\n".join(
        [
            "# Anbu broker ACL (firmware_config/acl.py)",
            *collector_rules(collector_user),
            "",
            "# every other user is a device whose username is its device id",
            *DEVICE_RULES,
            "",
        ]
    )
