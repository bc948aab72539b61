"""Find a usable dataset folder for a run: the given or default root when the splits
needed are complete, else (VOC 2007) a download or the one-image sample.

>>> root, smoke, why = find_data(get_spec("voc2007"), None, ["train", "val"], quick=True, download=False)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from fcnseg import download as _download
from fcnseg.datasets import SAMPLE_ROOT, data_problem, default_root, resolve_root


def find_data(spec, data_root, splits, *, quick, download, verbose):
    """``(root, smoke_test, why)``: the first usable folder for `splits` of dataset `spec`.

    - ``data_root`` (or ``VOC_ROOT`` / ``CAMVID_ROOT``, or ``data/``) when every
      file the splits list exists;
    - VOC 2007 missing or incomplete: in quick mode the sample
      (`fcnseg.datasets.SAMPLE_ROOT`); else, with `download`, a download next to
      ``data_root`` (or into ``data/``), and the sample if that fails (offline);
      without `download`, `FileNotFoundError` saying what to do;
    - CamVid or your own data missing: `FileNotFoundError` naming the folders needed.

    ``smoke_test`` is true on the sample and in quick mode; ``why`` says why the sample was used.
    """
    candidate = Path(data_root).expanduser() if data_root is not None else default_root(spec)
    problem = data_problem(candidate, spec, splits)
    problem = problem and problem.rstrip(".")
    if problem is None:
        root = resolve_root(candidate, spec).resolve()
        return root, root == SAMPLE_ROOT.resolve() or quick, "data_root is the sample"
    if spec.name != "voc2007":
        folders = ", ".join(f"{spec.image_dir}/, {spec.mask_dir}/".format(split=split) for split in splits)
        env = f"Set {spec.root_env} to" if spec.root_env else "Pass data_root=... (--root)"
        raise FileNotFoundError(f"{spec.name} not found: {problem}. {env} the folder holding {folders}.")
    if quick:
        return SAMPLE_ROOT.resolve(), True, f"quick mode and no usable VOC 2007 ({problem})"
    if not download:
        raise FileNotFoundError(
            f"PASCAL VOC 2007 not found: {problem}. Set VOC_ROOT (or data_root) to "
            ".../VOCdevkit/VOC2007, use download=True to fetch it (about 900 MB), "
            "or quick=True for a smoke test on the bundled sample."
        )
    target = _download_dir(candidate)
    needed = sorted({s for s in splits if s in _download.VOC2007_SPLITS})
    if verbose:
        print(f"VOC 2007 is not usable ({problem}); downloading {needed} into {target} ...")
    try:
        voc = _download.download_voc2007(target, splits=needed or ("trainval",))
    except (OSError, ValueError) as e:  # offline, checksum, broken tarball
        return SAMPLE_ROOT.resolve(), True, f"no usable VOC 2007 ({problem}) and the download failed: {e}"
    problem = data_problem(voc, spec, splits)
    if problem is not None:
        problem = problem.rstrip(".")
        return SAMPLE_ROOT.resolve(), True, f"the downloaded VOC 2007 is not usable: {problem}"
    root = resolve_root(voc, spec).resolve()
    return root, root == SAMPLE_ROOT.resolve(), "the download gave the sample"


def _download_dir(candidate: Path) -> Path:
    """Where to download VOC so that it lands at `candidate` (``<dir>/VOCdevkit/VOC2007``)."""
    if candidate.name == "VOC2007" and candidate.parent.name == "VOCdevkit":
        return candidate.parent.parent
    return candidate


def smoke_banner(reason: str = "") -> str:
    """The loud warning printed when the run uses the one-image sample."""
    line = "!" * 78
    text = [
        line,
        "!!  SMOKE TEST ON ONE IMAGE: the bundled sample (VOC 2007 test image 001763)",
        "!!  It trains and scores on that single image. Every number and figure only",
        "!!  shows that the code runs; none of it measures FCN. For real results get",
        "!!  PASCAL VOC 2007 (download=True, or set VOC_ROOT) and quick=False.",
    ]
    return "\n".join([*text, *([f"!!  Why: {reason}"] if reason else []), line])
