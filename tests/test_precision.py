"""Mixed precision: the class-score layers compute in float32 under every policy
(oneDNN's AMX bfloat16 kernels corrupt the heap when training a convolution from
fc7's wide input to a few classes), for new models and for models saved before
that rule, and real training under ``mixed_bfloat16`` on CPUs with AMX.

The policy is set in a subprocess where it matters, so no other test sees it.
"""

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from fcnseg.models.fcn import CLASS_LAYERS, build_fcn, load_fcn, save_fcn
from fcnseg.models.precision import auto_precision

CONFIGS = [("fcn32s", "bilinear"), ("fcn32s", "notebook"), ("fcn16s", "bilinear"), ("fcn8s", "bilinear")]


def cpu_flags() -> set[str]:
    """The flags of the first CPU in /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


HAS_AMX = "amx_bf16" in cpu_flags()


@pytest.fixture
def bf16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def class_layers(model):
    return [layer for layer in model.layers if layer.name in CLASS_LAYERS]


def assert_classes_compute_in_float32(model, num_classes):
    layers_ = class_layers(model)
    assert layers_, "the model has no class-score layers"
    for layer in layers_:
        assert layer.compute_dtype == "float32", layer.name
        if hasattr(layer, "kernel"):  # run it for real on a bfloat16 input: the output is float32
            x = ops.ones((1, 2, 2, layer.kernel.shape[-1 if "upscore" in layer.name else -2]), "bfloat16")
            assert layer(x).dtype == "float32", layer.name
    # everything else follows the mixed policy
    assert model.get_layer("fc7").compute_dtype == "bfloat16"
    assert model.output.shape[-1] == num_classes


@pytest.mark.parametrize("variant,decoder", CONFIGS)
def test_class_layers_compute_in_float32_under_mixed_bfloat16(bf16_policy, variant, decoder):
    model = build_fcn(variant, decoder=decoder, num_classes=5, fc_units=32, backbone_weights=None)
    names = {layer.name for layer in class_layers(model)}
    expected = {"fcn32s": {"score_fr", "upscore32"}, "fcn16s": {"score_fr", "upscore2", "score_pool4", "fuse_pool4",
                "upscore16"}, "fcn8s": {"score_fr", "upscore2", "score_pool4", "fuse_pool4", "upscore_pool4",
                "score_pool3", "fuse_pool3", "upscore8"}}[variant] if decoder == "bilinear" else {"classifier"}
    assert names == expected
    assert_classes_compute_in_float32(model, 5)


def _as_saved_before_the_fix(path: Path, policy: str = "mixed_bfloat16") -> Path:
    """Rewrite a .keras file so that its class-score layers carry `policy`, as files saved
    by fcnseg before the float32 rule do."""
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    config = json.loads(files["config.json"])
    changed = 0
    for layer in config["config"]["layers"]:
        if layer["name"] in CLASS_LAYERS:
            layer["config"]["dtype"] = {"module": "keras", "class_name": "DTypePolicy",
                                        "config": {"name": policy}, "registered_name": None}
            changed += 1
    assert changed
    files["config.json"] = json.dumps(config).encode()
    old = path.with_name("before_fix.keras")
    with zipfile.ZipFile(old, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return old


def test_a_model_saved_before_the_rule_loads_with_float32_class_layers(bf16_policy, tmp_path):
    model = build_fcn("fcn8s", num_classes=11, fc_units=32, backbone_weights=None)
    model.save(tmp_path / "m.keras")
    old = _as_saved_before_the_fix(tmp_path / "m.keras")
    raw = keras.saving.load_model(old)  # what Keras alone gives: the old policy
    assert {layer.compute_dtype for layer in class_layers(raw)} == {"bfloat16"}
    assert_classes_compute_in_float32(load_fcn(old), 11)


def test_a_saved_model_runs_at_the_precision_asked_for_whatever_it_was_saved_with(tmp_path):
    """load_fcn(precision=...) moves a model between policies: a float32 file runs in bfloat16 and
    a bfloat16 one in float32, giving the very logits of the model built in float32."""
    keras.utils.set_random_seed(0)
    model = build_fcn("fcn8s", num_classes=11, fc_units=32, backbone_weights=None)
    model.save(tmp_path / "float32.keras")
    image = np.random.default_rng(0).uniform(0, 255, (1, 45, 61, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(image))
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        bf16 = load_fcn(tmp_path / "float32.keras", precision="mixed_bfloat16")
        assert_classes_compute_in_float32(bf16, 11)
        assert bf16.get_layer("logits").compute_dtype == "float32" and bf16.dtype_policy.name == "mixed_bfloat16"
        low = keras.ops.convert_to_numpy(bf16(image))
        assert low.dtype == np.float32 and not np.array_equal(low, expected)  # it did compute in bfloat16
        np.testing.assert_allclose(low, expected, atol=0.05 * np.abs(expected).max())
        bf16.save(tmp_path / "bf16.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert load_fcn(tmp_path / "bf16.keras").get_layer("fc7").compute_dtype == "bfloat16"  # None keeps it
    back = load_fcn(tmp_path / "bf16.keras", precision="float32")
    assert {layer.compute_dtype for layer in back.layers} == {"float32"}
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(back(image)), expected)
    with pytest.raises(ValueError, match="Unknown precision 'half'"):
        load_fcn(tmp_path / "bf16.keras", precision="half")


def test_a_model_saved_with_float16_weights_is_half_the_size_and_loads_in_float32(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_fcn("fcn8s", num_classes=11, fc_units=32, backbone_weights=None)
    full = save_fcn(model, tmp_path / "full.keras")
    half = save_fcn(model, tmp_path / "half.keras", weights_dtype="float16")
    assert 0.45 < half.stat().st_size / full.stat().st_size < 0.55
    assert {w.dtype for w in keras.saving.load_model(half, compile=False).weights} == {"float16"}
    loaded = load_fcn(half)
    assert {w.dtype for w in loaded.weights} == {"float32"} and loaded.name == model.name
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    image = np.random.default_rng(0).uniform(0, 255, (1, 45, 61, 3)).astype("float32")
    expected, got = (keras.ops.convert_to_numpy(m(image)) for m in (model, loaded))
    assert not np.array_equal(got, expected)  # the weights were rounded to float16 ...
    np.testing.assert_allclose(got, expected, atol=2e-3 * np.abs(expected).max())  # ... and that is all
    assert load_fcn(half, precision="mixed_bfloat16").get_layer("fc7").compute_dtype == "bfloat16"
    with pytest.raises(ValueError, match="Unknown weights_dtype 'int8'"):
        save_fcn(model, tmp_path / "x.keras", weights_dtype="int8")
    assert not (tmp_path / "x.keras").exists()


def test_auto_precision_matches_the_cpu_flags():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        assert auto_precision() == "mixed_float16"
    elif not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    else:
        expected = "mixed_bfloat16" if "avx512_bf16" in cpu_flags() else "float32"
        assert auto_precision() == expected


# Each case (variant, decoder, classes) pairs every model with a class count, the narrowest
# (2 classes) on FCN-8s too. fc6/fc7 keep their 4096 units: the crash came from fc7's wide input
# to a few classes.
AMX_CASES = [("fcn32s", "bilinear", 21), ("fcn32s", "notebook", 5), ("fcn16s", "bilinear", 11),
             ("fcn8s", "bilinear", 2), ("fcn8s", "bilinear", 21)]  # fmt: skip

# One process runs every case (a TensorFlow start-up each would cost more than the training) and
# prints each case before it starts: a heap corruption kills the process, and the last line names the case.
TRAIN_UNDER_BF16 = textwrap.dedent("""
    import json, sys, numpy as np, keras
    from fcnseg.models.fcn import build_fcn, load_fcn
    from fcnseg.models.precision import set_precision
    from fcnseg.training.loop import train
    import tensorflow as tf
    cases, out = json.loads(sys.argv[1]), sys.argv[2]
    assert set_precision("mixed_bfloat16") == "mixed_bfloat16"
    rng = np.random.default_rng(0)
    for i, (variant, decoder, classes) in enumerate(cases):
        print("case", variant, decoder, classes, flush=True)
        x = rng.uniform(0, 255, (4, 288, 384, 3)).astype("float32")
        y = rng.integers(0, classes, (4, 288, 384)).astype("int32")
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
        build = lambda: build_fcn(variant, decoder=decoder, num_classes=classes, backbone_weights=None)
        history = train(build, ds, epochs=2, schedule="constant", checkpoint_dir=f"{out}/{i}", verbose=0)
        assert all(np.isfinite(history.history["loss"])), history.history["loss"]
        if i == len(cases) - 1:  # then load_fcn + fit, as --init-from does
            model = load_fcn(f"{out}/{i}/best.keras")
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            assert np.isfinite(model.fit(ds, epochs=1, verbose=0).history["loss"]).all()
    print("ok", flush=True)
""")


@pytest.mark.skipif(not HAS_AMX, reason="the CPU has no AMX (no amx_bf16 in /proc/cpuinfo): "
                    "the oneDNN bfloat16 crash this guards against happens on AMX CPUs only")
def test_training_under_mixed_bfloat16_on_amx(tmp_path):
    proc = subprocess.run([sys.executable, "-c", TRAIN_UNDER_BF16, json.dumps(AMX_CASES), str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    started = [line for line in proc.stdout.splitlines() if line.startswith("case ")]
    assert proc.returncode == 0, (f"{started[-1] if started else 'before the first case'}: exit {proc.returncode}\n"
                                  f"{proc.stderr[-3000:]}")  # fmt: skip
    assert proc.stdout.splitlines()[-1] == "ok" and len(started) == len(AMX_CASES)
