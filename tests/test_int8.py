"""Int8 inference (`fcnseg.inference.int8`): the shipped model's int8 masks agree with float32's on the
committed photo, through the prediction functions and ``fcnseg-predict --precision int8``; a
program is built once per model, input size and calibration, cached on disk, and a corrupt or
stale one is never run; a model LiteRT cannot convert, a CPU without int8 units and wrong
arguments each say so in one line.

Every test gets its own Keras home (``KERAS_HOME``), so no user's cache is read or written.
Building the shipped model's program for the 540x960 photo takes minutes (under 8 beside two training runs on 2 cores).
"""

import hashlib
import json
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image

from fcnseg import cli, load_fcn, predict_mask
from fcnseg.inference import int8
from fcnseg.datasets import load_image
from fcnseg.models.fcn import build_fcn
from fcnseg.inference.int8 import Int8Model, calibration_images, calibration_samples, cpu_has_int8_units, inference_model
from fcnseg.models.pretrained import STREET_SAMPLE, street_images

NAME = "camvid-fcn8s"
PHOTO = street_images()[0]
# The class ids the shipped model predicts for PHOTO in float32 (tests/data/README.md).
EXPECTED = Path(__file__).parent / "data" / f"{NAME}_{PHOTO.stem}.png"
MIN_AGREEMENT = 0.97  # measured: about 0.99 (docs/int8.md)
SIZE = (64, 96)


@pytest.fixture(scope="module")
def shipped_home(tmp_path_factory):
    """A Keras home shared by the shipped model's tests: its program is built once, calibrated on 8
    samples of the default calibration (the street photos) instead of 32, a quarter of the build."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("keras_home")
        patch.setenv("KERAS_HOME", str(home))
        patch.setattr(int8, "CALIBRATION_SAMPLES", 8)
        patch.setattr(int8, "_LOADED", type(int8._LOADED)())
        yield home / int8.CACHE_FOLDER


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty Keras home and nothing loaded: a new process on a new machine."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(int8, "_LOADED", type(int8._LOADED)())
    return tmp_path / int8.CACHE_FOLDER


@pytest.fixture(scope="module")
def tiny():
    """A seeded random FCN-8s of CamVid's 11 classes with small fc layers, and images to calibrate it on."""
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (3, *SIZE, 3), np.uint8)
    return build_fcn("fcn8s", num_classes=11, backbone_weights=None, fc_units=16), list(images)


def test_int8_masks_agree_with_float32_on_the_committed_photo(shipped_home):
    mask = predict_mask(load_fcn(NAME), load_image(PHOTO), precision="int8")  # default calibration: street photos
    expected = np.asarray(Image.open(EXPECTED))
    assert mask.shape == expected.shape == (540, 960)
    assert (mask == expected).mean() >= MIN_AGREEMENT
    assert len(list(shipped_home.glob("*.tflite"))) == 1


def test_predict_cli_takes_precision_int8(shipped_home, tmp_path):
    built = sorted(shipped_home.glob("*.tflite"))
    assert cli.main_predict([NAME, str(PHOTO), "--out", str(tmp_path), "--quiet", "--precision", "int8"]) == 0
    mask = np.asarray(Image.open(tmp_path / "masks" / f"{PHOTO.stem}.png"))
    assert (mask == np.asarray(Image.open(EXPECTED))).mean() >= MIN_AGREEMENT
    assert sorted(shipped_home.glob("*.tflite")) == built  # the program of the first test (when run with it)
    with pytest.raises(SystemExit) as exit_info:
        cli.main_predict([NAME, str(PHOTO), "--out", str(tmp_path), "--calibration", str(STREET_SAMPLE)])
    assert exit_info.value.code == 2  # --calibration without --precision int8


def test_a_program_is_cached_per_size_reused_and_never_run_stale_or_corrupt(cache, tiny, monkeypatch):
    model, images = tiny
    batch = np.stack(images[:2]).astype("float32")
    logits = Int8Model(model, images).predict_on_batch(batch)
    assert logits.shape == (2, *SIZE, 11) and logits.dtype == np.float32
    float32 = ops.convert_to_numpy(model.predict_on_batch(batch))
    assert (logits.argmax(-1) == float32.argmax(-1)).mean() >= 0.9
    (program,) = cache.glob("*.tflite")
    record = json.loads(program.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(program.read_bytes()).hexdigest() and record["input_size"] == list(SIZE)

    def no_build(*args):
        raise AssertionError("built a program")

    with monkeypatch.context() as patch:  # a new process: the program comes from the disk
        patch.setattr(int8, "_LOADED", type(int8._LOADED)())
        patch.setattr(int8, "build_program", no_build)
        np.testing.assert_array_equal(Int8Model(model, images).predict_on_batch(batch), logits)
        for other in ((64, 64), None):  # another size, other weights: another program
            if other is None:
                model.get_layer("score_fr").kernel.assign(model.get_layer("score_fr").kernel * 2)
            with pytest.raises(AssertionError, match="built a program"):
                Int8Model(model, images).predict_on_batch(batch[:, : (other or SIZE)[0], : (other or SIZE)[1]])
        model.get_layer("score_fr").kernel.assign(model.get_layer("score_fr").kernel / 2)

    corrupt = bytearray(program.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF
    program.write_bytes(corrupt)
    monkeypatch.setattr(int8, "_LOADED", type(int8._LOADED)())
    with pytest.warns(UserWarning, match="fails its checksum.*rebuilding it"):
        again = Int8Model(model, images).predict_on_batch(batch)
    np.testing.assert_array_equal(again, logits)
    assert hashlib.sha256(program.read_bytes()).hexdigest() == record["sha256"]


class Erfinv(keras.layers.Layer):
    """An op without a LiteRT kernel."""

    def call(self, x):
        return ops.erfinv(ops.tanh(x / 255))


def test_a_model_litert_cannot_convert_says_what_to_use_once(cache, tmp_path):
    from fcnseg import segment_files

    images = keras.Input((None, None, 3))
    model = keras.Model(images, keras.layers.Conv2D(11, 1)(Erfinv()(images)), name="odd")
    photos = [tmp_path / f"{i}.png" for i in range(2)]
    for photo in photos:
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photo)
    # The model's fault ends the run at the first file, instead of failing every file alike.
    with pytest.raises(int8.ConversionError, match=r"^LiteRT cannot convert odd to int8 \(Custom ops: Erfinv\): "
                                                   r"run it in float instead, .*precision='auto'"):  # fmt: skip
        segment_files(model, photos, tmp_path / "out", progress=False, precision="int8", calibration=photos)
    assert not list(cache.glob("*.tflite"))


def test_a_cpu_without_int8_units_gets_one_warning_line(monkeypatch, capsys):
    for features, has in (({"AVX2": True, "FMA3": True, "AVX512VNNI": False}, False), ({"AVX512VNNI": True}, True),
                          ({"ASIMD": True, "ASIMDDP": True}, True), ({}, None)):  # fmt: skip
        assert cpu_has_int8_units(features) is has, features
    assert cpu_has_int8_units() in (True, False)  # this CPU, as NumPy detects it
    monkeypatch.setattr(int8, "cpu_has_int8_units", lambda: False)
    with pytest.warns(UserWarning, match=r"may be slower than float on this CPU .*use precision='auto' instead"):
        int8.warn_if_slow_int8()

    @cli.reporting_errors
    def command(argv=None):
        warnings.warn("something to know", UserWarning)
        return 0

    assert command([]) == 0
    assert capsys.readouterr().err == "warning: something to know\n"


def test_calibration_takes_folders_files_and_arrays(monkeypatch):
    monkeypatch.setattr(int8, "CALIBRATION_SAMPLES", 32)  # the default, whatever the shipped model's tests set
    assert calibration_images() == street_images() == calibration_images(STREET_SAMPLE)
    assert calibration_images(str(PHOTO)) == [PHOTO]
    mixed = calibration_images([PHOTO, np.zeros((8, 8, 3), np.uint8)])
    assert mixed[0] == PHOTO and mixed[1].shape == (8, 8, 3)
    batch = np.arange(40, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    assert [int(image[0, 0, 0]) for image in calibration_images(batch)][:4] == [0, 1, 2, 3]  # 32 of 40, spread
    assert len(calibration_images(batch)) == int8.CALIBRATION_SAMPLES
    samples = list(calibration_samples(street_images(), SIZE, count=6))
    assert [s.shape for s in samples] == [(1, *SIZE, 3)] * 6 and all(s.dtype == np.uint8 for s in samples)
    assert [np.array_equal(a, b) for a, b in zip(samples, calibration_samples(street_images(), SIZE, count=6))] \
        == [True] * 6  # seeded  # fmt: skip


def test_calibration_takes_a_dataset_split(camvid_root):
    from fcnseg.datasets import read_split

    split = [sample.image_path for sample in read_split(camvid_root, "train", "camvid")]
    count = int8.CALIBRATION_SAMPLES
    assert calibration_images("camvid:train") == [split[i * len(split) // count] for i in range(count)]


@pytest.mark.parametrize("call, error, message", [
    (lambda: inference_model("model", "mixed_bfloat16"), ValueError,
     r"precision='mixed_bfloat16' is a Keras policy, chosen when loading: load_fcn\(path, precision="),
    (lambda: inference_model("model", None, "photos/"), ValueError, "calibration calibrates precision 'int8'"),
    (lambda: int8.int8_model(Int8Model.__new__(Int8Model), "photos/"), ValueError, "The model is int8 already"),
    (lambda: calibration_images(None, 21), ValueError, "needs calibration images for a model of 21 classes: pass"),
    (lambda: calibration_images("no/such/photo.jpg"), FileNotFoundError, "Calibration image not found: no/such"),
    (lambda: calibration_images(Path(__file__).parent / "data" / "README.md"), ValueError, "No calibration images"),
])  # fmt: skip
def test_wrong_arguments_say_what_works(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_segment_video_runs_int8_with_one_program_for_its_frames(cache, tiny, tmp_path):
    import cv2

    from fcnseg import segment_video

    model, images = tiny
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, SIZE[::-1])
    for image in images:
        writer.write(image)
    writer.release()
    report = segment_video(model, clip, tmp_path / "out", outputs=("masks",), batch_size=2, progress=False,
                           precision="int8", calibration=images)  # fmt: skip
    assert report["frames"] == len(images) and len(list((tmp_path / "out" / "masks" / "clip").glob("*.png"))) == 3
    assert len(list(cache.glob("*.tflite"))) == 1
