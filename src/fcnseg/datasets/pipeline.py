"""tf.data input pipeline: decode, resize, augment, batch.

Images come out as float32 RGB in 0..255 and masks as int32 class ids with
void = 255; with class weights, a third element holds each pixel's weight (the
loss's ``sample_weight``, 0 on void). The VGG16 preprocessing lives
in the model itself (`fcnseg.models.layers.VGGPreprocess`), so training, evaluation and
prediction share it and a saved model takes plain RGB images.

>>> from fcnseg.datasets.pipeline import make_dataset
>>> train_ds = make_dataset(split="train", dataset="camvid", augment=True, seed=0)  # doctest: +SKIP
>>> images, masks = next(iter(train_ds))                                           # doctest: +SKIP
>>> images.shape, masks.shape                                                      # doctest: +SKIP
(TensorShape([8, 256, 256, 3]), TensorShape([8, 256, 256]))
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fcnseg.checks import CLASS_WEIGHTINGS, one_of, positive_int, size_hw
from fcnseg.datasets import VOID, check_dataset, default_root, get_spec, load_sample, read_split
from fcnseg.models.layers import IMAGENET_MEAN_RGB
from fcnseg.options import Options

AUTOTUNE = tf.data.AUTOTUNE


def make_dataset(root=None, split: str = "train", *, dataset=Options.dataset,
                 image_size: tuple[int, int] | None = Options.image_size, batch_size: int = Options.batch_size,
                 augment: bool = False, one_hot: bool = False, shuffle: bool | None = None, seed: int | None = None,
                 cache: bool = False, scale_range: tuple[float, float] = Options.scale_range,
                 color_jitter: float = Options.color_jitter, drop_remainder: bool | None = None,
                 validate: bool = True, class_weights=Options.class_weights) -> tf.data.Dataset:  # fmt: skip
    """A `tf.data.Dataset` of ``(images, masks)`` batches for one split
    (``(images, masks, weights)`` with `class_weights`).

    Args:
        root: dataset folder; default `fcnseg.datasets.default_root(dataset)` (its variable, such as
            ``VOC_ROOT`` / ``CAMVID_ROOT``, or ``data/``).
        split: split name (``"train"``, ``"val"``, ...).
        dataset: a built-in dataset's name (``"voc2007"``, ``"camvid"``, ...) or a `DatasetSpec`.
        image_size: (height, width) of every example. Images are resized bilinearly and masks with
            nearest neighbour, so no label is ever invented. ``None`` keeps each image's own size
            (batches are padded: masks with void, images with the ImageNet mean).
        augment: random scale in ``scale_range`` around ``image_size``, random crop (padding with
            void where the scaled image is smaller) and horizontal flip, applied identically to
            image and mask.
        color_jitter: with ``augment``, scale brightness, contrast and saturation by random factors
            in ``[1 - color_jitter, 1 + color_jitter]`` (the image only; see `jitter_colors`).
        one_hot: masks as (H, W, num_classes) float32, void pixels all-zero, for a loss of your own;
            the package's losses, metric and `train` take the sparse masks (the default).
        shuffle: reshuffle every epoch; default: when augmenting.
        seed: makes order and augmentation reproducible.
        cache: keep decoded images in memory after the first epoch.
        drop_remainder: default: when augmenting (fixed batch shapes).
        validate: check every file, image/mask size and mask value up front
            (`fcnseg.datasets.check_dataset`: one read of each mask, kept while the files stay
            the same), so that no pixel is dropped silently.
        class_weights: one weight per class, or ``"median"`` / ``"sqrt_median"``
            (`median_frequency_weights` of this split's pixels at `image_size`, or their square
            root): each pixel's weight is its class's, void 0.

    `batch_size` is the global batch: under a `tf.distribute` strategy each
    replica gets an equal share of it (on several workers, different images).

    >>> ds = make_dataset(SAMPLE_ROOT, "val", batch_size=1)  # doctest: +SKIP
    """
    spec = get_spec(dataset)
    root = default_root(spec) if root is None else root
    batch_size, image_size = _checked_sizes(batch_size, image_size, augment)
    samples = read_split(root, split, spec)
    if validate:
        check_dataset(root, split, spec)
    shuffle = augment if shuffle is None else shuffle
    ds = _decoded(samples, spec, shuffle=shuffle, seed=seed, cache=cache)
    ds = _sized(ds, image_size, augment=augment, seed=seed, scale_range=scale_range, color_jitter=color_jitter)
    ds = _batched(ds, batch_size, image_size, drop_remainder=augment if drop_remainder is None else drop_remainder)
    if isinstance(class_weights, str):  # from this split's pixels, as the model sees them
        unweighted = make_dataset(root, split, dataset=spec, image_size=image_size, batch_size=batch_size,
                                  validate=False)  # fmt: skip
        class_weights = _median_weights(class_weights, class_pixel_counts(unweighted, spec.num_classes))
    if class_weights is not None:
        ds = weigh_pixels(ds, class_weights)
    if one_hot:  # tf.one_hot gives void (255, out of range) an all-zero row
        ds = ds.map(lambda i, m, *w: (i, tf.one_hot(m, spec.num_classes), *w), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE).with_options(_data_sharding())


def _checked_sizes(batch_size, image_size, augment: bool):
    """``(batch_size, image_size)`` checked: a positive batch, a (height, width) or None (not when augmenting)."""
    batch_size = positive_int("batch_size", batch_size)
    if image_size is not None:
        image_size = size_hw("image_size", image_size)
    elif augment:
        raise ValueError("augment=True needs an image_size to crop to.")
    return batch_size, image_size


def _decoded(samples, spec, *, shuffle: bool, seed, cache: bool) -> tf.data.Dataset:
    """The samples' ``(uint8 image, uint8 mask)`` pairs, in a new order every epoch with `shuffle`
    (of the cached pairs, with `cache`)."""
    ds = tf.data.Dataset.range(len(samples))
    if shuffle and not cache:
        ds = ds.shuffle(len(samples), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(_decoder(samples, spec), num_parallel_calls=AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
        if shuffle:
            ds = ds.shuffle(len(samples), seed=seed, reshuffle_each_iteration=True)
    return ds


def _sized(ds, image_size, *, augment: bool, seed, scale_range, color_jitter) -> tf.data.Dataset:
    """Pairs as float32 images and int32 masks: augmented (`augment_pair`), resized to `image_size`
    (`resize_pair`), or at their own size when `image_size` is None."""
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        return tf.data.Dataset.zip(ds, seeds).map(
            lambda pair, s: augment_pair(
                *pair, s, image_size=image_size, scale_range=scale_range, color_jitter=color_jitter
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    if image_size is not None:
        return ds.map(lambda i, m: resize_pair(i, m, image_size), num_parallel_calls=AUTOTUNE)
    return ds.map(lambda i, m: (tf.cast(i, tf.float32), tf.cast(m, tf.int32)))


def _batched(ds, batch_size: int, image_size, *, drop_remainder: bool) -> tf.data.Dataset:
    """Batches of `batch_size`; pairs of their own size (`image_size` None) padded to the batch's largest."""
    if image_size is not None:
        return ds.batch(batch_size, drop_remainder=drop_remainder)
    # Pad images with the ImageNet mean (as augment_pair does) and masks with void.
    mean = tf.constant(IMAGENET_MEAN_RGB, tf.float32)
    ds = ds.map(lambda i, m: (i - mean, m))
    ds = ds.padded_batch(batch_size, padding_values=(0.0, VOID), drop_remainder=drop_remainder)
    return ds.map(lambda i, m: (i + mean, m))


def weigh_pixels(ds: tf.data.Dataset, class_weights) -> tf.data.Dataset:
    """``(images, masks)`` batches -> ``(images, masks, weights)``: each pixel weighs its
    class's weight (a per-pixel ``sample_weight`` for the loss), void 0.

    >>> ds = tf.data.Dataset.from_tensors((tf.zeros((1, 1, 2, 3)), tf.constant([[[1, 255]]])))
    >>> next(iter(weigh_pixels(ds, [0.5, 2.0])))[2].numpy().tolist()
    [[[2.0, 0.0]]]
    """
    table = tf.constant(class_weights, tf.float32)
    last = len(class_weights) - 1

    def weigh(images, masks):
        return images, masks, tf.where(masks == VOID, 0.0, tf.gather(table, tf.minimum(masks, last)))

    return ds.map(weigh, num_parallel_calls=AUTOTUNE)


def _median_weights(kind: str, counts) -> list[float]:
    power = {"median": 1.0, "sqrt_median": 0.5}[one_of("class_weights", kind, CLASS_WEIGHTINGS)]
    return median_frequency_weights(counts, power=power).tolist()


def _data_sharding() -> tf.data.Options:
    """Under a multi-worker strategy each worker keeps its own share of every
    (global) batch: the pipeline starts from sample indices, not files tf.data could split."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def _decoder(samples, spec):
    """A tf.data map function: sample index -> (uint8 image, uint8 mask).

    Decoding runs in OpenCV/Pillow (through `tf.numpy_function`), so a bad file
    fails with our message naming it instead of an opaque TensorFlow error.
    """

    def load(index):
        return load_sample(samples[int(index)], spec)

    def decode(index):
        image, mask = tf.numpy_function(load, [index], (tf.uint8, tf.uint8), stateful=False)
        image.set_shape((None, None, 3))
        mask.set_shape((None, None))
        return image, mask

    return decode


def resize_pair(image, mask, size):
    """Resize an image bilinearly (antialiased, kept in 0..255) and its mask with nearest neighbour.

    >>> image, mask = resize_pair(np.zeros((375, 500, 3), np.uint8), np.zeros((375, 500), np.uint8), (256, 256))
    >>> tuple(image.shape), tuple(mask.shape), mask.dtype.name
    ((256, 256, 3), (256, 256), 'int32')
    """
    image = tf.image.resize(tf.cast(image, tf.float32), size, "bilinear", antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0)  # the antialiasing kernel's round-off leaves 0..255
    mask = tf.image.resize(tf.cast(mask, tf.int32)[..., None], size, "nearest")[..., 0]
    return image, mask


def augment_pair(image, mask, seed, *, image_size, scale_range=Options.scale_range, color_jitter=Options.color_jitter):
    """Random scale, crop and horizontal flip, identical for image and mask.

    The image is resized to ``image_size`` times a random factor from
    ``scale_range``, then a random ``image_size`` window is cut out; where the
    scaled image is smaller, the image is padded with the ImageNet mean and the
    mask with void (255). A ``color_jitter`` above 0 also applies
    `jitter_colors` to the image (before padding). `seed` is a shape-(2,)
    integer tensor (stateless ops, so a given seed always gives the same result).
    """
    height, width = image_size
    seeds = tf.random.split(tf.cast(seed, tf.int64), 5)
    scale = tf.random.stateless_uniform([], seeds[0], *scale_range)
    scaled = (
        tf.cast(tf.round(height * scale), tf.int32),
        tf.cast(tf.round(width * scale), tf.int32),
    )
    image, mask = resize_pair(image, mask, scaled)
    if color_jitter > 0:
        image = jitter_colors(image, seeds[4], strength=color_jitter)

    pad_h = tf.maximum(height - scaled[0], 0)
    pad_w = tf.maximum(width - scaled[1], 0)
    mean = tf.constant(IMAGENET_MEAN_RGB, tf.float32)
    image = tf.pad(image - mean, [[0, pad_h], [0, pad_w], [0, 0]]) + mean
    mask = tf.pad(mask, [[0, pad_h], [0, pad_w]], constant_values=VOID)

    top = tf.random.stateless_uniform([], seeds[1], 0, tf.shape(mask)[0] - height + 1, tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, tf.shape(mask)[1] - width + 1, tf.int32)
    image = image[top : top + height, left : left + width]
    mask = mask[top : top + height, left : left + width]

    flip = tf.random.stateless_uniform([], seeds[3]) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    mask = tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    image.set_shape((height, width, 3))
    mask.set_shape((height, width))
    return image, mask


def jitter_colors(image, seed, *, strength=0.3):
    """Scale brightness, contrast and saturation of a 0..255 RGB image by random
    factors in ``[1 - strength, 1 + strength]`` (torchvision's
    ``ColorJitter(strength, strength, strength)``, hue left alone as it carries
    class evidence such as sky and vegetation). Stateless: `seed` is a shape-(2,)
    integer tensor.

    >>> image = tf.fill((4, 4, 3), 100.0)
    >>> out = jitter_colors(image, tf.constant([1, 2]), strength=0.5)
    >>> bool(tf.reduce_all((out >= 0) & (out <= 255))), out.shape
    (True, TensorShape([4, 4, 3]))
    """
    if not 0 <= strength < 1:
        raise ValueError(f"color jitter strength must be in [0, 1), got {strength!r}.")
    low, high = 1.0 - strength, 1.0 + strength
    seeds = tf.random.split(tf.cast(seed, tf.int64), 3)
    brightness, contrast, saturation = (tf.random.stateless_uniform([], seeds[i], low, high) for i in range(3))
    image = tf.clip_by_value(tf.cast(image, tf.float32) * brightness, 0.0, 255.0)
    image = tf.clip_by_value(tf.image.adjust_contrast(image, contrast), 0.0, 255.0)
    image = tf.image.adjust_saturation(image / 255.0, saturation) * 255.0
    return tf.clip_by_value(image, 0.0, 255.0)


def class_pixel_counts(ds: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """Count the pixels of each class over a dataset of sparse masks (void excluded)."""
    counts = np.zeros(num_classes, np.int64)
    for _, masks, *_ in ds:
        m = masks.numpy().ravel()
        counts += np.bincount(m[m != VOID], minlength=num_classes)[:num_classes]
    return counts


def median_frequency_weights(pixel_counts, *, power=1.0):
    """Median-frequency class weights (Eigen & Fergus; SegNet on CamVid): (median(f) / f_c) ** power.

    ``power=0.5`` softens the balancing (rare classes still gain, common ones
    lose less). Classes with no pixels get weight 0.

    >>> median_frequency_weights([10, 30, 60]).round(2).tolist()
    [3.0, 1.0, 0.5]
    >>> median_frequency_weights([10, 40, 160], power=0.5).tolist()
    [2.0, 1.0, 0.5]
    """
    freq = np.asarray(pixel_counts, np.float64)
    freq = freq / max(freq.sum(), 1.0)
    present = freq > 0
    weights = np.zeros_like(freq)
    weights[present] = (np.median(freq[present]) / freq[present]) ** power
    return weights.astype(np.float32)
