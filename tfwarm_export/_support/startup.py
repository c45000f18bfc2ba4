"""Keep TensorFlow's start-up chatter out of the user's terminal.

Importing TensorFlow writes C++ log lines straight to file descriptor 2 (the absl
"All log messages before absl::InitializeLog()" line, CUDA and CPU-instruction
notices) whatever ``TF_CPP_MIN_LOG_LEVEL`` says, and the first device
initialisation adds a cuInit error on machines without a GPU. None of it is about
the user's model, and it drowns the tool's own lines. So when tfwarm_export is the
one importing TensorFlow, it sets the logging environment first and captures fd 2
while TensorFlow loads; ``tfwarm -v`` shows what was captured
(``captured_messages``), and a failing import prints it, since then it matters.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from typing import Iterator

_captured: list[str] = []


def last_captured() -> str:
    """What the most recent ``capture_fd2`` block wrote."""
    return _captured[-1] if _captured else ""


def captured_messages() -> str:
    """What TensorFlow wrote to stderr while tfwarm_export imported/initialised it."""
    return "".join(_captured)


@contextlib.contextmanager
def capture_fd2() -> Iterator[None]:
    """Send fd 2 (C++ and Python stderr alike) to a temp file for the block; keep the text.

    On an exception the captured text is written back to stderr before the
    exception propagates, so a crash keeps its explanation.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters)
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            _captured.append(text)
            if failed and text:
                sys.stderr.write(text)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its start-up lines captured (no-op if already imported).

    ``TF_CPP_MIN_LOG_LEVEL=2`` (unless set) keeps later C++ INFO/WARNING lines
    quiet too; TensorFlow reads it only at import, which is why this runs first.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with capture_fd2():
        import tensorflow  # noqa: F401
    logging.getLogger("tfwarm_export").debug("TensorFlow start-up output:\n%s", captured_messages())


def init_devices_quietly() -> None:
    """Initialise TF's devices now, captured: on a machine without a GPU the first
    device lookup logs a cuInit error at ERROR level that no log level setting hides."""
    import tensorflow as tf

    with capture_fd2():
        tf.config.list_physical_devices()
