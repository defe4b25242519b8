"""Pure decisions: inputs and ``now`` in, decisions out. No I/O, no clock, no database."""
