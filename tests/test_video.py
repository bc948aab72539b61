"""Tests for fcnseg.inference.video and the video side of fcnseg-predict: overlay videos at the input's size,
frame count and frame rate whose frames are `overlay(frame, predict_mask(model, frame))`, class
ids exactly, test-time options, unreadable and empty videos, kept outputs, an interrupted run;
and the photo side of prediction: EXIF orientation, the warning for float images in [0, 1].

The clips are written here with OpenCV from real CamVid test frames, shrunk to 120x90."""

import signal
import subprocess
import time
import warnings

import cv2
import keras
import numpy as np
import pytest
from PIL import Image, ImageOps

import fcnseg.models.fcn
from fcnseg.cli import main_evaluate, main_predict
from fcnseg.datasets import get_spec, load_image
from fcnseg.models.fcn import build_fcn, load_fcn
from fcnseg.inference.predict import predict_mask
from fcnseg.inference.segment import segment_files
from fcnseg.inference.video import open_video, segment_video
from fcnseg.figures.viz import colorize, overlay

import reference

SIZE = (90, 120)  # (height, width)
FPS = 7.5
COLOURS = get_spec("camvid").colormap
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def model():
    """A random-weight FCN-8s for CamVid's 11 classes (small fc6/fc7) whose maps hold several classes."""
    keras.utils.set_random_seed(0)
    return reference.spread_classes(build_fcn("fcn8s", num_classes=11, fc_units=16, backbone_weights=None))


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "fcn8s.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def frames(camvid_root):
    """Seven consecutive CamVid test frames at 120x90."""
    paths = sorted((camvid_root / "test").glob("0001TP_*.png"))[:7]
    return [cv2.resize(load_image(p), SIZE[::-1], interpolation=cv2.INTER_AREA) for p in paths]


def write_video(path, frames, fps=FPS, codec="mp4v"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, SIZE[::-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip(frames, tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clips") / "drive.mp4", frames)


def decode(path):
    """Every frame of a video, RGB, with its frame rate as OpenCV reads it."""
    with open_video(path) as (info, frames):
        return list(frames), info.fps


def assert_within_codec_error(decoded, expected, unlike):
    """`decoded` (a lossy video's frame) is `expected` up to the codec's error, and much closer to it
    than to `unlike` (what writing the wrong picture would give)."""
    error = np.abs(decoded.astype(np.int64) - expected).mean()
    assert error < 6 and error < np.abs(decoded.astype(np.int64) - unlike).mean() / 3, error


def test_overlay_colour_and_class_id_outputs_of_every_frame(model, clip, tmp_path):
    out = tmp_path / "out"
    report = segment_video(model, clip, out, outputs=("overlays", "colored", "masks"), batch_size=3, progress=False)
    assert report == {"written": [out / "overlays/drive.mp4", out / "colored/drive.mp4", out / "masks/drive"],
                      "kept": [], "frames": 7}  # fmt: skip
    inputs, _ = decode(clip)  # the frames as the model saw them
    overlays, overlay_fps = decode(out / "overlays/drive.mp4")
    colours, colour_fps = decode(out / "colored/drive.mp4")
    assert len(overlays) == len(colours) == len(inputs) == 7
    assert overlay_fps == colour_fps == pytest.approx(FPS, abs=1e-3)
    assert sorted(p.name for p in (out / "masks/drive").iterdir()) == [f"{k:06d}.png" for k in range(7)]
    masks = [np.asarray(Image.open(out / f"masks/drive/{k:06d}.png")) for k in range(7)]
    for k, frame in enumerate(inputs):
        assert overlays[k].shape == colours[k].shape == (*SIZE, 3) and masks[k].shape == SIZE
        mask = predict_mask(model, frame)
        np.testing.assert_array_equal(masks[k], mask)  # class ids exactly
        assert np.unique(mask).size >= 2
        assert_within_codec_error(overlays[k], overlay(frame, mask, colormap=COLOURS), frame)
        assert_within_codec_error(colours[k], colorize(mask, COLOURS), frame)
        nearest = np.abs(colours[k][:, :, None].astype(np.int64) - COLOURS).sum(-1).argmin(-1)
        assert (nearest == mask).mean() > 0.95  # the classes read back from the colours


def test_lossless_mask_video_and_test_time_options(model, clip, tmp_path):
    options = dict(input_size=(64, 96), scales=(1.0, 1.5), flip=True)
    report = segment_video(model, clip, tmp_path, outputs=("masks",), mask_format="mkv", batch_size=4, progress=False,
                           **options)  # fmt: skip
    assert report["written"] == [tmp_path / "masks/drive.mkv"] and report["frames"] == 7
    decoded, fps = decode(tmp_path / "masks/drive.mkv")
    assert len(decoded) == 7 and fps == pytest.approx(FPS, abs=1e-3)
    inputs, _ = decode(clip)
    for frame, picture in zip(inputs, decoded):
        np.testing.assert_array_equal(picture[..., 0], predict_mask(model, frame, **options))
    assert any(not np.array_equal(p[..., 0], predict_mask(model, f)) for f, p in zip(inputs, decoded))  # options show


def test_frames_over_the_pixel_budget_get_masks_of_their_size(model, clip, tmp_path):
    report = segment_video(model, clip, tmp_path, outputs=("masks",), max_pixels=2000, batch_size=4, progress=False)
    assert report["frames"] == 7
    inputs, _ = decode(clip)
    for k, frame in enumerate(inputs):  # 90x120 frames over a budget of 2000 pixels: downscaled by default
        mask = np.asarray(Image.open(tmp_path / f"masks/drive/{k:06d}.png"))
        np.testing.assert_array_equal(mask, predict_mask(model, frame, max_pixels=2000))


def test_cli_segments_videos_and_images_skips_bad_ones_and_keeps_outputs(model_file, clip, frames, tmp_path, capsys):
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "day.1.mp4").symlink_to(clip)  # a dot in the name: masks/day.1/ is still a folder
    Image.fromarray(frames[0]).save(folder / "still.png")
    (folder / "broken.mp4").write_bytes(clip.read_bytes()[:300])
    (folder / "notes.mkv").write_text("not a video")
    write_video(folder / "empty.avi", [])
    out = tmp_path / "out"
    argv = [str(model_file), str(folder), "--out", str(out), "--dataset", "camvid", "--quiet"]
    assert main_predict([*argv, "--video-outputs", "overlays", "masks", "--batch-size", "2"]) == 1
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    errors = [line for line in printed.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert any("broken.mp4" in e and "Cannot open video" in e for e in errors)
    assert any("notes.mkv" in e and "Cannot open video" in e for e in errors)
    assert any("empty.avi" in e and "has no frames" in e for e in errors)
    assert "5 file(s) written, 0 kept (exist; --overwrite replaces them), 3 input(s) failed" in printed.out
    # Images as before; the video at the policy `auto` picks, as --precision's default says.
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.parent.name != "day.1"} == {
        "masks/still.png", "colored/still.png", "overlays/still.png", "overlays/day.1.mp4"}
    inputs, _ = decode(clip)
    auto = load_fcn(model_file, precision="auto")
    for k, frame in enumerate(inputs):
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"masks/day.1/{k:06d}.png")), predict_mask(auto, frame))
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left

    video = out / "overlays/day.1.mp4"
    before = video.stat().st_mtime_ns
    assert main_predict([str(model_file), str(folder / "day.1.mp4"), "--out", str(out), "--quiet"]) == 0
    assert "0 file(s) written, 1 kept" in capsys.readouterr().out and video.stat().st_mtime_ns == before
    assert main_predict([str(model_file), str(folder / "day.1.mp4"), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert "1 file(s) written, 0 kept" in capsys.readouterr().out and video.stat().st_mtime_ns != before


def test_predict_and_evaluate_run_the_model_at_the_precision_asked(model_file, clip, tmp_path, monkeypatch):
    asked = []

    def spy(path, *, precision=None):
        asked.append(precision)
        return real(path, precision=precision)

    real = fcnseg.models.fcn.load_fcn
    monkeypatch.setattr(fcnseg.models.fcn, "load_fcn", spy)
    assert main_predict([str(model_file), str(clip), "--out", str(tmp_path), "--quiet"]) == 0
    assert main_predict([str(model_file), str(clip), "--out", str(tmp_path), "--quiet", "--precision", "float32"]) == 0
    # the model is loaded before the data is looked for; the missing data is then a one-line error
    assert main_evaluate([str(model_file), "--root", str(tmp_path / "none"), "--precision", "mixed_bfloat16"]) == 1
    assert asked == ["auto", "float32", "mixed_bfloat16"]


def test_an_interrupted_run_leaves_no_output_and_no_temporary_file(model_file, frames, tmp_path, script):
    long_clip = write_video(tmp_path / "long.mp4", frames * 30)  # 210 frames
    out = tmp_path / "out"
    command = [script("fcnseg-predict"), str(model_file), str(long_clip), "--out", str(out),
               "--video-outputs", "overlays", "masks", "--batch-size", "2", "--precision", "float32"]  # fmt: skip
    # SIGINT as Ctrl-C sends it, to a child that takes it as an interactive one would (xdist workers may ignore it).
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:  # fmt: skip
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not (out / "masks").is_dir() or not any((out / "masks").iterdir()):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=10)
                time.sleep(0.05)
            time.sleep(1.0)  # some frames written under the temporary names
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert [p for p in out.rglob("*") if p.is_file() or p.name.startswith(".")] == []


def rotated_photo(frame, path):
    """`frame` saved as a JPEG whose EXIF says "rotate 90° clockwise to view" (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(frame).save(path, quality=95, exif=exif)
    return path


def test_photos_are_segmented_as_viewers_show_them(model, frames, tmp_path):
    photo = rotated_photo(frames[0], tmp_path / "phone.jpg")
    with Image.open(photo) as picture:
        shown = np.asarray(ImageOps.exif_transpose(picture))
    assert shown.shape == (SIZE[1], SIZE[0], 3)  # shown upright: 90 wide, 120 high
    mask = predict_mask(model, photo)
    np.testing.assert_array_equal(mask, predict_mask(model, shown))
    report = segment_files(model, [photo], tmp_path / "out", progress=False)
    assert len(report["written"]) == 3 and not report["failed"]
    for kind in ("masks", "colored", "overlays"):
        assert Image.open(tmp_path / "out" / kind / "phone.png").size == (SIZE[0], SIZE[1])


def test_float_images_in_0_to_1_get_a_warning(model, frames):
    frame = frames[0]
    with pytest.warns(UserWarning, match=r"values in \[0, 1\] is taken as 0\.\.1 .*uint8"):
        mask = predict_mask(model, frame / 255.0)
    np.testing.assert_array_equal(mask, predict_mask(model, frame))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # uint8, and floats in 0..255, are unambiguous
        predict_mask(model, frame.astype(np.float32))
