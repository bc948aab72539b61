"""Find a usable dataset folder for a run: the given or default root when the splits
needed are complete, else what the dataset's spec offers: its download
(``DatasetSpec.download``) or its bundled sample (``DatasetSpec.sample_root``).

>>> root, smoke, why = find_data(get_spec("voc2007"), None, ["train", "val"], quick=True, download=False)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from fcnseg.datasets import default_root, resolve_root


def find_data(spec, data_root, splits, *, quick, download, verbose):
    """``(root, smoke_test, why)``: the first usable folder for `splits` of dataset `spec`.

    - ``data_root`` (or the spec's variable such as ``VOC_ROOT``, or its folder under
      ``data/``) when every file the splits list exists;
    - else, for a dataset with a bundled sample, in quick mode the sample;
    - else, with `download` and a dataset that has one, a download next to ``data_root``
      (or into ``data/``), and the sample (if any) if that fails (offline);
    - else `FileNotFoundError` saying what to do (for your own data: the folders needed).

    ``smoke_test`` is true on the sample and in quick mode; ``why`` says why the sample was used.
    """
    candidate = Path(data_root).expanduser() if data_root is not None else default_root(spec)
    problem = spec.problem(candidate, splits)
    problem = problem and problem.rstrip(".")
    if problem is None:
        return _found(spec, candidate, quick, "data_root is the sample")
    sample = spec.sample_root and spec.sample_root.resolve()
    if quick and sample:
        return sample, True, f"quick mode and no usable {spec.name} ({problem})"
    if not (download and spec.download):
        raise FileNotFoundError(_not_found(spec, problem, splits))
    target = _download_dir(candidate, spec)
    if verbose:
        print(f"{spec.name} is not usable ({problem}); downloading {sorted(set(splits))} into {target} ...")
    try:
        folder = spec.download(target, splits=sorted(set(splits)))
    except (OSError, ValueError) as e:  # offline, checksum, broken tarball
        if not sample:
            raise
        return sample, True, f"no usable {spec.name} ({problem}) and the download failed: {e}"
    problem = spec.problem(folder, splits)
    if problem is not None:
        if not sample:
            raise FileNotFoundError(f"The downloaded {spec.name} is not usable: {problem}")
        return sample, True, f"the downloaded {spec.name} is not usable: {problem.rstrip('.')}"
    return _found(spec, folder, False, "the download gave the sample")


def _found(spec, folder, quick, why):
    """``(root, smoke_test, why)`` for a usable `folder`: a smoke test on the sample or in quick mode."""
    root = resolve_root(folder, spec).resolve()
    return root, quick or (spec.sample_root is not None and root == spec.sample_root.resolve()), why


def _not_found(spec, problem: str, splits) -> str:
    """What to do when `spec`'s data is missing: the folders it needs, and what else it offers."""
    where = f"Set {spec.root_env} (or data_root)" if spec.root_env else "Pass data_root=... (--root)"
    folders = ", ".join(dict.fromkeys(f"{spec.image_dir}/, {spec.mask_dir}/".format(split=split) for split in splits))
    offers = [*(["use download=True to fetch it"] if spec.download else []),
              *(["quick=True for a smoke test on the bundled sample"] if spec.sample_root else [])]  # fmt: skip
    offered = f", or {' or '.join(offers)}" if offers else ""
    return f"{spec.name} not found: {problem}. {where} to the folder holding {folders}{offered}."


def _download_dir(candidate: Path, spec) -> Path:
    """Where to download so that the dataset lands at `candidate`: the folder above the layout's
    ``folder`` (``VOCdevkit/VOC2007``, where its download unpacks it) when `candidate` ends with it."""
    folder = Path(spec.layout.folder or ".")
    if folder.parts and candidate.parts[-len(folder.parts):] == folder.parts:
        return candidate.parents[len(folder.parts) - 1]
    return candidate


def smoke_banner(spec, reason: str = "") -> str:
    """The loud warning printed when a run uses `spec`'s bundled sample."""
    line = "!" * 78
    count = len(spec.samples_in(spec.sample_root.resolve(), spec.splits_in(spec.sample_root.resolve())[0]))
    text = [
        line,
        f"!!  SMOKE TEST ON {'ONE IMAGE' if count == 1 else f'{count} IMAGES'}: the bundled sample of {spec.name}",
        "!!  It trains and scores on the sample alone. Every number and figure only",
        "!!  shows that the code runs; none of it measures FCN. For real results get",
        f"!!  {spec.name} (download=True, or set {spec.root_env}) and quick=False.",
    ]
    return "\n".join([*text, *([f"!!  Why: {reason}"] if reason else []), line])
