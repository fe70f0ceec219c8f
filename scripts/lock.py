"""Write or check the lock (``constraints.txt``): every installed distribution, pinned.

    python scripts/lock.py write VENV_PYTHON constraints.txt   # after installing the newest allowed set
    python scripts/lock.py check VENV_PYTHON constraints.txt   # every installed package is pinned, at that version

``make lock`` drives ``write`` in a throwaway venv; ``make test`` and ``make demo`` run ``check``
after installing, so a dependency that entered without a pin (a new transitive requirement of
an upgraded package) fails the set-up instead of floating.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys

PROJECT = "unified-guidance"
HEADER = """\
# The lock: every package the suite, the demo and the docs were tested with, pinned.
# make test / make demo install with `pip install -c constraints.txt`; refresh with `make lock`
# (a fresh venv with the newest releases pyproject allows, then `pip freeze`), run `make test`,
# and commit this file. torch is the CPU build (pinned without its +cpu label).
# Written {date} by scripts/lock.py.
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(python: str) -> dict[str, str]:
    """``{canonical name: version without local label}`` of a venv, the project itself left out."""
    out = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze", "--exclude-editable", "--disable-pip-version-check"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    pins = {}
    for line in out.splitlines():
        name, _, version = line.partition("==")
        if version and canonical(name) != PROJECT:
            pins[canonical(name)] = version.split("+")[0]
    return pins


def read_lock(path: str) -> dict[str, str]:
    pins = {}
    with open(path) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                name, sep, version = line.partition("==")
                if not sep:
                    raise SystemExit(f"{path}: expected 'name==version' lines, got {line!r}")
                pins[canonical(name)] = version
    return pins


def write(python: str, path: str) -> None:
    pins = installed(python)
    with open(path, "w") as f:
        f.write(HEADER.format(date=datetime.date.today().isoformat()))
        f.writelines(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    print(f"{path}: {len(pins)} packages pinned")


def check(python: str, path: str) -> None:
    lock, have = read_lock(path), installed(python)
    unpinned = sorted(set(have) - set(lock))
    wrong = sorted(f"{n} {have[n]} (lock: {lock[n]})" for n in set(have) & set(lock) if have[n] != lock[n])
    if unpinned or wrong:
        lines = [f"{path}: the environment is not the locked one."]
        if unpinned:
            lines.append(f"  installed but not pinned: {', '.join(f'{n}=={have[n]}' for n in unpinned)}")
        if wrong:
            lines.append(f"  versions differ: {', '.join(wrong)}")
        lines.append("  Refresh the lock with `make lock` (then run make test and commit constraints.txt).")
        raise SystemExit("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("write", "check"):
        raise SystemExit("usage: python scripts/lock.py {write,check} VENV_PYTHON LOCKFILE")
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2], sys.argv[3])
