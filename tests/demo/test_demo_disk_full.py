"""A write that fails for want of space: one line naming the file, nothing partial left behind.

The fault is real: the process's file-size limit (RLIMIT_FSIZE) makes the kernel refuse the
write with EFBIG, as a full disk refuses it with ENOSPC; it runs in a child process.
"""

import subprocess
import sys
import textwrap

import pytest

resource = pytest.importorskip("resource")  # POSIX

CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    import torch
    from unified_guidance.demo.cache import CheckpointCache
    from unified_guidance.demo.io import atomic_write_text
    from unified_guidance.training.results import save_fields

    out = Path(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the kernel then fails the write instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    for name, write in [
        ("report", lambda: atomic_write_text(out / "report.md", "x" * 100_000)),
        ("cache", lambda: CheckpointCache(out / "cache").save("flow", {}, {"w": torch.zeros(10_000)})),
        ("item", lambda: save_fields(out / "item-00000.pt", {"samples": torch.zeros(10_000)})),
    ]:
        try:
            write()
            print(name, "no error")
        except OSError as err:
            print(name, err.strerror)
    """
)


def test_a_write_beyond_the_space_left_is_one_line_naming_the_path_and_leaves_nothing(tmp_path):
    (tmp_path / "cache").mkdir()
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert lines["report"].startswith(f"cannot write '{tmp_path / 'report.md'}': File too large")
    assert lines["cache"].startswith(f"cannot write '{tmp_path / 'cache' / 'flow.pt'}': File too large")
    assert lines["item"].startswith(f"cannot write '{tmp_path / 'item-00000.pt'}': File too large")
    leftovers = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert leftovers == []  # no partial target, no temporary file


def test_the_console_script_reports_a_failed_write_in_one_line(tmp_path, monkeypatch, capsys):
    import errno

    import unified_guidance.demo.run as run
    from unified_guidance.demo.cli import main
    from unified_guidance.demo.io import WriteError

    def full(opts):
        raise WriteError(errno.ENOSPC, f"cannot write '{tmp_path}/report.json': No space left on device")

    monkeypatch.setattr(run, "run_demo", full)
    assert main(["demo", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == f"unified-guidance demo: error: cannot write '{tmp_path}/report.json': No space left on device\n"
