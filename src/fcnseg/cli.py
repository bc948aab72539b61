"""The command lines: ``fcnseg-train``, ``fcnseg-evaluate``, ``fcnseg-predict``,
``fcnseg-export`` and ``fcnseg-download``.

Parsing imports no TensorFlow, so ``--help`` and argument errors answer at once;
TensorFlow is imported (without its start-up noise) only to do the work. A user's
error (a missing dataset, a wrong path) ends a command with one line, ``error: ...``,
and exit status 1; ``--debug`` shows the traceback instead.

    fcnseg-train --recipe camvid --out runs/camvid_fcn8s            # the best CamVid recipe
    fcnseg-train --recipe camvid --epochs 40 --fc-units 4096        # any single value changed
    fcnseg-train --dataset folder --root data/cells --classes background cell --mask-values 0:0 255:1
    fcnseg-evaluate runs/camvid_fcn8s/best.keras --dataset camvid --split test --scales 1 1.25 --flip
    fcnseg-predict runs/camvid_fcn8s/best.keras photos/ drive.mp4 --out segmented
    fcnseg-export runs/camvid_fcn8s/best.keras --format onnx --out fcn8s.onnx
    fcnseg-download --root data

``python -m fcnseg.cli train ...`` (or ``evaluate``, ...) runs the same commands.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import warnings

from fcnseg import options, recipes
from fcnseg.checks import EXPORT_FORMATS, MASK_FORMATS, QUANTIZATIONS, STRATEGIES, VIDEO_OUTPUTS
from fcnseg.datasets import DATASETS
from fcnseg.files import portable_path

MODEL_HELP = "a saved model (.keras, e.g. a run's best.keras) or a shipped model's name (e.g. camvid-fcn8s)"
# A user's error: a missing or bad file or folder, a value that cannot work, a failed download,
# training that diverged, a package to install. Anything else is a bug and shows its traceback.
USER_ERRORS = (OSError, ValueError, ArithmeticError, ImportError)
DATA = ("dataset", "classes", "mask_values")  # the options that say which dataset, yours included


def root_help() -> str:
    """``--root``'s help: the datasets' variables, from the catalog."""
    names = " / ".join(spec.root_env for spec in DATASETS.values() if spec.root_env)
    return f"dataset folder (default: {names}, else its folder under data/)"


def reporting_errors(main):
    """A command's ``main``: a user's error ends it with one line, ``error: <what to do>``, and
    exit status 1; with ``--debug`` it raises instead (the traceback shows)."""

    @functools.wraps(main)
    def command(argv=None) -> int:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _one_line_warning
                return main(argv)
        except USER_ERRORS as e:
            if "--debug" in (sys.argv[1:] if argv is None else argv):
                raise
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            return 1

    return command


def _one_line_warning(message, category, *where) -> None:
    """Show a warning as one line, ``warning: <message>``: a command's user needs no source line."""
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def add_prediction_flags(p: argparse.ArgumentParser, which=()) -> None:
    """``--input-size``, ``--scales``, ``--flip`` (how `fcnseg.inference.predict.predict_logits` runs the model),
    ``--precision`` and ``--calibration`` (the policy `fcnseg.models.fcn.load_fcn` loads the model at, or int8),
    and the `fcnseg.options.PredictOptions` named in `which`."""
    options.add_flags(p, (*options.TEST_TIME, *which, "precision", "calibration"), declared=options.PredictOptions)


def _parse_prediction(p: argparse.ArgumentParser, argv) -> tuple:
    """``(args, PredictOptions)``: `p`'s arguments, and its prediction flags checked (a bad value exits with
    status 2, as argparse's own errors do)."""
    args = p.parse_args(argv)
    try:
        return args, options.PredictOptions(**options.given(args, options.names(options.PredictOptions)))
    except ValueError as e:
        p.error(str(e))


def _loaded(model: str, settings) -> tuple:
    """``(model, precision kwargs)``: the model loaded at ``settings.precision``'s policy, and what the
    prediction functions need for int8."""
    from fcnseg.models.fcn import load_fcn

    if settings.precision == "int8":
        return load_fcn(model), {"precision": "int8", "calibration": settings.calibration}
    return load_fcn(model, precision=settings.precision), {}


def _parser(prog: str, description: str, **kwargs) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False, **kwargs)
    p.add_argument("--debug", action="store_true", help="on an error, show its traceback")
    return p


def _printed(scores: dict) -> dict:
    """Print the three headline scores as one JSON line; return `scores`."""
    print(json.dumps({k: scores[k] for k in ("mean_iou", "frequency_weighted_iou", "pixel_accuracy")}))
    return scores


def _start_tensorflow() -> None:
    from fcnseg.quiet import quiet_tensorflow

    quiet_tensorflow()


# --------------------------------------------------------------------------- fcnseg-train


def _train_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {recipes.describe(name)}" for name in recipes.RECIPES)
    p = _parser("fcnseg-train", "Train an FCN from a named recipe, then score the best checkpoint.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=f"recipes:\n{listing}\n\nEach option given replaces the recipe's value.")  # fmt: skip
    p.add_argument("--recipe", default=recipes.DEFAULT, choices=tuple(recipes.RECIPES), help="default: %(default)s")
    p.add_argument("--root", default=None, help=root_help())
    p.add_argument("--out", default=None, help="run folder (default: runs/<dataset>_<variant>)")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from a trained model (a .keras file such as a best.keras, or a shipped model's name, "
                        "e.g. camvid-fcn8s) instead of the VGG16 encoder alone; its architecture replaces the "
                        "recipe's, its class layers are re-made when the dataset has another number of classes")
    p.add_argument("--strategy", default="none", choices=STRATEGIES,
                   help="tf.distribute: all local GPUs (mirrored) or the workers in TF_CONFIG; the batch is global")
    options.add_flags(p.add_argument_group("options (fcnseg.options.Options; a recipe sets some of them)"))
    return p


def train_options(argv=None):
    """``(args, options)``: the command line, and the recipe's `Options` with the options given applied;
    a value that cannot work is refused as argparse refuses a bad flag (exit status 2)."""
    p = _train_parser()
    args = p.parse_args(argv)
    try:
        return args, recipes.recipe(args.recipe, **options.given(args))
    except ValueError as e:
        p.error(str(e))


def run_train(argv=None) -> dict:
    """Train from command-line arguments, then score the best checkpoint (`fcnseg.runner.run`);
    writes ``<out>/metrics.json`` and returns it. In a multi-worker run only the chief scores
    and writes; the other workers return ``{}``."""
    args, _ = train_options(argv)  # refused at once, before TensorFlow starts
    _start_tensorflow()
    from fcnseg.runner import run

    metrics = run(recipe=args.recipe, overrides=options.given(args), data_root=args.root, download=False,
                  results_dir=args.out, run_dir=args.out, init_from=args.init_from, strategy=args.strategy)  # fmt: skip
    return _printed(metrics) if metrics else metrics


@reporting_errors
def main_train(argv=None) -> int:
    """``fcnseg-train --recipe NAME [--OPTION VALUE...] --out RUN``."""
    run_train(argv)
    return 0


# --------------------------------------------------------------------------- fcnseg-evaluate


def run_evaluate(argv=None) -> dict:
    """Score a saved model from command-line arguments; returns the scores (and writes them with ``--out``)."""
    p = _parser("fcnseg-evaluate", "Score a saved model on a dataset split at each image's original resolution.")
    p.add_argument("model", help=MODEL_HELP)
    options.add_flags(p, DATA)
    p.add_argument("--root", default=None, help=root_help())
    p.add_argument("--split", default=argparse.SUPPRESS, help="default: the dataset's evaluation split (VOC val, CamVid test)")
    add_prediction_flags(p, ("batch_size",))
    p.add_argument("--out", default=None, help="write the scores, confusion matrix included, to this JSON file")
    args, settings = _parse_prediction(p, argv)
    _start_tensorflow()
    from fcnseg.inference.evaluation import evaluate
    from fcnseg.files import write_json

    split = {"split": args.split} if hasattr(args, "split") else {}
    spec = options.Options(**options.given(args, DATA)).spec(args.root)
    model, int8 = _loaded(args.model, settings)
    scores = evaluate(model, args.root, dataset=spec, **split, **settings.keywords((*options.TEST_TIME, "batch_size")), **int8)
    scores = {"model": portable_path(args.model), "root": portable_path(args.root), "precision": settings.precision,
              **settings.keywords(), **scores}  # fmt: skip
    if args.out:
        write_json(args.out, scores)
    return _printed(scores)


@reporting_errors
def main_evaluate(argv=None) -> int:
    """``fcnseg-evaluate MODEL.keras [--dataset D] [--split S] [--scales ...] [--flip]``."""
    run_evaluate(argv)
    return 0


# --------------------------------------------------------------------------- fcnseg-predict


@reporting_errors
def main_predict(argv=None) -> int:
    """``fcnseg-predict MODEL.keras IMAGE_VIDEO_OR_FOLDER... --out DIR``; exit 1 if any input
    failed, 130 when interrupted (nothing half-written is left)."""
    p = _parser("fcnseg-predict", "Segment image and video files with a trained model: per image, a class-index "
                "mask, a colour mask and an overlay, each at the image's own size; per video, an overlay video "
                "at its size and frame rate (and on request the class ids and colour masks).")  # fmt: skip
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image or video (mp4, avi, mkv, mov, ...) files, folders or glob patterns")
    p.add_argument("--out", required=True, help="output folder (gets masks/, colored/, overlays/)")
    p.add_argument("--dataset", default=None, choices=tuple(DATASETS),
                   help="colours of this dataset (default: the one with the model's number of classes)")
    add_prediction_flags(p, ("max_pixels", "oversize", "alpha", "batch_size"))
    p.add_argument("--video-outputs", nargs="+", default=["overlays"], choices=VIDEO_OUTPUTS,
                   help="what to write per video: overlays/NAME.mp4, colored/NAME.mp4 (colour masks), masks/ "
                        "(class ids, see --mask-format) (default: overlays)")
    p.add_argument("--mask-format", default="png", choices=MASK_FORMATS,
                   help="video class ids as masks/NAME/000000.png, ... (png) or one lossless masks/NAME.mkv "
                        "(default: png)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args, settings = _parse_prediction(p, argv)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg quiet: an unreadable video gets one line, ours
    _start_tensorflow()
    from fcnseg.inference.segment import segment_files

    model, int8 = _loaded(args.model, settings)
    test_time = settings.keywords((*options.TEST_TIME, "max_pixels", "oversize", "alpha", "batch_size"))
    try:
        report = segment_files(model, args.inputs, args.out, dataset=args.dataset, video_outputs=args.video_outputs,
                               mask_format=args.mask_format, overwrite=args.overwrite, progress=not args.quiet,
                               **test_time, **int8)  # fmt: skip
    except KeyboardInterrupt:
        print("\ninterrupted: the outputs being written were removed, the finished ones kept", file=sys.stderr)
        return 130
    failed = report["failed"]
    print(f"{len(report['written'])} file(s) written, {len(report['kept'])} kept (exist; --overwrite replaces "
          f"them), {len(failed)} input(s) failed{': ' + ', '.join(failed) if failed else ''}")  # fmt: skip
    return 1 if failed else 0


# --------------------------------------------------------------------------- fcnseg-export


@reporting_errors
def main_export(argv=None) -> int:
    """``fcnseg-export MODEL.keras --format onnx --out fcn8s.onnx``."""
    p = _parser("fcnseg-export", "Export a trained FCN for serving without this project: SavedModel, ONNX or LiteRT.")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument("--out", required=True,
                   help="output: a folder for tf_saved_model, a .onnx file, a .tflite file for litert")
    p.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="fixed input height and width (required for litert; default: any size)")
    p.add_argument("--quantize", default=None, choices=QUANTIZATIONS, help="litert only: weight quantization")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    _start_tensorflow()
    from fcnseg.export import export_model
    from fcnseg.models.fcn import load_fcn

    path = export_model(load_fcn(args.model), args.out, format=args.format, input_size=args.input_size,
                        quantize=args.quantize, overwrite=args.overwrite)  # fmt: skip
    size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"Wrote {path} ({args.format}, {size / 2**20:.1f} MiB)")
    return 0


# --------------------------------------------------------------------------- fcnseg-download


@reporting_errors
def main_download(argv=None) -> int:
    """``fcnseg-download --root data [--dataset NAME] [--splits ...] [--base-url URL]``: a dataset's
    own download (``DatasetSpec.download``); exit 1 on failure."""
    specs = {name: spec for name, spec in DATASETS.items() if spec.download}
    p = _parser("fcnseg-download", f"Download and unpack a dataset ({', '.join(specs)}).")
    p.add_argument("--root", default="data", help="holds the dataset and downloads/ (default: %(default)s)")
    p.add_argument("--dataset", default=next(iter(specs)), choices=tuple(specs), help="(default: %(default)s)")
    p.add_argument("--splits", nargs="+", default=argparse.SUPPRESS,
                   help="the splits to fetch (default: those the dataset's download fetches)")
    p.add_argument("--sbd", action="store_true",
                   help="VOC 2012's SBD (benchmark.tgz, 1.4 GB) for the split train_aug: as --splits train_aug")
    p.add_argument("--base-url", default=None,
                   help="a mirror (http://, file://) holding the tarballs under their official names")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    args = p.parse_args(argv)
    splits = [*getattr(args, "splits", ()), *(["train_aug"] if args.sbd else [])]
    chosen = {"splits": splits} if splits else {}
    print(specs[args.dataset].download(args.root, base_url=args.base_url, progress=not args.quiet, **chosen))
    return 0


COMMANDS = {"train": main_train, "evaluate": main_evaluate, "predict": main_predict, "export": main_export,
            "download": main_download}  # fmt: skip

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python -m fcnseg.cli {{{','.join(COMMANDS)}}} ...")
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
