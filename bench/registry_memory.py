"""Collector memory per household for the in-memory device registry, at 10k / 100k / 1M homes.

The registry (``collector/registry.py``) is what the ingest keeps per device to check identities
without a query. Measured with ``tracemalloc`` around filling it from rows shaped as the store
gives them (device, household and district strings), beside the same rows held in a plain
``dict[str, tuple[str, str]]`` as the reference.

    python bench/registry_memory.py [--homes 10000 100000 1000000]

Prints one JSON line: bytes per household for each size, the reference, and the ratio.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._load import machine
from collector.registry import DeviceHome, DeviceRegistry


def rows(homes: int) -> list[tuple[str, str, str]]:
    return [(f"d{n:07d}", f"h{n:07d}", f"district-{n % 25:02d}") for n in range(homes)]


def measure(homes: int) -> tuple[float, float]:
    """Bytes per home held by the registry, and by a plain dict of the same strings.

    The rows are made inside the traced region and dropped after, so the strings the registry
    keeps (as it keeps those it read from the store) are counted, the throwaway rows are not.
    """
    gc.collect()
    tracemalloc.start()
    data = rows(homes)
    registry = DeviceRegistry(lambda ids: {})
    registry.replace_all({d: DeviceHome(sys.intern(h), sys.intern(dist)) for d, h, dist in data})
    del data
    gc.collect()
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del registry
    gc.collect()
    tracemalloc.start()
    data = rows(homes)
    plain = {d: (h, dist) for d, h, dist in data}
    del data
    gc.collect()
    reference = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del plain
    return used / homes, reference / homes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    sizes = {}
    for homes in args.homes:
        per_home, reference = measure(homes)
        sizes[str(homes)] = {
            "bytes_per_household": round(per_home),
            "plain_dict_bytes_per_household": round(reference),
            "ratio": round(per_home / reference, 2),
        }
        print(json.dumps({"progress": homes, **sizes[str(homes)]}), file=sys.stderr)
    print(
        json.dumps(
            {
                "figure": "collector memory per household, in-memory device registry",
                "by_homes": sizes,
                "goal_bytes_per_household": 1024,
                "conditions": {
                    "measured_with": "tracemalloc: Python allocations the registry keeps "
                    "(its dict, entries and id strings), after the source rows are dropped",
                    **machine(),
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
