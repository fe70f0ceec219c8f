"""Fixtures of the training tests."""

import signal

import pytest


@pytest.fixture
def sigint_restored():
    """SIGINT as a terminal's foreground job has it (Python's KeyboardInterrupt), put back after.

    A job started with ``&`` by a non-interactive shell (CI) runs with SIGINT ignored, and
    Lightning ignores SIGINT after a Ctrl-C: both must not decide what the test sees."""
    handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, handler)
