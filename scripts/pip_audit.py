"""CI step: audit the installed Python packages with pip-audit (vulnerability data from PyPI).

Fails (exit 1) on any known vulnerability. pip-audit asks PyPI's JSON API about each package; a
package PyPI does not know (a local mirror with other versions, a private wheel) is skipped, and a
run that could audit nothing at all is reported loudly rather than passed off as clean:
exit 3, or 0 with ``ANBU_PIP_AUDIT_ALLOW_UNAUDITED=1`` (machines without PyPI's JSON API).
Prints one JSON line last: audited, skipped, vulnerable.

    .venv/bin/python scripts/pip_audit.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> int:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    result = subprocess.run(  # noqa: S603 - our own venv's tool, fixed arguments
        [str(pip_audit), "--skip-editable", "--progress-spinner", "off", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit did not run (exit {result.returncode}): {result.stderr}", file=sys.stderr)
        return 2
    deps = report["dependencies"]
    skipped = [d for d in deps if "skip_reason" in d]
    audited = [d for d in deps if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            print(f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    code = 1 if vulnerable else 0
    if not audited and skipped:
        print(
            f"pip-audit could audit none of {len(skipped)} packages (PyPI's JSON API does not know "
            f"them here, e.g. {skipped[0]['skip_reason']})",
            file=sys.stderr,
        )
        if os.environ.get("ANBU_PIP_AUDIT_ALLOW_UNAUDITED") != "1":
            code = 3
    summary = {
        "audited": len(audited),
        "skipped": len(skipped),
        "vulnerable": len(vulnerable),
        "exit": code,
    }
    print(json.dumps(summary))
    return code


if __name__ == "__main__":
    sys.exit(main())
