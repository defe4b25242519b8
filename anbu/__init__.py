"""The ``anbu`` command line: ``anbu agent``, ``anbu collector``, ``anbu demo``."""

__version__ = "0.1.0"
