"""The dtype policy models compute under: Keras' global policy for the models built next, and the
policy a built or loaded model runs at (a saved model keeps the one it was trained under).

``"mixed_float16"`` for NVIDIA GPUs, ``"mixed_bfloat16"`` for CPUs with AVX-512 BF16 or AMX (and
TPUs), ``"float32"`` otherwise; ``"auto"`` picks among these for the computer the code runs on.
The weights are float32 under each of them, so a model moves between them without conversion.

>>> set_precision("float32")
'float32'
>>> resolve_precision("auto") in ("float32", "mixed_bfloat16", "mixed_float16")
True
"""

from __future__ import annotations

import keras
import tensorflow as tf  # the GPU query only

from fcnseg.checks import PRECISIONS, one_of


def auto_precision() -> str:
    """The fastest policy for the computer it runs on: float16 on GPUs, bfloat16 on CPUs with bf16 units.

    The CPU's features come from NumPy's runtime detection (any OS); every CPU
    with AMX also has AVX-512 BF16, so that one flag covers both.
    """
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_features().get("AVX512BF16") else "float32"


def cpu_features() -> dict:
    """The CPU's features by NumPy's runtime detection (any OS), e.g. ``{"AVX512BF16": True, ...}``;
    empty for a NumPy without the detection table."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        return {}
    return dict(__cpu_features__)


def resolve_precision(policy: str = "auto") -> str:
    """`policy` checked against `PRECISIONS`, with ``"auto"`` replaced by `auto_precision`'s choice."""
    return auto_precision() if one_of("precision", policy, PRECISIONS) == "auto" else policy


def set_precision(policy: str = "auto") -> str:
    """Set Keras' global dtype policy; call it *before* building the model. Losses,
    metrics and the model's logits stay float32. Returns the policy set.

    >>> set_precision("float32")
    'float32'
    """
    policy = resolve_precision(policy)
    keras.mixed_precision.set_global_policy(policy)
    return policy
