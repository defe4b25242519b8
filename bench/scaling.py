"""How the collector's figures grow with 10k, 100k and 1M homes: runs the other benchmarks and
renders their JSON lines as the table in ``docs/scaling.md``.

    python bench/scaling.py [--homes 10000 100000 1000000] [--database sqlite] [--write]

For each number of homes it runs, as separate processes, ``bench/registry_memory.py``,
``bench/seed.py``, ``bench/ingest.py`` and ``bench/silence_scale.py`` (each starts what it needs),
reads the last JSON line each printed, and prints the Markdown table; ``--write`` puts it in
``docs/scaling.md`` between the ``scaling-table`` markers. Progress goes to stderr; one JSON line
with every figure is printed last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- scaling-table:begin -->", "<!-- scaling-table:end -->"


def run(script: str, *args: str) -> dict[str, Any]:
    """Run ``bench/<script>`` and return the last JSON line it printed."""
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    took = round(time.monotonic() - started, 1)
    print(
        json.dumps({"progress": script, "args": args, "s": took, "rc": out.returncode}),
        file=sys.stderr,
    )
    if out.returncode != 0 or not lines:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def figures_for(homes: int, database: str, ingest_seconds: float) -> dict[str, Any]:
    n = str(homes)
    return {
        "registry": run("registry_memory.py", "--homes", n),
        "seed": run("seed.py", "--homes", n, "--repeat", "1", "--database", database),
        "ingest": run(
            "ingest.py",
            "--homes",
            n,
            "--seconds",
            str(ingest_seconds),
            "--reps",
            "1",
            "--database",
            database,
        ),
        "silence": run(
            "silence_scale.py",
            "--homes",
            n,
            "--due",
            str(min(homes // 10, 100_000)),
            "--seconds",
            "10",
        ),
    }


def cell(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}{unit}"
    return str(value)


def table(by_homes: dict[int, dict[str, Any]], database: str) -> str:
    homes = sorted(by_homes)
    head = "| figure | " + " | ".join(f"{h:,} homes" for h in homes) + " | script |"
    rule = "|---|" + "---|" * len(homes) + "---|"

    def row(name: str, script: str, pick: Any) -> str:
        cells = []
        for h in homes:
            try:
                cells.append(pick(by_homes[h]))
            except (KeyError, TypeError):
                cells.append("error")
        return f"| {name} | " + " | ".join(cells) + f" | `{script}` |"

    def registry(f: dict[str, Any]) -> str:
        [entry] = f["registry"]["by_homes"].values()
        return cell(entry["bytes_per_household"], " B")

    def seed(f: dict[str, Any]) -> str:
        s = f["seed"]
        return f"{cell(s['seed_s']['median'], ' s', 2)} / {cell(s['import_s']['median'], ' s', 2)}"

    def load(f: dict[str, Any]) -> str:
        return cell(f["ingest"]["conditions"]["load_avg_1m"], digits=1)

    def ingest(f: dict[str, Any]) -> str:
        i = f["ingest"]
        return (
            f"{cell(i['heartbeats_per_s'])}/s (bare {cell(i['bare_subscriber_per_s'])}/s, "
            f"ratio {cell(i['ratio'], digits=2)}, CPU ratio {cell(i['cpu_ratio'], digits=2)})"
        )

    def silence(f: dict[str, Any]) -> str:
        s = f["silence"]
        return (
            f"{cell(s['rss_bytes_per_home'], ' B')}; lag p99 {cell(s['flag_lag_p99_ms'], ' ms', 1)}"
        )

    return "\n".join(
        [
            head,
            rule,
            row("registry memory per household", "bench/registry_memory.py", registry),
            row(f"seeding / importing the homes ({database})", "bench/seed.py", seed),
            row(
                f"heartbeats ingested, one bulk lane ({database})",
                "bench/ingest.py",
                ingest,
            ),
            row(
                "silence schedule memory per home; deadline → flag lag",
                "bench/silence_scale.py",
                silence,
            ),
            row("machine load (1-minute average) when ingest ran", "bench/ingest.py", load),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--ingest-seconds", type=float, default=8.0)
    parser.add_argument("--write", action="store_true", help="update docs/scaling.md")
    opts = parser.parse_args()
    by_homes = {h: figures_for(h, opts.database, opts.ingest_seconds) for h in opts.homes}
    text = table(by_homes, opts.database)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    block = (
        f"{BEGIN}\n_Produced by `python bench/scaling.py --homes "
        f"{' '.join(map(str, opts.homes))} --database {opts.database} --write` on {stamp}; "
        f"one repetition per cell, on the shared build machine._\n\n{text}\n{END}"
    )
    print(text, file=sys.stderr)
    if opts.write:
        doc = DOC.read_text(encoding="utf-8")
        if BEGIN in doc and END in doc:
            doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END) :]
        else:
            doc = doc.rstrip("\n") + "\n\n" + block + "\n"
        DOC.write_text(doc, encoding="utf-8")
    print(json.dumps({"bench": "scaling", "database": opts.database, "by_homes": by_homes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
