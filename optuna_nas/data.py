"""Image-classification data: scikit-learn's bundled digits, CIFAR-10, and image folders.

Every loader returns an :class:`ImageData` with train, valid and (where there is one) test
splits. Nothing is downloaded unless the caller asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from optuna_nas.errors import DatasetError

__all__ = ["ImageData", "load_cifar10", "load_digits", "load_image_folder"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageData:
    """Train, validation and test splits of an image-classification data set.

    Each split yields ``(image tensor C x H x W, integer label)`` pairs.

    Args:
        train: The split the weights are trained on.
        valid: The split that trials report and searches select on.
        test: The held-out split, or ``None``.
        num_classes: Number of classes.
        in_channels: Image channels.
        image_size: Image height (and width).
        name: A short name for messages.
    """

    train: Dataset[Any]
    valid: Dataset[Any]
    test: Dataset[Any] | None
    num_classes: int
    in_channels: int
    image_size: int
    name: str = "data"


def load_digits(
    *, seed: int = 0, valid_fraction: float = 0.2, test_fraction: float = 0.2
) -> ImageData:
    """scikit-learn's bundled handwritten digits: 1,797 real 8x8 grey images, 10 classes.

    The data ships inside scikit-learn, so nothing is downloaded. Splits are stratified by
    class with a fixed seed; pixels are standardised with the training split's statistics.

    Args:
        seed: Seed of the split.
        valid_fraction: Share of the images in the validation split.
        test_fraction: Share of the images in the test split.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    fractions_ok = 0 < valid_fraction and 0 < test_fraction and valid_fraction + test_fraction < 1
    if not fractions_ok:
        raise DatasetError(
            "valid_fraction and test_fraction must be in (0, 1) and sum to less than 1, got "
            f"{valid_fraction} and {test_fraction}."
        )
    bunch = sklearn_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for label in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == label))
        n_valid = round(len(index) * valid_fraction)
        n_test = round(len(index) * test_fraction)
        splits["valid"] += index[:n_valid].tolist()
        splits["test"] += index[n_valid : n_valid + n_test].tolist()
        splits["train"] += index[n_valid + n_test :].tolist()
    mean = float(images[splits["train"]].mean())
    std = float(images[splits["train"]].std())
    tensor = torch.from_numpy((images - mean) / std).unsqueeze(1)
    target = torch.from_numpy(labels)

    def subset(name: str) -> TensorDataset:
        index = torch.tensor(sorted(splits[name]))
        return TensorDataset(tensor[index], target[index])

    return ImageData(
        subset("train"), subset("valid"), subset("test"), 10, 1, 8, name="digits"
    )


def _transforms(image_size: int, augment: bool, resize: bool) -> Any:
    from torchvision import transforms

    steps: list[Any] = []
    if resize:
        steps.append(transforms.Resize((image_size, image_size)))
    if augment:
        steps += [
            transforms.RandomCrop(image_size, padding=max(1, image_size // 8)),
            transforms.RandomHorizontalFlip(),
        ]
    steps += [transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    return transforms.Compose(steps)


def _split_indices(n: int, n_valid: int, seed: int) -> tuple[list[int], list[int]]:
    order = np.random.default_rng(seed).permutation(n).tolist()
    return sorted(order[n_valid:]), sorted(order[:n_valid])


def load_cifar10(
    root: str | Path,
    *,
    download: bool = False,
    valid_size: int = 5000,
    seed: int = 0,
    augment: bool = True,
) -> ImageData:
    """CIFAR-10 from a local folder, through torchvision's dataset class.

    The 50,000 training images are split into train and valid (``valid_size`` images, a
    fixed seed); the 10,000 test images form the test split. Training images are
    augmented (random crop with padding 4, horizontal flip) unless ``augment=False``.

    Args:
        root: The folder holding ``cifar-10-batches-py`` (as extracted from
            ``cifar-10-python.tar.gz``).
        download: Download the archive into ``root`` if it is missing. Off by default:
            nothing is fetched unless asked for.
        valid_size: Training images held out for validation.
        seed: Seed of the train/valid split.
        augment: Whether to augment the training split.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser()
    if not download and not (root / "cifar-10-batches-py").is_dir():
        raise DatasetError(
            f"CIFAR-10 was not found in {str(root)!r}: expected the folder "
            f"'{root / 'cifar-10-batches-py'}' (extract cifar-10-python.tar.gz there), or "
            "pass download=True to fetch it."
        )
    try:
        train_aug = CIFAR10(str(root), train=True, download=download,
                            transform=_transforms(32, augment, resize=False))
        train_plain = CIFAR10(str(root), train=True, transform=_transforms(32, False, False))
        test = CIFAR10(str(root), train=False, transform=_transforms(32, False, False))
    except RuntimeError as error:
        raise DatasetError(
            f"CIFAR-10 in {str(root)!r} is incomplete or corrupted ({error}); re-extract "
            "cifar-10-python.tar.gz there or pass download=True."
        ) from None
    if not 0 < valid_size < len(train_aug):
        raise DatasetError(f"valid_size must be in (0, {len(train_aug)}), got {valid_size}.")
    train_index, valid_index = _split_indices(len(train_aug), valid_size, seed)
    return ImageData(
        Subset(train_aug, train_index),
        Subset(train_plain, valid_index),
        test,
        10,
        3,
        32,
        name="cifar10",
    )


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_image_folder(
    root: str | Path,
    *,
    image_size: int = 32,
    valid_fraction: float = 0.1,
    seed: int = 0,
    augment: bool = True,
) -> ImageData:
    """Any image-classification folder, through torchvision's ImageFolder.

    Two layouts are accepted:

    * ``root/train/<class>/<image>`` and ``root/valid/<class>/<image>`` (or ``val``), with an
      optional ``root/test/<class>/<image>``;
    * ``root/<class>/<image>``: split into train and valid with ``valid_fraction``.

    Images are resized to ``image_size`` and get CIFAR-10's transforms (random crop with
    padding, horizontal flip, normalisation). Hidden folders (names starting with a dot)
    are not classes.

    Args:
        root: The data set's folder.
        image_size: Height and width the images are resized to.
        valid_fraction: For the single-folder layout, the share of images held out.
        seed: Seed of the split for the single-folder layout.
        augment: Whether to augment the training split.
    """
    from torchvision.datasets import ImageFolder

    root = Path(root).expanduser()
    layout = (
        "root/train/<class>/<image> with root/valid/<class>/<image> (or val), or "
        "root/<class>/<image>"
    )
    if not root.is_dir():
        raise DatasetError(f"Image folder {str(root)!r} does not exist; expected {layout}.")

    class _VisibleImageFolder(ImageFolder):  # type: ignore[misc]
        # Hidden folders (.ipynb_checkpoints, .git, ...) are not classes.
        def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
            classes = _class_folders(Path(directory))
            return classes, {name: i for i, name in enumerate(classes)}

    def folder(path: Path, train: bool) -> Any:
        classes = _class_folders(path)
        if not classes:
            raise DatasetError(
                f"{str(path)!r} has no class folders; expected {layout}."
            )
        try:
            return _VisibleImageFolder(
                str(path), transform=_transforms(image_size, augment and train, resize=True)
            )
        except (FileNotFoundError, RuntimeError) as error:
            raise DatasetError(
                f"No images found under {str(path)!r} ({error}); expected {layout}, with "
                f"files ending in one of {', '.join(IMAGE_SUFFIXES)}."
            ) from None

    splits = {name: root / name for name in ("train", "valid", "val", "test")}
    if splits["train"].is_dir():
        valid_dir = next((splits[n] for n in ("valid", "val") if splits[n].is_dir()), None)
        if valid_dir is None:
            raise DatasetError(
                f"{str(root)!r} has a train folder but no valid (or val) folder; expected "
                f"{layout}."
            )
        train = folder(splits["train"], True)
        valid = folder(valid_dir, False)
        test = folder(splits["test"], False) if splits["test"].is_dir() else None
        for name, other in (("valid", valid), ("test", test)):
            if other is not None and other.classes != train.classes:
                raise DatasetError(
                    f"The {name} classes {other.classes} differ from the train classes "
                    f"{train.classes} in {str(root)!r}; every split needs the same class "
                    f"folders, as in {layout}."
                )
        train_set: Dataset[Any] = train
        valid_set: Dataset[Any] = valid
        classes = train.classes
    else:
        for name in ("valid", "val"):
            if splits[name].is_dir():
                raise DatasetError(
                    f"{str(root)!r} has a {name} folder but no train folder; expected "
                    f"{layout}."
                )
        if not 0 < valid_fraction < 1:
            raise DatasetError(f"valid_fraction must be in (0, 1), got {valid_fraction}.")
        train = folder(root, True)
        plain = folder(root, False)
        n_valid = max(1, round(len(train) * valid_fraction))
        if n_valid >= len(train):
            raise DatasetError(
                f"{str(root)!r} has {len(train)} image(s), too few to hold out a validation "
                "split; add images or use the train/valid layout."
            )
        train_index, valid_index = _split_indices(len(train), n_valid, seed)
        train_set, valid_set, test = Subset(train, train_index), Subset(plain, valid_index), None
        classes = train.classes
    sample, _ = valid_set[0]
    return ImageData(
        train_set,
        valid_set,
        test,
        len(classes),
        int(sample.shape[0]),
        image_size,
        name=root.name,
    )
