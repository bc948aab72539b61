"""PASCAL VOC 2012 and SBD (fcnseg.datasets.voc, fcnseg.datasets.download): train_aug, SBD's .mat masks, download and CLI.

The tarballs are built here in the real layouts (VOCdevkit/VOC2012 with JPEGs and
palette PNGs; benchmark_RELEASE/dataset with SBD's GTcls .mat files written by
scipy.io.savemat) and served by test_download's loopback HTTP server.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import scipy.sparse

from fcnseg.datasets.archive import safe_extract
from fcnseg.cli import main_download
from fcnseg.datasets import available_splits, check_samples, load_mask, load_sample, read_split
from fcnseg.datasets.voc import SBD_ENV, SBD_TGZ, VOC2012_FILES, VOC2012_TAR, download_voc2012, train_aug_ids
from fcnseg.datasets.download import ChecksumError, file_md5
from fcnseg.datasets.pipeline import make_dataset
from test_download import _write_sample, server  # noqa: F401  (server is a fixture; it serves `tarballs` below)

VOC = {"train": ["2007_000032", "2008_000002"], "val": ["2007_000033", "2008_000003"]}
# SBD's own lists overlap VOC 2012's: 2008_000002 is VOC train, 2008_000003 and 2007_000033 VOC val.
SBD = {"train": ["2008_000002", "2008_000003", "2008_000010", "2008_000011"], "val": ["2007_000033", "2008_000020"]}
TRAIN_AUG = {"voc": ["2007_000032", "2008_000002"], "sbd": ["2008_000010", "2008_000011", "2008_000020"]}


def write_sbd_mat(path: Path, segmentation: np.ndarray) -> Path:
    """A class mask in SBD's layout: struct GTcls with Segmentation, Boundaries (20x1 cell of sparse
    matrices) and CategoriesPresent, compressed as in the real files."""
    boundaries = np.empty((20, 1), object)
    for k in range(20):
        edges = (segmentation == k + 1) & (np.roll(segmentation, 1, axis=1) != k + 1)
        boundaries[k, 0] = scipy.sparse.csc_matrix(edges.astype(np.float64))
    present = np.unique(segmentation[segmentation > 0]).astype(np.uint8).reshape(-1, 1)
    gt = {"Segmentation": segmentation.astype(np.uint8), "Boundaries": boundaries, "CategoriesPresent": present}
    scipy.io.savemat(path, {"GTcls": gt}, do_compression=True)
    return path


def sbd_segmentation(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 21, (6, 8), np.uint8)


def _write_sbd(sbd: Path, lists: dict[str, list[str]]) -> None:
    for sub in ("img", "cls", "inst"):
        (sbd / sub).mkdir(parents=True, exist_ok=True)
    for split, ids in lists.items():
        (sbd / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for i in ids:
            seed = int(i.replace("_", ""))
            image = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), np.uint8)
            cv2.imwrite(str(sbd / "img" / f"{i}.jpg"), image)
            write_sbd_mat(sbd / "cls" / f"{i}.mat", sbd_segmentation(seed))


@pytest.fixture(scope="module")
def tarballs(tmp_path_factory):
    """VOC 2012's trainval tarball and SBD's benchmark.tgz in one served folder: ``(folder, files)``."""
    base = tmp_path_factory.mktemp("voc2012_src")
    served = base / "served"
    served.mkdir()
    voc = base / "VOCdevkit" / "VOC2012"
    for sub in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
        (voc / sub).mkdir(parents=True)
    for split, ids in {**VOC, "trainval": VOC["train"] + VOC["val"]}.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for i in ids:
            _write_sample(voc, i, int(i.replace("_", "")))
    with tarfile.open(served / VOC2012_TAR, "w") as tar:
        tar.add(base / "VOCdevkit", arcname="VOCdevkit")
    _write_sbd(base / "benchmark_RELEASE" / "dataset", SBD)
    with tarfile.open(served / SBD_TGZ, "w:gz") as tar:
        tar.add(base / "benchmark_RELEASE", arcname="benchmark_RELEASE")
    files = {name: (name, file_md5(served / name)) for name in (VOC2012_TAR, SBD_TGZ)}
    return served, files


@pytest.fixture
def data(tarballs, tmp_path, monkeypatch):
    """Both tarballs unpacked into ``tmp_path/data`` as the download leaves them."""
    monkeypatch.delenv(SBD_ENV, raising=False)
    served, _ = tarballs
    root = tmp_path / "data"
    for name in (VOC2012_TAR, SBD_TGZ):
        safe_extract(served / name, root)
    return root


# --------------------------------------------------------------------------- train_aug


def test_train_aug_rule_unites_dedupes_and_leaves_out_val():
    from_voc, from_sbd = train_aug_ids(VOC["train"], VOC["val"], SBD["train"] + SBD["val"])
    assert (from_voc, from_sbd) == (TRAIN_AUG["voc"], TRAIN_AUG["sbd"])
    assert not set(from_voc) & set(from_sbd) and not (set(from_voc) | set(from_sbd)) & set(VOC["val"])


def test_train_aug_takes_voc_masks_for_voc_ids_and_sbd_masks_for_the_rest(data):
    samples = read_split(data, "train_aug", "voc2012")
    assert [s.id for s in samples] == sorted(TRAIN_AUG["voc"] + TRAIN_AUG["sbd"])
    sbd = data / "benchmark_RELEASE" / "dataset"
    voc = data / "VOCdevkit" / "VOC2012"
    for s in samples:
        if s.id in TRAIN_AUG["voc"]:
            expected = (voc / "JPEGImages" / f"{s.id}.jpg", voc / "SegmentationClass" / f"{s.id}.png")
        else:
            expected = (sbd / "img" / f"{s.id}.jpg", sbd / "cls" / f"{s.id}.mat")
        assert (s.image_path, s.mask_path) == expected
    check_samples(samples, "voc2012")
    assert [s.id for s in read_split(data, "val", "voc2012")] == VOC["val"]
    assert available_splits(data, "voc2012") == ["train", "train_aug", "trainval", "val"]
    # Any of the three roots a user may give.
    for root in (data / "VOCdevkit", data / "VOCdevkit" / "VOC2012"):
        assert read_split(root, "train_aug", "voc2012") == samples


def test_make_dataset_reads_both_mask_kinds_with_void_255(data):
    ds = make_dataset(data, "train_aug", dataset="voc2012", image_size=None, batch_size=1)
    masks = {s.id: m[0].numpy() for s, (_, m) in zip(read_split(data, "train_aug", "voc2012"), ds)}
    for i in TRAIN_AUG["sbd"]:  # SBD: the .mat's classes as they are, no void
        np.testing.assert_array_equal(masks[i], sbd_segmentation(int(i.replace("_", ""))))
    for i in TRAIN_AUG["voc"]:  # VOC: palette indices, its void border stays 255
        assert (masks[i][0] == 255).all() and masks[i][1:].max() <= 20


def test_sbd_mask_is_read_from_gtcls_segmentation(tmp_path):
    segmentation = sbd_segmentation(1)
    path = write_sbd_mat(tmp_path / "2008_000001.mat", segmentation)
    mask = load_mask(path, "voc2012")
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, segmentation)


def test_bad_sbd_files_are_named(tmp_path):
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"not a MATLAB file at all")
    with pytest.raises(ValueError, match="Cannot read SBD mask .*garbage.mat"):
        load_mask(garbage, "voc2012")
    inst = tmp_path / "inst.mat"
    scipy.io.savemat(inst, {"GTinst": {"Segmentation": sbd_segmentation(2)}})
    with pytest.raises(ValueError, match=r"inst.mat is not an SBD class mask.*\['GTinst'\].*cls/"):
        load_mask(inst, "voc2012")
    out_of_range = write_sbd_mat(tmp_path / "classes.mat", np.full((6, 8), 30, np.uint8))
    with pytest.raises(ValueError, match=r"classes.mat has values \[30\] outside the 21 classes"):
        load_mask(out_of_range, "voc2012")


def test_sbd_mask_of_another_size_than_its_image_is_caught(data):
    sbd = data / "benchmark_RELEASE" / "dataset"
    write_sbd_mat(sbd / "cls" / "2008_000011.mat", np.zeros((5, 8), np.uint8))
    with pytest.raises(ValueError, match="2008_000011.mat is 8x5 but its image .*2008_000011.jpg is 8x6"):
        check_samples(read_split(data, "train_aug", "voc2012"), "voc2012")


def test_train_aug_without_sbd_says_how_to_get_it(data, monkeypatch):
    shutil.rmtree(data / "benchmark_RELEASE")
    assert available_splits(data, "voc2012") == ["train", "trainval", "val"]
    with pytest.raises(FileNotFoundError, match="train_aug' needs SBD.*fcnseg-download --dataset voc2012 --sbd"):
        read_split(data, "train_aug", "voc2012")
    monkeypatch.setenv(SBD_ENV, str(data / "nowhere"))
    with pytest.raises(FileNotFoundError, match=f"{SBD_ENV}=.*nowhere holds no SBD"):
        read_split(data, "train_aug", "voc2012")
    with pytest.raises(FileNotFoundError, match="fcnseg.datasets.voc.download_voc2012.*VOC2012_ROOT"):
        read_split(data.parent, "val", "voc2012")  # a folder without VOCdevkit/VOC2012


def test_sbd_root_env_finds_sbd_elsewhere(data, tmp_path, monkeypatch):
    elsewhere = tmp_path / "sbd_copy"
    (data / "benchmark_RELEASE").rename(elsewhere)
    monkeypatch.setenv(SBD_ENV, str(elsewhere))  # the folder above dataset/ will do
    assert len(read_split(data, "train_aug", "voc2012")) == 5


# --------------------------------------------------------------------------- download


def test_download_voc2012_with_sbd_end_to_end(server, tarballs, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.delenv(SBD_ENV, raising=False)
    _, files = tarballs
    root = tmp_path / "data"
    voc = download_voc2012(root, sbd=True, base_url=server.url, files=files, progress=False)
    assert voc == root / "VOCdevkit" / "VOC2012"
    assert [p for p, _ in server.requests] == ["/" + VOC2012_TAR, "/" + SBD_TGZ]
    assert len(read_split(root, "train_aug", "voc2012")) == 5
    image, mask = load_sample(read_split(root, "train_aug", "voc2012")[-1], "voc2012")
    assert image.shape == (6, 8, 3) and mask.shape == (6, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written outside root

    # Present data is not downloaded again; a missing SBD mask brings back SBD's tarball only.
    server.requests.clear()
    download_voc2012(root, sbd=True, base_url=server.url, files=files)
    assert server.requests == [] and "nothing to download" in capsys.readouterr().err
    (root / "downloads" / SBD_TGZ).unlink()
    (root / "benchmark_RELEASE" / "dataset" / "cls" / "2008_000020.mat").unlink()
    download_voc2012(root, sbd=True, base_url=server.url, files=files, progress=False)
    assert server.requests == [("/" + SBD_TGZ, None)]


def test_download_voc2012_bad_checksum_leaves_nothing(server, tarballs, tmp_path):  # noqa: F811
    root = tmp_path / "data"
    bad = {VOC2012_TAR: (VOC2012_TAR, "0" * 32)}
    with pytest.raises(ChecksumError, match="removed"):
        download_voc2012(root, base_url=server.url, files=bad, progress=False)
    assert not (root / "VOCdevkit").exists() and not (root / "downloads" / VOC2012_TAR).exists()


def test_official_files_and_mirror_urls():
    from fcnseg.datasets.download import source_url

    assert VOC2012_FILES[VOC2012_TAR] == (
        "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "6cd6e144f989b92b3379bac3b3de84fd",
    )
    assert VOC2012_FILES[SBD_TGZ][1] == "82b4d87ceb2ed10f6038a1cba92111cb"
    official = VOC2012_FILES[SBD_TGZ][0]
    assert source_url(official, None, {official}) == official
    assert source_url(official, "file:///m/", {official}) == "file:///m/" + SBD_TGZ
    assert source_url(SBD_TGZ, "http://127.0.0.1:8") == "http://127.0.0.1:8/" + SBD_TGZ
    assert source_url("https://x.org/b.tgz", "file:///m") == "https://x.org/b.tgz"
    with pytest.raises(ValueError, match="bare file name: give base_url"):
        source_url(SBD_TGZ, None)


def test_cli_voc2012_sbd_with_data_present(data, server, capsys):  # noqa: F811
    argv = ["--dataset", "voc2012", "--sbd", "--root", str(data), "--quiet", "--base-url", server.url]
    assert main_download(argv) == 0
    assert capsys.readouterr().out.strip() == str(data / "VOCdevkit" / "VOC2012")
    assert server.requests == []
    assert main_download(["--sbd", "--root", str(data)]) == 1  # SBD without VOC 2012
    assert "Unknown VOC 2007 split(s) ['train_aug']" in capsys.readouterr().err


def test_train_cli_takes_train_aug_and_passes_fc_options_to_build_fcn(data, tmp_path):
    from fcnseg.cli import run_train as run

    argv = ["--dataset", "voc2012", "--root", str(data), "--train-split", "train_aug", "--precision", "float32",
            "--image-size", "32", "32", "--batch-size", "1", "--backbone-weights", "none",
            "--fc-weights", "imagenet", "--fc-kernel-size", "3", "--out", str(tmp_path / "run")]  # fmt: skip
    with pytest.raises(ValueError, match="pass fc_kernel_size=7"):  # build_fcn got both options
        run(argv)
