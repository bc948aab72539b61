"""Hide TensorFlow's start-up noise, on request: in the command lines and the notebook.

``import fcnseg`` changes nothing in the process. A notebook that wants clean
cells calls `quiet_tensorflow` once, before anything imports TensorFlow:

>>> from fcnseg import quiet_tensorflow
>>> quiet_tensorflow()                                  # doctest: +SKIP

TensorFlow writes some lines straight to file descriptor 2 before its logging
is set up (``absl::InitializeLog``, ``cudart_stub ... Could not find cuda
drivers``, ``failed call to cuInit`` on machines without an NVIDIA driver;
oneDNN's "custom operations are on" notice on Intel and AMD CPUs). No setting
reaches the first three, so the import and the device discovery run with fd 2
captured, and every captured line is written back except those; a real warning
or error still appears.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|cudart_stub\.cc.*Could not find cuda drivers"
    r"|failed call to cuInit"
    r"|oneDNN custom operations are on"
)


@contextlib.contextmanager
def filtered_stderr(pattern=STARTUP_NOISE):
    """Capture file descriptor 2 in the block, then write back the lines that do not match `pattern`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(True) if not pattern.search(line.decode(errors="replace"))]
            if kept:
                os.write(2, b"".join(kept))


def quiet_tensorflow(level: int = 1) -> None:
    """Import TensorFlow without its start-up noise; keep its C++ log at `level` and above.

    Sets ``TF_CPP_MIN_LOG_LEVEL`` (1: INFO lines off, warnings and errors on)
    unless it is set already, then imports TensorFlow and lists its devices
    with the start-up lines filtered out (see `filtered_stderr`). Call it
    before anything imports TensorFlow; afterwards it changes nothing.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(level))
    with filtered_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery: where cuInit is called
