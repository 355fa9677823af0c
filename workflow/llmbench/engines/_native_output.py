"""Capture what a native library prints while it loads (C++ writes to the file descriptor, past Python's
``sys.stdout``/``sys.stderr``): CTranslate2 logs its ISA and GEMM backends to stderr, OpenVINO GenAI prints the
compiled model's properties to stdout. Adapters parse the text into their runtime record."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, Callable


def capture_fd(fd: int, fn: Callable[[], Any]) -> tuple[Any, str]:
    """Run ``fn`` with file descriptor ``fd`` (1 or 2) sent to a temporary file; return its result and the text,
    which is also echoed to stderr so the job log keeps it."""
    stream = sys.stdout if fd == 1 else sys.stderr
    stream.flush()  # what Python buffered before belongs to the real descriptor, not to the capture
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), fd)
            result = fn()
        finally:
            stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    if text:
        os.write(2, text.encode())
    return result, text
