"""`tf.distribute` strategies for `fcnseg.training.loop.train` and ``fcnseg-train --strategy``.

>>> strategy = make_strategy("mirrored")            # doctest: +SKIP
>>> train(lambda: build_fcn("fcn8s", num_classes=11), train_ds, strategy=strategy)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from fcnseg.checks import STRATEGIES, one_of


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files under `strategy` (None: the default
    one): always, except on the non-chief workers of a multi-worker strategy
    (TensorFlow's ``should_checkpoint``)."""
    return (strategy or tf.distribute.get_strategy()).extended.should_checkpoint


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """TensorFlow's multi-worker strategy, with the `reduce` that Keras 3's `fit` expects
    (keras-team/keras#20585): nested values are reduced leaf by leaf, as
    `MirroredStrategy.reduce` does (fit reduces a whole (images, masks) batch when it
    builds the model), and a scalar is reduced across replicas whatever `axis` says
    (fit asks for ``axis=0`` on the per-replica loss and metrics)."""

    def reduce(self, reduce_op, value, axis):
        def reduce_one(v):
            scalar = self.experimental_local_results(v)[0].shape.rank == 0
            return super(MultiWorkerMirroredStrategy, self).reduce(reduce_op, v, None if scalar else axis)

        return tf.nest.map_structure(reduce_one, value)


def make_strategy(name: str = "none"):
    """``"none"`` (the default strategy), ``"mirrored"`` (every local GPU, or the CPU)
    or ``"multiworker"`` (the cluster described by the ``TF_CONFIG`` variable).

    Call it at program start: a multi-worker strategy must exist before
    TensorFlow runs its first operation (e.g. before building a dataset).
    """
    if one_of("strategy", name, STRATEGIES) == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return MultiWorkerMirroredStrategy()
    return tf.distribute.MirroredStrategy() if name == "mirrored" else None


TF_CONFIG_EXAMPLE = json.dumps(
    {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}
)


def check_tf_config(text: str | None) -> dict:
    """Parse a ``TF_CONFIG`` value for ``--strategy multiworker``, or raise a
    `ValueError` that says what is wrong and shows an example.

    >>> check_tf_config(TF_CONFIG_EXAMPLE)["task"]
    {'type': 'worker', 'index': 0}
    """
    def fail(problem):
        raise ValueError(
            f"--strategy multiworker needs the TF_CONFIG environment variable: {problem}. Set it on every "
            f"worker, with the same cluster and this worker's own task (worker 0 is the chief), e.g.\n"
            f"  TF_CONFIG='{TF_CONFIG_EXAMPLE}'"
        )

    if not text:
        fail("it is not set")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"it is not valid JSON ({e})")
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        fail('it has no "cluster" object')
    cluster = config["cluster"]
    if not isinstance(cluster.get("worker", cluster.get("chief")), list):
        fail('its "cluster" has no "worker" (or "chief") list of "host:port" addresses')
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            fail(f'its cluster job {job!r} is not a list of "host:port" addresses')
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        fail('it has no "task" object with a "type" and an "index"')
    if task["type"] not in ("chief", "worker") or task["type"] not in cluster:
        fail(f'its task type {task["type"]!r} is not a "chief" or "worker" job of the cluster')
    index, size = task["index"], len(cluster[task["type"]])
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        fail(f"its task index {index!r} is not one of 0..{size - 1} (the cluster's {task['type']!r} list)")
    return config
