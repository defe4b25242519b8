"""The one error type the contract raises, so callers can dead-letter bad input uniformly."""


class ContractError(ValueError):
    """A topic, payload or configuration value does not follow the contract.

    The message names what was wrong (field, value, and where it came from) so that it can be
    shown to a technician or stored as a dead-letter reason without further context.
    """
