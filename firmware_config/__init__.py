"""The contract between the Anbu cloud and its devices.

Both the edge agent and the collector import this package; it depends on pydantic only, so the
Raspberry Pi never pulls in the collector's stack and vice versa.
"""

from firmware_config.errors import ContractError

__all__ = ["ContractError"]
