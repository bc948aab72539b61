"""The reference notebook's training as it is written, in PyTorch, beside ours on the same images.

The twin is the seed notebook's code path (``semantic_segmentation_fcn32.ipynb``, PyTorch):
its data loader (cv2, images and RGB masks resized bilinearly to 256x256, one-hot by colour,
so void and the blended boundary colours become all-zero target rows), its FCN-32s (VGG16
``features``, 1x1 fc6/fc7 of 4096 units with dropout, five stride-2 BatchNorm deconvolutions,
a 1x1 classifier), ``BCEWithLogitsLoss`` on the one-hot targets, Adam 1e-3,
``ReduceLROnPlateau(patience=3)`` on the validation loss, 10 epochs, batch 10, validation in
training mode (no ``model.eval()``), the checkpoint kept at the best validation "IoU", and
raw 0..255 pixels fed to an encoder that expects torchvision's normalisation. Two changes,
both asked for: VOC 2007's official ``train`` split (not a random 90% of ``trainval``), scored
on ``val``; and the encoder is ours (``FCN_BACKBONE_WEIGHTS``, a Keras VGG16 no-top ``.h5``),
converted into torchvision's ``vgg16().features`` layout with torchvision's input convention
folded into the first convolution (`convert_encoder`; `check` compares both frameworks).

Scores (``score``), for the twin, our Keras checkpoints and a map of background everywhere:

- the reference's metric: ``sklearn.metrics.jaccard_score(..., average="weighted")`` of the
  argmax maps against the argmax of the one-hot targets, all at 256x256, per batch of 10,
  averaged over batches (`reference_metric`);
- ours: mean IoU over the 21 classes at each image's original resolution, void ignored
  (`fcnseg.inference.evaluation.evaluate` for Keras models; the twin's logits are resized back).

Steps, each in its own process (PyTorch and TensorFlow never share one)::

    python3 bench/reference_twin.py check
    python3 bench/reference_twin.py twin  --work ~/fcnseg-runs/twin            # ~10 epochs, CPU
    python3 bench/reference_twin.py ours  --work ~/fcnseg-runs/twin            # fcnseg-train --recipe reference
    python3 bench/reference_twin.py score --work ~/fcnseg-runs/twin --keras voc2007=~/fcnseg-runs/voc2007/best.keras \\
        --out results/reference_twin.json
    python3 bench/reference_twin.py score --keras name=path/best.keras --keep     # one more model, the rest kept

``twin --normalize`` and ``twin --index-masks`` undo one of the twin's faults each (torchvision's
input normalisation; palette masks resized with nearest neighbour, void masked out of the loss),
to find what makes the two reproductions differ. Needs ``pip install -e .[twin]``
(torch, torchvision); ``VOC_ROOT`` and ``FCN_BACKBONE_WEIGHTS`` as for ``fcnseg-train``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import h5py
import numpy as np

IMAGE_SIZE = 256  # the notebook's cv2.resize((256, 256))
BATCH = 10  # its train and val loaders
EPOCHS = 10
CLASSES = 21
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406])
TORCHVISION_STD = np.array([0.229, 0.224, 0.225])
KERAS_MEAN_BGR = np.array([103.939, 116.779, 123.68])  # keras.applications.vgg16 "caffe" preprocessing
VGG16_CONVS = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))  # (block, convolutions)
TIMEOUT_S = 4 * 3600  # one training subprocess


# --------------------------------------------------------------------------- data, as the notebook reads it


def voc_folder() -> Path:
    root = os.environ.get("VOC_ROOT")
    if not root:
        sys.exit("reference_twin: set VOC_ROOT to the VOC2007 folder (holding ImageSets/Segmentation).")
    for candidate in (Path(root), Path(root) / "VOC2007", Path(root) / "VOCdevkit" / "VOC2007"):
        if (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    sys.exit(f"reference_twin: VOC_ROOT={root} holds no ImageSets/Segmentation.")


def split_ids(split: str) -> list[str]:
    return (voc_folder() / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def voc_colormap() -> np.ndarray:
    from fcnseg.datasets.voc import VOC_COLORMAP

    return np.asarray(VOC_COLORMAP[:CLASSES], np.uint8)


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def notebook_pair(image_id: str, colormap: np.ndarray, *, index_masks: bool = False):
    """(image 256x256x3 float 0..255, target 256x256x21 one-hot float) as the notebook makes them;
    `index_masks`: the palette indices resized with nearest neighbour instead, void rows all zero."""
    voc = voc_folder()
    image = cv2.resize(read_rgb(voc / "JPEGImages" / f"{image_id}.jpg"), (IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    if index_masks:
        from fcnseg.datasets.loading import load_mask

        mask = cv2.resize(load_mask(voc / "SegmentationClass" / f"{image_id}.png"), (IMAGE_SIZE, IMAGE_SIZE),
                          interpolation=cv2.INTER_NEAREST)  # fmt: skip
        target = (mask[..., None] == np.arange(CLASSES)).astype(np.float32)
    else:
        label = cv2.resize(read_rgb(voc / "SegmentationClass" / f"{image_id}.png"), (IMAGE_SIZE, IMAGE_SIZE))
        target = np.all(label[:, :, None, :] == colormap[None, None], axis=-1).astype(np.float32)
    return image, target


def reference_metric(predicted: np.ndarray, targets: np.ndarray) -> float:
    """The notebook's "val IoU": per batch of `BATCH`, sklearn's weighted Jaccard of argmax maps
    (the labels present in truth or prediction, each weighted by its share of the true pixels),
    averaged over batches. `predicted` (N, 256, 256) ids, `targets` (N, 256, 256) argmax of the one-hot
    targets (an all-zero row is class 0, as ``torch.argmax`` gives).

    >>> t = np.zeros((1, 2, 2), int); t[0, 0, 0] = 1
    >>> reference_metric(np.zeros_like(t), t)  # background IoU 3/4, weighted by 3/4; class 1 IoU 0
    0.5625
    """
    scores = []
    for start in range(0, len(predicted), BATCH):
        p, t = predicted[start : start + BATCH].ravel(), targets[start : start + BATCH].ravel()
        labels = np.union1d(p, t)
        support = np.array([(t == c).sum() for c in labels], np.float64)
        iou = np.array([((p == c) & (t == c)).sum() / ((p == c) | (t == c)).sum() for c in labels])
        scores.append(float((iou * support).sum() / support.sum()))
    return float(np.mean(scores))


def reference_targets(split: str) -> np.ndarray:
    """The argmax maps of the notebook's one-hot targets of `split`, (N, 256, 256)."""
    colormap = voc_colormap()
    return np.stack([notebook_pair(i, colormap)[1].argmax(-1) for i in split_ids(split)])


# --------------------------------------------------------------------------- the encoder, Keras .h5 -> torchvision


def keras_convs(h5_path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel HWIO, bias) of the 13 convolutions of a Keras VGG16 no-top ``.h5``, in order."""
    out = []
    with h5py.File(h5_path, "r") as f:
        for block, count in VGG16_CONVS:
            for conv in range(1, count + 1):
                group = f[f"block{block}_conv{conv}"]
                kernel, bias = (np.asarray(group[name]) for name in group.attrs["weight_names"])
                out.append((kernel, bias))
    return out


def convert_encoder(h5_path, *, torchvision_input: bool = True) -> dict:
    """A state dict for ``torchvision.models.vgg16().features`` from a Keras no-top ``.h5``.

    Keras' VGG16 takes BGR pixels minus the ImageNet mean (0..255); torchvision's takes RGB in
    0..1, normalised by mean and std. With `torchvision_input`, that change of input is folded
    into the first convolution (its input channels reversed and scaled, its bias shifted), so the
    converted encoder computes Keras' features from torchvision's input (exactly, but for the
    zero padding of the first layer's border); without it, the layout alone changes.
    """
    import torch

    indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # the Conv2d modules of vgg16().features
    state = {}
    for n, (index, (kernel, bias)) in enumerate(zip(indices, keras_convs(h5_path))):
        weight = kernel.transpose(3, 2, 0, 1).astype(np.float64)  # HWIO -> OIHW; both cross-correlate
        bias = bias.astype(np.float64)
        if n == 0 and torchvision_input:
            # x_bgr[k] - mean[k] = 255 * std[2-k] * x_tv[2-k] + 255 * mean_tv[2-k] - mean[k]
            offset = 255 * TORCHVISION_MEAN[::-1] - KERAS_MEAN_BGR
            bias = bias + np.einsum("oihw,i->o", weight, offset)
            weight = weight[:, ::-1] * (255 * TORCHVISION_STD)[None, :, None, None]
        state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, np.float32))
        state[f"{index}.bias"] = torch.from_numpy(bias.astype(np.float32))
    return state


def check(h5_path) -> dict:
    """Compare the converted encoder with Keras' VGG16 on a real VOC image: the whole encoder
    (layout-only conversion, the same preprocessed input) and the first convolution (torchvision's
    input convention folded in), as max |difference| / max |Keras output|."""
    image = cv2.resize(read_rgb(voc_folder() / "JPEGImages" / f"{split_ids('val')[0]}.jpg"), (224, 224))
    caffe = (image[..., ::-1] - KERAS_MEAN_BGR).astype(np.float32)[None]
    torchvision_in = ((image / 255.0 - TORCHVISION_MEAN) / TORCHVISION_STD).astype(np.float32)[None]
    keras_pool5, keras_conv1 = _keras_features(h5_path, caffe)
    import torch
    import torchvision

    with torch.no_grad():
        features = torchvision.models.vgg16(weights=None).features.eval()
        features.load_state_dict(convert_encoder(h5_path, torchvision_input=False))
        pool5 = features(torch.from_numpy(caffe).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        features.load_state_dict(convert_encoder(h5_path))
        conv1 = features[0](torch.from_numpy(torchvision_in).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    inner = (slice(None), slice(1, -1), slice(1, -1))  # the first layer's zero padding differs on the border
    return {
        "encoder_pool5_max_rel_diff": float(np.abs(pool5 - keras_pool5).max() / np.abs(keras_pool5).max()),
        "conv1_torchvision_input_max_rel_diff": float(
            np.abs(conv1[inner] - keras_conv1[inner]).max() / np.abs(keras_conv1[inner]).max()),
    }  # fmt: skip


def _keras_features(h5_path, caffe_input):
    """Keras' block5_pool and (pre-activation) block1_conv1 outputs, in a subprocess (no TensorFlow here)."""
    code = (
        "import sys, numpy as np, keras\n"
        "x = np.load(sys.argv[2])\n"
        "m = keras.applications.VGG16(include_top=False, weights=sys.argv[1], input_shape=x.shape[1:])\n"
        "c = m.get_layer('block1_conv1'); w, b = c.get_weights()\n"
        "import tensorflow as tf\n"
        "conv1 = tf.nn.conv2d(x, w, 1, 'SAME').numpy() + b\n"
        "np.savez(sys.argv[2] + '.out.npz', pool5=m.predict(x, verbose=0), conv1=conv1)\n"
    )
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"reference_twin_{os.getpid()}.npy"
    np.save(path, caffe_input)
    subprocess.run([sys.executable, "-c", code, str(h5_path), str(path)], check=True, timeout=600)
    out = np.load(f"{path}.out.npz")
    return out["pool5"], out["conv1"]


# --------------------------------------------------------------------------- the twin


def twin_model(h5_path):
    """The notebook's ``FCN32`` on the converted encoder."""
    import torch
    import torchvision
    from torch import nn

    features = torchvision.models.vgg16(weights=None).features
    features.load_state_dict(convert_encoder(h5_path))

    def deconv(cin, cout):
        return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]  # fmt: skip

    classifier = nn.Sequential(nn.Conv2d(512, 4096, 1), nn.ReLU(inplace=True), nn.Dropout(),
                               nn.Conv2d(4096, 4096, 1), nn.ReLU(inplace=True), nn.Dropout())  # fmt: skip
    widths = (4096, 512, 256, 128, 64, 32)
    decoder = [layer for cin, cout in zip(widths, widths[1:]) for layer in deconv(cin, cout)]
    torch.manual_seed(0)
    model = nn.Sequential(features, classifier, *decoder, nn.Conv2d(32, CLASSES, 1))
    return model


def _batches(ids, colormap, *, shuffle, rng, index_masks):
    import torch

    order = rng.permutation(len(ids)) if shuffle else np.arange(len(ids))
    for start in range(0, len(ids), BATCH):
        pairs = [notebook_pair(ids[i], colormap, index_masks=index_masks) for i in order[start : start + BATCH]]
        images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2)
        targets = torch.from_numpy(np.stack([p[1] for p in pairs])).permute(0, 3, 1, 2)
        yield images, targets


def _twin_input(images, normalize: bool):
    import torch

    if not normalize:
        return images  # as written: raw 0..255
    mean = torch.tensor(TORCHVISION_MEAN * 255, dtype=torch.float32).view(1, 3, 1, 1)
    return (images - mean) / torch.tensor(TORCHVISION_STD * 255, dtype=torch.float32).view(1, 3, 1, 1)


def train_twin(work: Path, h5_path, *, normalize: bool, index_masks: bool, epochs: int = EPOCHS) -> dict:
    """Train the twin on ``train``, validating on ``val`` after each epoch as the notebook does."""
    import torch

    torch.manual_seed(0)
    model = twin_model(h5_path)
    if index_masks:  # void (all-zero rows) left out of the loss, as ours does
        def loss_f(logits, target):
            keep = target.sum(1, keepdim=True).expand_as(target)
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=keep, reduction="sum") / keep.sum()  # fmt: skip
    else:
        loss_f = torch.nn.BCEWithLogitsLoss()
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optim, patience=3)
    colormap, rng = voc_colormap(), np.random.default_rng(0)
    train_ids, val_ids = split_ids("train"), split_ids("val")
    best, log = 0.3, []  # the notebook saves only above 0.3
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        for images, targets in _batches(train_ids, colormap, shuffle=True, rng=rng, index_masks=index_masks):
            loss = loss_f(model(_twin_input(images, normalize)), targets)
            optim.zero_grad()
            loss.backward()
            optim.step()
        ious, val_losses = [], []
        with torch.no_grad():  # still in training mode, as written
            for images, targets in _batches(val_ids, colormap, shuffle=True, rng=rng, index_masks=index_masks):
                logits = model(_twin_input(images, normalize))
                val_losses.append(float(loss_f(logits, targets)))
                ious.append(reference_metric(logits.argmax(1).numpy(), targets.argmax(1).numpy()))
        scheduler.step(np.mean(val_losses))
        if np.mean(ious) > best:
            best = float(np.mean(ious))
            torch.save(model.state_dict(), work / "twin.pth")
        log.append({"epoch": epoch + 1, "train_loss": loss.item(), "val_loss": float(np.mean(val_losses)),
                    "val_iou": float(np.mean(ious)), "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
        print(json.dumps(log[-1]), flush=True)
    return {"epochs": log, "best_val_iou": best, "saved": (work / "twin.pth").is_file()}


def twin_logits(work: Path, h5_path, images_256: np.ndarray, *, normalize: bool) -> np.ndarray:
    """The saved twin's logits (N, 21, 256, 256) in evaluation mode."""
    import torch

    model = twin_model(h5_path)
    model.load_state_dict(torch.load(work / "twin.pth"))
    model.eval()
    with torch.no_grad():
        return model(_twin_input(torch.from_numpy(images_256).permute(0, 3, 1, 2), normalize)).numpy()


def twin_predictions(work: Path, h5_path, *, normalize: bool, out: Path) -> None:
    """The saved twin's argmax maps on ``val`` into `out` (.npz): at 256x256 (``reference``) and
    resized back to each image's size (its logits resized bilinearly) under each image's id."""
    import torch

    from fcnseg.datasets.loading import load_mask

    voc, ids = voc_folder(), split_ids("val")
    arrays = {}
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        images = np.stack([cv2.resize(read_rgb(voc / "JPEGImages" / f"{i}.jpg"), (IMAGE_SIZE, IMAGE_SIZE))
                           for i in batch]).astype(np.float32)  # fmt: skip
        logits = twin_logits(work, h5_path, images, normalize=normalize)
        for image_id, one in zip(batch, logits):
            arrays[f"reference/{image_id}"] = one.argmax(0).astype(np.uint8)
            size = load_mask(voc / "SegmentationClass" / f"{image_id}.png").shape
            full = torch.nn.functional.interpolate(torch.from_numpy(one[None]), size=size, mode="bilinear")
            arrays[f"full/{image_id}"] = full[0].argmax(0).numpy().astype(np.uint8)
    np.savez_compressed(out, **arrays)


def score_twin(work: Path, *, normalize: bool) -> dict:
    """Both metrics of a trained twin on ``val``: its predictions made in a PyTorch process
    (`twin_predictions`; PyTorch and TensorFlow never share one), scored here."""
    from fcnseg.datasets.loading import load_mask
    from fcnseg.datasets.voc import VOC_CLASSES
    from fcnseg.metrics import confusion_matrix, summarize

    out = work / "val_predictions.npz"
    flags = ["--normalize"] if normalize else []
    subprocess.run([sys.executable, __file__, "twin-predict", "--work", str(work.parent), *flags,
                    *(["--index-masks"] if "index_masks" in work.name else [])], check=True, timeout=3600)  # fmt: skip
    predicted = np.load(out)
    voc, ids = voc_folder(), split_ids("val")
    cm = sum(confusion_matrix(load_mask(voc / "SegmentationClass" / f"{i}.png"), predicted[f"full/{i}"], CLASSES)
             for i in ids)  # fmt: skip
    reference = np.stack([predicted[f"reference/{i}"] for i in ids])
    return {"reference_metric": reference_metric(reference, reference_targets("val")), **summarize(cm, VOC_CLASSES)}


# --------------------------------------------------------------------------- ours, and a map of background


def score_keras(path) -> dict:
    """Both metrics of a Keras FCN (a ``.keras`` file or a shipped name) on ``val``."""
    from fcnseg.inference.evaluation import evaluate
    from fcnseg.models.fcn import load_fcn

    model = load_fcn(path, precision="float32")
    voc, ids = voc_folder(), split_ids("val")
    images = np.stack([cv2.resize(read_rgb(voc / "JPEGImages" / f"{i}.jpg"), (IMAGE_SIZE, IMAGE_SIZE)) for i in ids])
    predicted = model.predict(images.astype(np.float32), batch_size=BATCH, verbose=0).argmax(-1)
    ours = evaluate(model, voc, "val", dataset="voc2007")
    return {"reference_metric": reference_metric(predicted, reference_targets("val")), **ours}


def score_background() -> dict:
    from fcnseg.datasets.loading import load_mask
    from fcnseg.datasets.voc import VOC_CLASSES
    from fcnseg.metrics import confusion_matrix, summarize

    voc, ids = voc_folder(), split_ids("val")
    cm = sum(confusion_matrix(m, np.zeros_like(m), CLASSES)
             for m in (load_mask(voc / "SegmentationClass" / f"{i}.png") for i in ids))  # fmt: skip
    targets = reference_targets("val")
    return {"reference_metric": reference_metric(np.zeros_like(targets), targets), **summarize(cm, VOC_CLASSES)}


def run_measured(command: list[str], log: Path) -> dict:
    """Run `command` (its output to `log`), with its wall time and peak resident memory."""
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        timer = threading.Timer(TIMEOUT_S, process.kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        timer.cancel()
    code = os.waitstatus_to_exitcode(status)
    if code:
        sys.exit(f"reference_twin: {' '.join(command)} failed (exit {code}); see {log}.")
    return {"seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024)}


def cpu_name() -> str:
    """The CPU by model and the flags that decide its speed (`bench.py`'s readers)."""
    from bench import cpu_flags, cpu_model  # bench/bench.py, beside this script

    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in cpu_flags()]
    return f"{os.cpu_count()}-core {cpu_model()} ({', '.join(shown)})"


# --------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("check", "twin", "twin-run", "twin-predict", "ours", "score"))
    p.add_argument("--work", type=Path, default=Path("runs/reference_twin"), help="twin and ours run folders")
    p.add_argument("--normalize", action="store_true", help="twin: feed torchvision's normalised input")
    p.add_argument("--index-masks", action="store_true", help="twin: palette masks, nearest neighbour, void masked")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--keras", nargs="*", default=[], metavar="NAME=PATH", help="score: more Keras models")
    p.add_argument("--out", type=Path, default=Path("results/reference_twin.json"))
    p.add_argument("--keep", action="store_true",
                   help="score: keep --out's rows of the models not scored this time (their run folders are gone)")
    args = p.parse_args(argv)
    h5 = os.environ.get("FCN_BACKBONE_WEIGHTS")
    if not h5 or not Path(h5).is_file():
        sys.exit("reference_twin: set FCN_BACKBONE_WEIGHTS to the VGG16 no-top .h5 both reproductions start from.")
    variant = "twin" + "".join(f"_{f}" for f, on in (("normalize", args.normalize), ("index_masks", args.index_masks)) if on)
    work = args.work.expanduser() / variant
    if args.step == "check":
        print(json.dumps(check(h5), indent=1))
    elif args.step == "twin-run":  # the training process that `twin` measures
        work.mkdir(parents=True, exist_ok=True)
        log = train_twin(work, h5, normalize=args.normalize, index_masks=args.index_masks, epochs=args.epochs)
        (work / "log.json").write_text(json.dumps(log, indent=1))
    elif args.step == "twin-predict":  # the PyTorch half of `score`
        twin_predictions(work, h5, normalize=args.normalize, out=work / "val_predictions.npz")
    elif args.step == "twin":
        work.mkdir(parents=True, exist_ok=True)
        flags = [f for f, on in (("--normalize", args.normalize), ("--index-masks", args.index_masks)) if on]
        command = [sys.executable, __file__, "twin-run", "--work", str(args.work), "--epochs", str(args.epochs), *flags]
        (work / "run.json").write_text(json.dumps(run_measured(command, work / "train.log"), indent=1))
    elif args.step == "ours":
        work = args.work.expanduser() / "ours"
        work.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "fcnseg.cli", "train", "--recipe", "reference", "--out", str(work)]
        (work / "run.json").write_text(json.dumps(run_measured(command, work.parent / "ours.log"), indent=1))
    else:
        print(json.dumps(score(args, h5), indent=1))
    return 0


def score(args, h5) -> dict:
    """Every model's scores, in one JSON file (`--out`), with the CPU and the encoder named."""
    import csv

    work = args.work.expanduser()
    rows = {"all_background": score_background()}
    for folder in sorted(work.glob("twin*")):
        if (folder / "twin.pth").is_file():
            row = score_twin(folder, normalize="normalize" in folder.name)
            log = json.loads((folder / "log.json").read_text())
            row["seconds_per_epoch"] = round(float(np.median([e["seconds"] for e in log["epochs"]])), 1)
            rows[f"original_pytorch{folder.name[4:]}"] = {**row, **json.loads((folder / "run.json").read_text())}
    keras_models = {"ours_reference": work / "ours" / "best.keras"}
    keras_models.update(dict(item.split("=", 1) for item in args.keras))
    for name, path in keras_models.items():
        path = Path(path).expanduser()
        if not path.is_file():
            continue
        row = score_keras(path)
        history = path.parent / "history.csv"
        if history.is_file():
            with open(history) as f:
                seconds = [float(r["epoch_seconds"]) for r in csv.DictReader(f) if r.get("epoch_seconds")]
            row["seconds_per_epoch"] = round(float(np.median(seconds)), 1) if seconds else None
        run = path.parent / "run.json"
        rows[name] = {**row, **(json.loads(run.read_text()) if run.is_file() else {})}
    for row in rows.values():
        row.pop("confusion_matrix", None)  # per-class IoU stays
    if args.keep and args.out.is_file():
        kept = json.loads(args.out.read_text())["models"]
        rows = {**{name: row for name, row in kept.items() if name not in rows}, **rows}
    result = {
        "data": "PASCAL VOC 2007: trained on train (209), scored on val (213); VOC 2007 trainval images as "
                "re-encoded JPEG copies (about quality 75)",
        "encoder": Path(h5).name,
        "cpu": cpu_name(),
        "metrics": {"reference_metric": "sklearn weighted Jaccard of 256x256 argmax maps, per batch of 10, averaged",
                    "mean_iou": "mean IoU over 21 classes at each image's original resolution, void ignored"},
        "models": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return {name: {k: row.get(k) for k in ("reference_metric", "mean_iou")} for name, row in rows.items()}


if __name__ == "__main__":
    sys.exit(main())
