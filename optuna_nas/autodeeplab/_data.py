"""Semantic-segmentation data: a generated set of shapes, PASCAL VOC and Cityscapes.

Every loader returns a :class:`SegmentationData` whose splits yield ``(image, mask)``
pairs: a float ``C x H x W`` image and an int64 ``H x W`` mask of class indices, with 255
marking pixels that are not scored. Nothing is downloaded: VOC and Cityscapes are read
from local folders through torchvision's dataset classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional
from torch.utils.data import Dataset, TensorDataset

from optuna_nas.errors import DatasetError

__all__ = [
    "SHAPES",
    "SegmentationData",
    "load_cityscapes",
    "load_voc",
    "synthetic_segmentation",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
#: The shapes of the synthetic set, class 1 onwards (class 0 is the background).
SHAPES = ("disc", "ring", "square", "triangle", "cross")


@dataclass(frozen=True)
class SegmentationData:
    """Train, validation and test splits of a semantic-segmentation data set.

    Each split yields ``(image, mask)`` pairs: a float ``C x H x W`` image and an int64
    ``H x W`` mask of class indices, ``ignore_index`` where a pixel is not scored.

    Args:
        train: The split the weights are trained on (an Auto-DeepLab search divides it in
            two halves: one for the weights, one for the architecture).
        valid: The split that trials report and searches select on.
        test: The held-out split, or ``None``.
        num_classes: Number of classes.
        in_channels: Image channels.
        image_size: Image height and width.
        name: A short name for messages.
        class_names: The name of each class.
        ignore_index: The mask label of unscored pixels.
    """

    train: Dataset[Any]
    valid: Dataset[Any]
    test: Dataset[Any] | None
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    name: str = "data"
    class_names: tuple[str, ...] = ()
    ignore_index: int = 255


# ------------------------------------------------------------------------- synthetic shapes


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random ``size x size`` texture in [-1, 1]: stripes, a checkerboard or smooth blobs."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    kind = int(rng.integers(3))
    if kind == 0:
        angle = rng.uniform(0, math.pi)
        frequency = rng.uniform(2.0, 6.0) / size
        phase = rng.uniform(0, 2 * math.pi)
        texture: np.ndarray = np.sin(
            2 * math.pi * frequency * (x * math.cos(angle) + y * math.sin(angle)) + phase
        )
        return texture
    if kind == 1:
        period = rng.uniform(size / 8, size / 3)
        texture = np.sign(np.sin(math.pi * x / period) * np.sin(math.pi * y / period))
        return texture
    coarse = torch.from_numpy(rng.uniform(-1, 1, (1, 1, 5, 5)))
    smooth = functional.interpolate(coarse, size=(size, size), mode="bicubic",
                                    align_corners=False)
    texture = np.clip(smooth[0, 0].numpy(), -1.0, 1.0)
    return texture


def _shape_region(kind: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    distance = np.hypot(u, v)
    region: np.ndarray
    if kind == "disc":
        region = distance <= r
    elif kind == "square":
        region = np.maximum(np.abs(u), np.abs(v)) <= 0.8 * r
    elif kind == "triangle":  # equilateral, circumradius r
        region = (v >= -0.5 * r) & (v <= r - math.sqrt(3) * np.abs(u))
    elif kind == "ring":
        region = (distance <= r) & (distance >= 0.5 * r)
    else:  # cross
        bar = 0.3 * r
        region = ((np.abs(u) <= bar) & (np.abs(v) <= r)) | ((np.abs(v) <= bar) & (np.abs(u) <= r))
    return region


def _contrasting_colour(rng: np.random.Generator, against: np.ndarray) -> np.ndarray:
    # A shape must be visible on its background; its colour says nothing about its class.
    for _ in range(20):
        colour = rng.uniform(0, 1, 3)
        if np.abs(colour - against).mean() >= 0.3:
            return colour
    return 1.0 - against


def _synthetic_image(seed: int, index: int, size: int, num_classes: int,
                     in_channels: int) -> tuple[np.ndarray, np.ndarray]:
    # One generator per image: image i is the same whatever n is.
    rng = np.random.default_rng([seed, index])
    base = rng.uniform(0.15, 0.85, 3)
    direction = rng.uniform(-1, 1, 3)
    image = base[:, None, None] + 0.15 * direction[:, None, None] * _texture(rng, size)[None]
    mask = np.zeros((size, size), dtype=np.int64)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    for _ in range(int(rng.integers(1, 3))):
        label = int(rng.integers(1, num_classes))
        r = rng.uniform(0.25, 0.4) * size
        cy, cx = rng.uniform(0.6 * r, size - 0.6 * r, 2)
        angle = rng.uniform(0, 2 * math.pi)
        u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
        v = -(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)
        region = _shape_region(SHAPES[label - 1], u, v, r)
        colour = _contrasting_colour(rng, base)
        shade = 1.0 + 0.08 * _texture(rng, size)[None]
        image = np.where(region[None], colour[:, None, None] * shade, image)
        mask[region] = label
    image = image + rng.normal(0.0, 0.03, image.shape)
    image = np.clip(image, 0.0, 1.0)
    if in_channels == 1:
        image = image.mean(axis=0, keepdims=True)
    return ((image - 0.5) / 0.25).astype(np.float32), mask


def synthetic_segmentation(
    n: int = 600,
    *,
    size: int = 32,
    num_classes: int = 4,
    seed: int = 0,
    valid_fraction: float = 0.2,
    test_fraction: float = 0.2,
    in_channels: int = 3,
) -> SegmentationData:
    """A generated segmentation set: shapes on textured backgrounds, made on the CPU.

    Each image has a background (class 0) of one colour with a random texture (stripes, a
    checkerboard or smooth blobs) and one or two shapes of random size (a radius of a
    quarter to two fifths of the image), position, rotation and colour; a shape's
    class is its geometry (:data:`SHAPES`: disc, ring, square, triangle, cross, in that
    order), never its colour, so a network has to see the outline. Later shapes occlude
    earlier ones in image and mask alike. Images are standardised to mean about 0 and
    standard deviation about 1. The same seed gives the
    same images, and image ``i`` does not depend on ``n``.

    A stand-in for PASCAL VOC (Everingham et al., IJCV 2010,
    https://doi.org/10.1007/s11263-009-0275-4) that runs Auto-DeepLab end to end in minutes.

    Args:
        n: Images in all; the first ``1 - valid_fraction - test_fraction`` of them train.
        size: Height and width in pixels.
        num_classes: 2 to 6: the background and the first ``num_classes - 1`` shapes.
        seed: The seed of the images.
        valid_fraction: Share of the images in the validation split.
        test_fraction: Share of the images in the test split (0 for none).
        in_channels: 3 (colour) or 1 (grey).
    """
    if not 2 <= num_classes <= len(SHAPES) + 1:
        raise DatasetError(
            f"num_classes must be 2..{len(SHAPES) + 1} (the background and up to "
            f"{len(SHAPES)} shapes: {', '.join(SHAPES)}), got {num_classes}."
        )
    if size < 8:
        raise DatasetError(f"size must be at least 8 pixels, got {size}.")
    if in_channels not in (1, 3):
        raise DatasetError(f"in_channels must be 1 or 3, got {in_channels}.")
    if not (0 < valid_fraction and 0 <= test_fraction and valid_fraction + test_fraction < 1):
        raise DatasetError(
            "valid_fraction must be in (0, 1), test_fraction in [0, 1), and their sum below "
            f"1; got {valid_fraction} and {test_fraction}."
        )
    n_valid = round(n * valid_fraction)
    n_test = round(n * test_fraction)
    n_train = n - n_valid - n_test
    if n_train < 2 or n_valid < 1 or (test_fraction > 0 and n_test < 1):
        raise DatasetError(
            f"n={n} is too small to split into train (at least 2), valid and test images; "
            "raise n."
        )
    pairs = [_synthetic_image(seed, i, size, num_classes, in_channels) for i in range(n)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs]))
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))

    def split(start: int, stop: int) -> TensorDataset:
        return TensorDataset(images[start:stop], masks[start:stop])

    return SegmentationData(
        split(0, n_train),
        split(n_train, n_train + n_valid),
        split(n_train + n_valid, n) if n_test else None,
        num_classes,
        in_channels,
        (size, size),
        name="synthetic-shapes",
        class_names=("background", *SHAPES[: num_classes - 1]),
    )


# ----------------------------------------------------------------------- VOC and Cityscapes


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    height, width = (int(s) for s in image_size)
    if height < 8 or width < 8:
        raise DatasetError(f"image_size must be at least 8 pixels, got {image_size}.")
    return height, width


class _PairTransform:
    """Resize (evaluation) or random-scale crop and flip (training) an image and its mask
    together; masks are resized with the nearest label, never interpolated."""

    def __init__(self, size: tuple[int, int], train: bool,
                 label_map: np.ndarray | None = None) -> None:
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        self.label_map = label_map
        steps: list[Any] = (
            [v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
             v2.RandomHorizontalFlip()]
            if train
            else [v2.Resize(size, antialias=True)]
        )
        self.pipeline = v2.Compose(
            steps
            + [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
               v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        )

    def __call__(self, image: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as tvf

        labels = np.array(target, dtype=np.uint8)
        if self.label_map is not None:
            labels = self.label_map[labels]
        mask = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(labels))[None])
        picture, mask = self.pipeline(tvf.to_image(image.convert("RGB")), mask)
        return picture.as_subclass(torch.Tensor), mask[0].as_subclass(torch.Tensor).long()


def _missing_files(paths: list[str]) -> list[str]:
    return [p for p in paths if not Path(p).is_file()]


def load_voc(
    root: str | Path,
    *,
    year: str = "2012",
    image_size: int | tuple[int, int] = 256,
    augment: bool = True,
) -> SegmentationData:
    """PASCAL VOC segmentation from a local folder, through torchvision's VOCSegmentation.

    The ``train`` image set is the train split and ``val`` the valid split (there is no
    public test mask). Images are resized to ``image_size`` (training images: a random
    crop of 50-100% of the area, resized, and a horizontal flip, unless ``augment=False``)
    and normalised with ImageNet's statistics; masks keep VOC's 255 on object borders.

    Data set: Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV
    2010, https://doi.org/10.1007/s11263-009-0275-4.

    Args:
        root: The folder holding ``VOCdevkit`` (as extracted from
            ``VOCtrainval_11-May-2012.tar``). Nothing is downloaded.
        year: The challenge year, ``"2007"`` to ``"2012"``.
        image_size: Height and width (an int or a pair) of the images.
        augment: Whether to augment the training split.

    Raises:
        DatasetError: The folder or one of the files the image sets list is missing.
    """
    from torchvision.datasets import VOCSegmentation
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    if year not in DATASET_YEAR_DICT or year == "2007-test":
        raise DatasetError(f"year must be one of 2007..2012, got {year!r}.")
    size = _size(image_size)
    root = Path(root).expanduser()
    base = root / DATASET_YEAR_DICT[year]["base_dir"]
    layout = (
        f"root/{DATASET_YEAR_DICT[year]['base_dir']}/ with JPEGImages/, SegmentationClass/ and "
        "ImageSets/Segmentation/train.txt and val.txt (extract "
        f"{DATASET_YEAR_DICT[year]['filename']} into root)"
    )
    if not root.is_dir():
        raise DatasetError(f"PASCAL VOC folder {str(root)!r} does not exist; expected {layout}.")
    if not base.is_dir():
        hint = ""
        if (root / "JPEGImages").is_dir() or (root / f"VOC{year}").is_dir():
            hint = " It looks like an inner folder: pass the folder that holds VOCdevkit."
        raise DatasetError(f"PASCAL VOC {year} was not found in {str(root)!r}: expected "
                           f"{layout}.{hint}")
    for part in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation/train.txt",
                 "ImageSets/Segmentation/val.txt"):
        if not (base / part).exists():
            raise DatasetError(f"{str(base / part)!r} is missing; expected {layout}.")

    def split(image_set: str, train: bool) -> VOCSegmentation:
        dataset = VOCSegmentation(str(root), year=year, image_set=image_set, download=False,
                                  transforms=_PairTransform(size, train and augment))
        if not dataset.images:
            raise DatasetError(
                f"ImageSets/Segmentation/{image_set}.txt in {str(base)!r} lists no image."
            )
        missing = _missing_files(dataset.images + dataset.masks)
        if missing:
            raise DatasetError(
                f"{len(missing)} file(s) listed in ImageSets/Segmentation/{image_set}.txt are "
                f"missing, e.g. {missing[0]!r}; re-extract the archive ({layout})."
            )
        return dataset

    return SegmentationData(
        split("train", True),
        split("val", False),
        None,
        len(VOC_CLASSES),
        3,
        size,
        name=f"voc{year}",
        class_names=VOC_CLASSES,
    )


def _cityscapes_label_map() -> tuple[np.ndarray, tuple[str, ...]]:
    from torchvision.datasets import Cityscapes

    label_map = np.full(256, 255, dtype=np.uint8)
    names: dict[int, str] = {}
    for c in Cityscapes.classes:
        if 0 <= c.id < 256 and not c.ignore_in_eval and 0 <= c.train_id < 255:
            label_map[c.id] = c.train_id
            names[c.train_id] = c.name
    return label_map, tuple(names[i] for i in sorted(names))


def load_cityscapes(
    root: str | Path,
    *,
    image_size: int | tuple[int, int] = (256, 512),
    augment: bool = True,
) -> SegmentationData:
    """Cityscapes (fine annotations) from a local folder, through torchvision's Cityscapes.

    The ``train`` split trains and ``val`` is the valid split. Masks are mapped from
    Cityscapes' label ids to the 19 evaluated classes (train ids); every other label becomes
    255, the ignore index. Images are resized to ``image_size`` (training: a random crop
    of 50-100% of the area and a horizontal flip, unless ``augment=False``) and normalised
    with ImageNet's statistics.

    Data set: Cordts et al., "The Cityscapes Dataset for Semantic Urban Scene
    Understanding", CVPR 2016, https://arxiv.org/abs/1604.01685.

    Args:
        root: The folder holding ``leftImg8bit`` and ``gtFine`` (from
            ``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``). Nothing is
            downloaded.
        image_size: Height and width (an int or a pair) of the images.
        augment: Whether to augment the training split.

    Raises:
        DatasetError: A folder or a mask is missing.
    """
    from torchvision.datasets import Cityscapes

    size = _size(image_size)
    root = Path(root).expanduser()
    layout = (
        "root/leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png and "
        "root/gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png (extract "
        "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip into root)"
    )
    if not root.is_dir():
        raise DatasetError(f"Cityscapes folder {str(root)!r} does not exist; expected {layout}.")
    for part in ("leftImg8bit/train", "leftImg8bit/val", "gtFine/train", "gtFine/val"):
        if not (root / part).is_dir():
            raise DatasetError(
                f"Cityscapes was not found in {str(root)!r}: {part}/ is missing; expected "
                f"{layout}."
            )
    label_map, names = _cityscapes_label_map()

    def split(name: str, train: bool) -> Cityscapes:
        try:
            dataset = Cityscapes(str(root), split=name, mode="fine", target_type="semantic",
                                 transforms=_PairTransform(size, train and augment, label_map))
        except (RuntimeError, OSError) as error:
            raise DatasetError(
                f"Cityscapes in {str(root)!r} could not be read ({error}); expected {layout}."
            ) from None
        if not dataset.images:
            raise DatasetError(f"No image under {str(root / 'leftImg8bit' / name)!r}; "
                               f"expected {layout}.")
        missing = _missing_files([t[0] for t in dataset.targets])
        if missing:
            raise DatasetError(
                f"{len(missing)} mask(s) of the {name} split are missing, e.g. "
                f"{missing[0]!r}; expected {layout}."
            )
        return dataset

    return SegmentationData(
        split("train", True),
        split("val", False),
        None,
        len(names),
        3,
        size,
        name="cityscapes",
        class_names=names,
    )
