"""Tests of fcnseg/datasets/download.py and VOC 2007's download (fcnseg.datasets.voc) against a loopback
HTTP server and tiny VOC-like tarballs."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import subprocess
import tarfile
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fcnseg.datasets import download
from fcnseg.cli import main_download
from fcnseg.datasets import load_mask, load_sample, read_split
from fcnseg.datasets.archive import UnsafeArchiveError, safe_extract
from fcnseg.datasets.voc import TEST_TAR, TRAINVAL_TAR, VOC2007_FILES, VOC2007_URL, download_voc2007
from fcnseg.datasets.download import ChecksumError, download_file, file_md5

SPLITS = {"train": ["000032", "000039"], "val": ["000033"], "test": ["000001"]}


# --------------------------------------------------------------------------- fixtures


def _write_sample(voc: Path, sample_id: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (6, 8, 3), np.uint8)
    ok, jpg = cv2.imencode(".jpg", image)
    assert ok
    (voc / "JPEGImages" / f"{sample_id}.jpg").write_bytes(jpg.tobytes())
    mask = rng.integers(0, 21, (6, 8), np.uint8)
    mask[0, :] = 255  # void border, as in VOC
    im = Image.fromarray(mask, mode="P")
    im.putpalette(list(range(256)) * 3)
    im.save(voc / "SegmentationClass" / f"{sample_id}.png")


def _make_voc_tar(folder: Path, tar_path: Path, lists: dict[str, list[str]]) -> Path:
    """A tarball holding ``VOCdevkit/VOC2007`` with the given split lists and their files."""
    voc = folder / "VOCdevkit" / "VOC2007"
    for sub in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    for split, ids in lists.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for i in ids:
            _write_sample(voc, i, int(i))
    with tarfile.open(tar_path, "w") as tar:
        tar.add(folder / "VOCdevkit", arcname="VOCdevkit")
    return tar_path


@pytest.fixture(scope="module")
def tarballs(tmp_path_factory):
    """The two VOC tarballs in one served folder: ``(folder, {name: (name, md5)})``."""
    base = tmp_path_factory.mktemp("voc_src")
    served = base / "served"
    served.mkdir()
    train, val = SPLITS["train"], SPLITS["val"]
    trainval = {"train": train, "val": val, "trainval": train + val}
    _make_voc_tar(base / "trainval", served / TRAINVAL_TAR, trainval)
    _make_voc_tar(base / "test", served / TEST_TAR, {"test": SPLITS["test"]})
    files = {name: (name, file_md5(served / name)) for name in (TRAINVAL_TAR, TEST_TAR)}
    return served, files


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-``; can cut a response short."""

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not srv.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_after is not None:  # simulate a dropped connection, once
            body, srv.cut_after = body[: srv.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tarballs, monkeypatch):
    """A loopback HTTP server on 127.0.0.1 serving the tarballs; yields it with ``.url``."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served, _ = tarballs
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {p.name: p.read_bytes() for p in served.iterdir()}
    srv.requests, srv.cut_after, srv.ignore_range = [], None, False
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    thread = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- download_file


def test_download_file_verifies_md5_and_reports_progress(server, tmp_path, capsys):
    data = server.files[TEST_TAR]
    url, dest = server.url + TEST_TAR, tmp_path / "a" / TEST_TAR
    dest = download_file(url, dest, md5=_md5(data), chunk_size=4096)
    assert dest == tmp_path / "a" / TEST_TAR
    assert dest.read_bytes() == data
    assert not dest.with_name(dest.name + ".part").exists()
    printed = capsys.readouterr()
    assert "Downloading" in printed.err
    assert "\r" in printed.out and f"{len(data)}/{len(data)}" in printed.out  # the bar reached the full size

    quiet = download_file(server.url + TEST_TAR, tmp_path / "b.tar", progress=False)
    assert quiet.read_bytes() == data
    assert capsys.readouterr() == ("", "")


def test_checksum_mismatch_removes_file_and_raises(server, tmp_path):
    dest = tmp_path / TEST_TAR
    with pytest.raises(ChecksumError) as info:
        download_file(server.url + TEST_TAR, dest, md5="0" * 32, progress=False)
    message = str(info.value)
    assert "0" * 32 in message and _md5(server.files[TEST_TAR]) in message
    assert "removed" in message and TEST_TAR in message
    assert isinstance(info.value, ValueError)
    assert not dest.exists()
    assert not dest.with_name(dest.name + ".part").exists()


def test_existing_good_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / TEST_TAR
    md5 = _md5(server.files[TEST_TAR])
    download_file(server.url + TEST_TAR, dest, md5=md5, progress=False)
    server.requests.clear()
    assert download_file(server.url + TEST_TAR, dest, md5=md5, progress=False) == dest
    assert server.requests == []


def test_existing_bad_file_is_replaced(server, tmp_path):
    dest = tmp_path / TEST_TAR
    dest.write_bytes(b"not the tarball")
    md5 = _md5(server.files[TEST_TAR])
    download_file(server.url + TEST_TAR, dest, md5=md5, progress=False)
    assert file_md5(dest) == md5
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = server.files[TRAINVAL_TAR]
    dest, part = tmp_path / TRAINVAL_TAR, tmp_path / (TRAINVAL_TAR + ".part")
    server.cut_after = 1000
    with pytest.raises(ConnectionError) as info:
        download_file(server.url + TRAINVAL_TAR, dest, md5=_md5(data), progress=False, timeout=5)
    assert server.url + TRAINVAL_TAR in str(info.value)
    assert str(part) in str(info.value) and "resume" in str(info.value)
    assert part.stat().st_size == 1000 and not dest.exists()

    download_file(server.url + TRAINVAL_TAR, dest, md5=_md5(data), progress=False, timeout=5)
    assert server.requests[-1] == ("/" + TRAINVAL_TAR, "bytes=1000-")
    assert file_md5(dest) == _md5(data)
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = server.files[TRAINVAL_TAR]
    dest = tmp_path / TRAINVAL_TAR
    dest.with_name(dest.name + ".part").write_bytes(b"x" * 500)  # garbage prefix
    server.ignore_range = True
    download_file(server.url + TRAINVAL_TAR, dest, md5=_md5(data), progress=False)
    assert server.requests[-1][1] == "bytes=500-"
    assert dest.read_bytes() == data


def test_stale_part_longer_than_file_restarts(server, tmp_path):
    data = server.files[TEST_TAR]
    dest = tmp_path / TEST_TAR
    dest.with_name(dest.name + ".part").write_bytes(b"x" * (len(data) + 10))  # server answers 416
    download_file(server.url + TEST_TAR, dest, md5=_md5(data), progress=False)
    assert dest.read_bytes() == data


def test_http_error_names_the_url(server, tmp_path):
    with pytest.raises(ConnectionError, match=re.escape(server.url + "missing.tar")):
        download_file(server.url + "missing.tar", tmp_path / "missing.tar", progress=False)
    assert not (tmp_path / "missing.tar").exists()


def test_file_url(tarballs, tmp_path):
    served, files = tarballs
    dest = download_file((served / TEST_TAR).as_uri(), tmp_path / TEST_TAR, md5=files[TEST_TAR][1])
    assert file_md5(dest) == files[TEST_TAR][1]
    # A leftover .part is simply overwritten (no Range for file://).
    dest.unlink()
    (tmp_path / (TEST_TAR + ".part")).write_bytes(b"junk")
    download_file((served / TEST_TAR).as_uri(), dest, md5=files[TEST_TAR][1], progress=False)
    assert file_md5(dest) == files[TEST_TAR][1]


# --------------------------------------------------------------------------- download_voc2007


def test_download_voc2007_end_to_end(server, tarballs, tmp_path):
    _, files = tarballs
    root = tmp_path / "data"
    voc = download_voc2007(root, base_url=server.url, files=files, progress=False)
    assert voc == root / "VOCdevkit" / "VOC2007"
    assert sorted(p for p, _ in server.requests) == ["/" + TEST_TAR, "/" + TRAINVAL_TAR]

    train = read_split(root, "train")
    assert [s.id for s in train] == SPLITS["train"]
    assert len(read_split(root, "trainval")) == 3 and len(read_split(root, "test")) == 1
    image, mask = load_sample(train[0])
    assert image.shape == (6, 8, 3) and mask.shape == (6, 8)
    assert set(np.unique(load_mask(train[1].mask_path))) <= set(range(21)) | {255}
    for name, (_, md5) in files.items():
        assert file_md5(root / "downloads" / name) == md5
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # nothing written outside root


def test_present_data_is_not_downloaded_again(server, tarballs, tmp_path, capsys):
    _, files = tarballs
    root = tmp_path / "data"
    download_voc2007(root, base_url=server.url, files=files, progress=False)
    for tar in (root / "downloads").iterdir():
        tar.unlink()  # the data itself is what counts
    server.requests.clear()
    download_voc2007(root, base_url=server.url, files=files, progress=False)
    download_voc2007(root, splits="train", base_url=server.url, files=files)
    assert server.requests == []
    assert "nothing to download" in capsys.readouterr().err

    # A missing mask makes only the tarball holding it come again.
    (root / "VOCdevkit/VOC2007/SegmentationClass" / f"{SPLITS['val'][0]}.png").unlink()
    download_voc2007(root, base_url=server.url, files=files, progress=False)
    assert server.requests == [("/" + TRAINVAL_TAR, None)]
    assert len(read_split(root, "val")) == 1


def test_download_voc2007_from_file_url_folder(tarballs, tmp_path):
    served, files = tarballs
    root = tmp_path / "data"
    voc = download_voc2007(
        root, splits=("test",), base_url=served.as_uri(), files=files, progress=False
    )
    assert [s.id for s in read_split(voc, "test")] == SPLITS["test"]
    assert not (root / "downloads" / TRAINVAL_TAR).exists()  # only what the split needs


def test_download_voc2007_bad_checksum_and_unknown_split(server, tarballs, tmp_path):
    root = tmp_path / "data"
    bad = {TEST_TAR: (TEST_TAR, "f" * 32)}
    with pytest.raises(ChecksumError, match="removed"):
        download_voc2007(root, splits="test", base_url=server.url, files=bad, progress=False)
    assert not (root / "downloads" / TEST_TAR).exists()
    assert not (root / "VOCdevkit").exists()
    with pytest.raises(ValueError, match="Unknown VOC 2007 split"):
        download_voc2007(root, splits=("training",), progress=False)


def test_cli_with_data_present(server, tarballs, tmp_path, capsys):
    _, files = tarballs
    root = tmp_path / "data"
    download_voc2007(root, base_url=server.url, files=files, progress=False)
    server.requests.clear()
    assert main_download(["--root", str(root), "--quiet", "--base-url", server.url]) == 0
    assert capsys.readouterr().out.strip() == str(root / "VOCdevkit" / "VOC2007")
    assert server.requests == []


def test_cli_splits_fetch_only_their_tarball_and_a_failure_exits_1(server, tarballs, tmp_path, capsys, script):
    _, files = tarballs
    root = tmp_path / "data"
    download_voc2007(root, splits="test", base_url=server.url, files=files, progress=False)
    server.requests.clear()
    voc = root / "VOCdevkit" / "VOC2007"
    assert main_download(["--root", str(root), "--splits", "test", "--base-url", server.url, "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(voc) and server.requests == []  # present: nothing fetched

    # train and val need the trainval tarball only; this server's is not the official file (md5), so
    # `fcnseg-download` stops with exit status 1 and a message, keeping nothing it downloaded.
    done = subprocess.run([script("fcnseg-download"), "--root", str(root), "--splits", "train", "val",
                           "--base-url", server.url, "--quiet"], capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 1, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "removed" in error[0] and TRAINVAL_TAR in error[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert [path for path, _ in server.requests] == ["/" + TRAINVAL_TAR]
    assert not (root / "downloads" / TRAINVAL_TAR).exists()
    assert [s.id for s in read_split(root, "test")] == SPLITS["test"]  # what was there stays


def test_source_url():
    official = VOC2007_FILES[TEST_TAR][0]
    assert download.source_url(official, None, {official}) == VOC2007_URL + TEST_TAR
    assert download.source_url(official, "file:///m/", {official}) == "file:///m/" + TEST_TAR
    assert download.source_url(TEST_TAR, "http://127.0.0.1:8/") == "http://127.0.0.1:8/" + TEST_TAR
    assert download.source_url("https://x.org/a.tar", "file:///m", {official}) == "https://x.org/a.tar"


# --------------------------------------------------------------------------- safe_extract


def _tar_with(tmp_path: Path, *members: tarfile.TarInfo, name: str = "bad.tar") -> Path:
    """A tarball holding a harmless file first, then `members` (files get 3 bytes)."""
    path = tmp_path / name
    with tarfile.open(path, "w") as tar:
        ok = tarfile.TarInfo("VOCdevkit/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        for m in members:
            if m.isreg():
                m.size = 3
                tar.addfile(m, io.BytesIO(b"bad"))
            else:
                tar.addfile(m)
    return path


def _info(name: str, type=tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = type, linkname
    return info


@pytest.mark.parametrize(
    "member, reason",
    [
        (_info("../evil"), "outside"),
        (_info("VOCdevkit/../../evil"), "outside"),
        (_info("/tmp/evil"), "absolute"),
        (_info("VOCdevkit/link", tarfile.SYMTYPE, "../../outside"), "symlink"),
        (_info("VOCdevkit/link", tarfile.SYMTYPE, "/etc"), "symlink"),
        (_info("VOCdevkit/hard", tarfile.LNKTYPE, "../outside/x"), "hard link"),
        (_info("VOCdevkit/tty", tarfile.CHRTYPE), "device"),
        (_info("VOCdevkit/fifo", tarfile.FIFOTYPE), "device"),
    ],
)
def test_unsafe_members_are_refused_before_extracting(tmp_path, member, reason):
    tar_path = _tar_with(tmp_path, member)
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match=reason) as info:
        safe_extract(tar_path, dest)
    assert repr(member.name) in str(info.value) and str(tar_path) in str(info.value)
    assert list(dest.iterdir()) == []  # not even the harmless first member
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def test_absolute_member_inside_tmp_is_not_written(tmp_path):
    target = tmp_path / "abs" / "evil"
    with pytest.raises(UnsafeArchiveError, match="absolute"):
        safe_extract(_tar_with(tmp_path, _info(str(target))), tmp_path / "dest")
    assert not target.exists()


def test_writing_through_an_archive_symlink_is_refused(tmp_path):
    # "d" points inside (to "."), "d/.." would then be the parent of dest.
    members = (
        _info("d", tarfile.SYMTYPE, "."),
        _info("e", tarfile.SYMTYPE, "d/.."),
        _info("e/evil"),
    )
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchiveError, match="'e'"):
        safe_extract(_tar_with(tmp_path, *members), dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "evil").exists()


def test_safe_members_and_inner_symlinks_extract(tmp_path):
    members = (_info("VOCdevkit/a.txt"), _info("VOCdevkit/b", tarfile.SYMTYPE, "a.txt"))
    dest = safe_extract(_tar_with(tmp_path, *members, name="good.tar"), tmp_path / "dest")
    assert (dest / "VOCdevkit" / "ok.txt").read_bytes() == b"ok"
    assert (dest / "VOCdevkit" / "b").read_bytes() == b"bad"


def test_truncated_or_corrupt_tarball_is_reported(tarballs, tmp_path):
    served, _ = tarballs
    data = (served / TRAINVAL_TAR).read_bytes()
    with tarfile.open(served / TRAINVAL_TAR) as tar:
        last_header = tar.getmembers()[-1].offset  # a cut right before it loses a whole member
    for cut in (len(data) // 2, 700, last_header):
        truncated = tmp_path / f"truncated{cut}.tar"
        truncated.write_bytes(data[:cut])
        dest = tmp_path / f"dest{cut}"
        with pytest.raises(ValueError, match="corrupt or truncated") as info:
            safe_extract(truncated, dest)
        assert str(truncated) in str(info.value)
        assert list(dest.iterdir()) == []
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tarball" * 100)
    with pytest.raises(ValueError, match=re.escape(str(garbage))):
        safe_extract(garbage, tmp_path / "dest_garbage")
