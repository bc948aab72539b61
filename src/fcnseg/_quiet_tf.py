"""Import TensorFlow without its CPU-only start-up noise in notebook cells.

On a machine without an NVIDIA driver, the CUDA build of TensorFlow writes
three lines straight to the process's stderr before its logging is set up
(``absl::InitializeLog``, ``cudart_stub ... Could not find cuda drivers``,
``failed call to cuInit``), which Jupyter shows in red in the first cell
that touches TensorFlow. No environment variable reaches them, so the import
and the device discovery run with stderr captured, and every captured line
is written back except those known start-up lines; anything else TensorFlow
says (a real warning or error) still appears.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines off; warnings and errors on

# Lines that only say "this machine has no CUDA GPU" (the same facts tf.config reports).
STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|cudart_stub\.cc.*Could not find cuda drivers"
    r"|failed call to cuInit"
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


with filtered_stderr():
    import tensorflow as tf

    tf.config.list_physical_devices()  # device discovery: where cuInit is called
