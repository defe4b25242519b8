"""The broker's access rules, derived from the topic layout: one source for every broker config.

The rules are a Mosquitto *dynamic-security* configuration (a JSON file read by the
``mosquitto_dynamic_security`` plugin that Debian's package ships), because that plugin refuses
what a client may not do at the moment it tries: a forbidden SUBSCRIBE gets reason code 0x87 in
SUBACK (the plain ``acl_file`` grants every subscription, ``$share/...`` included, and only
filters at delivery, so a device could join the collectors' share group and take its share of
other homes' SOS). A forbidden PUBLISH gets 0x87 in PUBACK with either mechanism.

What the file says:

* **A device** (one client per device id, with its own role) may publish only below its own
  address ``anbu/v1/{district}/{household}/{device}/`` (not its own ``cmd/``), and subscribe to and
  receive only its own ``cmd/``. Its MQTT client id must equal its device id, so no device can take
  over another's session (dynsec refuses the CONNECT with 0x87; on the certificate listener the
  broker's ``use_username_as_clientid`` replaces whatever id the device sent).
* **The collector** may subscribe to (and receive) everything below ``anbu/v1/``, through the
  ``$share/anbu-collectors/`` group or directly, and publish only commands.
* Everyone else, including a device id that is not listed, is refused everything.

The file carries no secrets: passwords stay in the broker's ``password_file`` (dynsec defers
password checks for clients that have no password of their own). The Ansible role renders the same
document from ``firmware_config/templates/mosquitto-dynsec.json.j2``; tests/ansible checks that the
two agree. :func:`security_config_lines` are the ``mosquitto.conf`` lines that go with it.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from firmware_config.messages import MAX_PAYLOAD_BYTES
from firmware_config.topics import COLLECTOR_SHARE_GROUP, PREFIX, validate_id

ANY = "+"
"""District or household left open: the device may use any (test brokers only)."""

MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 1024
"""Hard cap on any MQTT packet the broker accepts (a payload at the limit plus topic and header)."""

COLLECTOR_ROLE = "anbu-collector"

DYNSEC_PLUGIN_GLOBS = (
    "/usr/lib/*/mosquitto_dynamic_security.so",  # Debian, Raspberry Pi OS (multiarch)
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/*/mosquitto_dynamic_security.so",
)


class PluginNotFound(RuntimeError):
    """Mosquitto's dynamic-security plugin is not installed where Debian puts it."""


@dataclass(frozen=True, slots=True)
class DeviceGrant:
    """One device the broker lets in, and where it sits.

    ``district``/``household`` may be :data:`ANY` in test brokers whose tests move one device id
    between homes; provisioned brokers always name both.
    """

    device: str
    district: str = ANY
    household: str = ANY

    def __post_init__(self) -> None:
        validate_id("device", self.device)
        for name in ("district", "household"):
            value = getattr(self, name)
            if value != ANY:
                validate_id(name, value)

    @property
    def base(self) -> str:
        return f"{PREFIX}/{self.district}/{self.household}/{self.device}"

    @property
    def role(self) -> str:
        return f"device-{self.device}"


def _acl(acltype: str, topic: str, *, allow: bool = True, priority: int = 0) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": priority, "allow": allow}


def collector_acls() -> list[dict[str, Any]]:
    """Read everything below the prefix (shared group or not); write only commands."""
    return [
        _acl("subscribePattern", f"$share/{COLLECTOR_SHARE_GROUP}/{PREFIX}/#"),
        _acl("subscribePattern", f"{PREFIX}/#"),
        _acl("publishClientReceive", f"{PREFIX}/#"),
        _acl("publishClientSend", f"{PREFIX}/+/+/+/cmd/#"),
    ]


def device_acls(grant: DeviceGrant) -> list[dict[str, Any]]:
    """Write below its own address but not its own commands; read only its own commands."""
    return [
        _acl("publishClientSend", f"{grant.base}/cmd/#", allow=False, priority=1),
        _acl("publishClientSend", f"{grant.base}/#"),
        _acl("subscribePattern", f"{grant.base}/cmd/#"),
        _acl("publishClientReceive", f"{grant.base}/cmd/#"),
    ]


def dynsec_config(collector_user: str, devices: Iterable[DeviceGrant]) -> dict[str, Any]:
    """The dynamic-security document for one collector account and ``devices``."""
    grants = list(devices)
    seen: set[str] = set()
    for grant in grants:
        if grant.device in seen:
            raise ValueError(f"device {grant.device!r} is listed twice")
        if grant.device == collector_user:
            raise ValueError(f"device id {grant.device!r} is the collector's username")
        seen.add(grant.device)
    clients: list[dict[str, Any]] = [
        {"username": collector_user, "roles": [{"rolename": COLLECTOR_ROLE, "priority": 0}]}
    ]
    roles: list[dict[str, Any]] = [{"rolename": COLLECTOR_ROLE, "acls": collector_acls()}]
    for grant in grants:
        clients.append(
            {
                "username": grant.device,
                "clientid": grant.device,
                "roles": [{"rolename": grant.role, "priority": 0}],
            }
        )
        roles.append({"rolename": grant.role, "acls": device_acls(grant)})
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }


def simulator_acls() -> list[dict[str, Any]]:
    """A load generator (``anbu sim``, benchmarks): publish for every home, read every command.

    Never for a field broker: it may speak for any device.
    """
    return [
        _acl("publishClientSend", f"{PREFIX}/#"),
        _acl("subscribePattern", f"{PREFIX}/+/+/+/cmd/#"),
        _acl("publishClientReceive", f"{PREFIX}/+/+/+/cmd/#"),
    ]


def add_client(config: dict[str, Any], username: str, acls: list[dict[str, Any]]) -> None:
    """Add ``username`` with a role of its own holding ``acls`` to a :func:`dynsec_config`."""
    rolename = f"extra-{username}"
    config["clients"].append(
        {"username": username, "roles": [{"rolename": rolename, "priority": 0}]}
    )
    config["roles"].append({"rolename": rolename, "acls": acls})


def dynsec_json(collector_user: str, devices: Iterable[DeviceGrant]) -> str:
    """:func:`dynsec_config` as the file the plugin reads."""
    return json.dumps(dynsec_config(collector_user, devices), indent=2) + "\n"


def find_dynsec_plugin() -> str:
    """Path of ``mosquitto_dynamic_security.so``; :class:`PluginNotFound` names the package."""
    for pattern in DYNSEC_PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise PluginNotFound(
        "mosquitto_dynamic_security.so was not found (Debian's 'mosquitto' package installs it "
        "under /usr/lib/<arch>/); Anbu's broker needs it for its access rules"
    )


def security_config_lines(plugin: str, dynsec_file: str) -> list[str]:
    """``mosquitto.conf`` lines that make the broker enforce :func:`dynsec_config`.

    ``message_size_limit`` refuses a payload above the contract's limit (the broker answers a
    QoS 1 publish with 0x95 and drops it); ``max_packet_size`` caps every packet.
    """
    return [
        f"plugin {plugin}",
        f"plugin_opt_config_file {dynsec_file}",
        f"message_size_limit {MAX_PAYLOAD_BYTES}",
        f"max_packet_size {MAX_PACKET_BYTES}",
    ]
