"""The data loaders: bundled digits, image folders (generated PNGs) and CIFAR-10's folder
checks. Nothing here downloads anything."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import Dataset, Subset

from optuna_nas.data import ImageData, load_cifar10, load_digits, load_image_folder
from optuna_nas.errors import DatasetError, NasError
from optuna_nas.spaces import NasBench201Space
from optuna_nas.training import seed_everything, train

LAYOUT_HINT = "root/train/<class>/<image>"

# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_digits(seed=0)


def _tensors(dataset: Dataset[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = dataset.tensors  # type: ignore[attr-defined]
    return images, labels


def test_digits_shapes_and_metadata(digits: ImageData) -> None:
    assert (digits.num_classes, digits.in_channels, digits.image_size) == (10, 1, 8)
    assert digits.name == "digits"
    assert digits.test is not None
    for split in (digits.train, digits.valid, digits.test):
        image, label = split[0]
        assert image.shape == (1, 8, 8) and image.dtype == torch.float32
        assert label.dtype == torch.int64
        assert set(_tensors(split)[1].tolist()) == set(range(10))
    # Standardised with the training split's statistics.
    train_images = _tensors(digits.train)[0]
    assert float(train_images.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(train_images.std()) == pytest.approx(1.0, abs=1e-3)


def test_digits_splits_are_disjoint_and_cover_all_1797_images(digits: ImageData) -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    assert digits.test is not None
    splits = [_tensors(s) for s in (digits.train, digits.valid, digits.test)]
    assert sum(len(labels) for _, labels in splits) == 1797
    images = torch.cat([i for i, _ in splits])
    labels = torch.cat([lab for _, lab in splits])
    # Undo the standardisation: the raw pixels are the integers 0..16, both extremes occur.
    low, high = float(images.min()), float(images.max())
    pixels = torch.round((images - low) / (high - low) * 16).to(torch.int64)
    assert torch.allclose((images - low) / (high - low) * 16, pixels.float(), atol=1e-3)
    loaded = Counter(
        (tuple(p.flatten().tolist()), int(lab)) for p, lab in zip(pixels, labels, strict=True)
    )
    bunch = sklearn_digits()
    original = Counter(
        (tuple(np.asarray(img, dtype=np.int64).flatten().tolist()), int(lab))
        for img, lab in zip(bunch.images, bunch.target, strict=True)
    )
    assert loaded == original  # each image exactly once over the three splits


def test_digits_splits_are_stratified(digits: ImageData) -> None:
    from sklearn.datasets import load_digits as sklearn_digits

    per_class = Counter(sklearn_digits().target.tolist())
    assert digits.test is not None
    for split, fraction in ((digits.valid, 0.2), (digits.test, 0.2), (digits.train, 0.6)):
        counts = Counter(_tensors(split)[1].tolist())
        for label, total in per_class.items():
            assert abs(counts[label] - total * fraction) <= 1.5


def test_digits_fractions_set_the_split_sizes() -> None:
    data = load_digits(valid_fraction=0.1, test_fraction=0.3)
    assert data.test is not None
    assert len(_tensors(data.valid)[1]) == pytest.approx(180, abs=10)
    assert len(_tensors(data.test)[1]) == pytest.approx(539, abs=10)


def test_digits_are_deterministic_per_seed(digits: ImageData) -> None:
    again = load_digits(seed=0)
    other = load_digits(seed=1)
    for name in ("train", "valid", "test"):
        a, b = _tensors(getattr(digits, name)), _tensors(getattr(again, name))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(_tensors(digits.valid)[0], _tensors(other.valid)[0])


@pytest.mark.parametrize(
    ("valid", "test"), [(0.0, 0.2), (0.2, 0.0), (-0.1, 0.2), (0.5, 0.5), (0.7, 0.4), (1.0, 0.1)]
)
def test_digits_bad_fractions_raise(valid: float, test: float) -> None:
    with pytest.raises(DatasetError, match="valid_fraction and test_fraction"):
        load_digits(valid_fraction=valid, test_fraction=test)


# --------------------------------------------------------------------------- image folders

CLASS_COLOURS = {"cat": (220, 30, 30), "dog": (30, 30, 220), "owl": (30, 200, 30)}


def _write_images(folder: Path, colour: tuple[int, int, int], count: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        noise = rng.integers(-20, 20, size=(12, 12, 3))
        pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"img{i}.png")


def _make_split_layout(
    root: Path, counts: dict[str, dict[str, int]], valid_name: str = "valid"
) -> None:
    for split, per_class in counts.items():
        name = valid_name if split == "valid" else split
        for cls, count in per_class.items():
            _write_images(root / name / cls, CLASS_COLOURS[cls], count, seed=count)


def _label_counts(dataset: Dataset[Any]) -> Counter[int]:
    return Counter(int(dataset[i][1]) for i in range(len(dataset)))  # type: ignore[arg-type]


@pytest.mark.parametrize("valid_name", ["valid", "val"])
def test_image_folder_train_valid_layout(tmp_path: Path, valid_name: str) -> None:
    _make_split_layout(
        tmp_path,
        {
            "train": {"cat": 4, "dog": 3, "owl": 2},
            "valid": {"cat": 2, "dog": 1, "owl": 1},
        },
        valid_name,
    )
    data = load_image_folder(tmp_path, image_size=8)
    assert (data.num_classes, data.in_channels, data.image_size) == (3, 3, 8)
    assert data.name == tmp_path.name
    assert data.test is None
    assert _label_counts(data.train) == {0: 4, 1: 3, 2: 2}
    assert _label_counts(data.valid) == {0: 2, 1: 1, 2: 1}
    image, _ = data.train[0]
    assert image.shape == (3, 8, 8)
    # The validation split is never augmented: the same tensor every time.
    assert torch.equal(data.valid[0][0], data.valid[0][0])


def test_image_folder_with_a_test_split(tmp_path: Path) -> None:
    _make_split_layout(
        tmp_path,
        {
            "train": {"cat": 2, "dog": 2},
            "valid": {"cat": 1, "dog": 1},
            "test": {"cat": 3, "dog": 1},
        },
    )
    data = load_image_folder(tmp_path, image_size=16)
    assert data.test is not None
    assert _label_counts(data.test) == {0: 3, 1: 1}
    assert data.test[0][0].shape == (3, 16, 16)


def test_image_folder_single_layout_is_split(tmp_path: Path) -> None:
    for cls, count in (("cat", 5), ("dog", 6), ("owl", 4)):
        _write_images(tmp_path / cls, CLASS_COLOURS[cls], count)
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    (tmp_path / "notes.txt").write_text("not an image folder")
    data = load_image_folder(tmp_path, image_size=10, valid_fraction=0.2, seed=3)
    assert (data.num_classes, data.in_channels, data.image_size) == (3, 3, 10)
    assert data.test is None
    assert isinstance(data.train, Subset) and isinstance(data.valid, Subset)
    assert len(data.train) == 12 and len(data.valid) == 3
    assert not set(data.train.indices) & set(data.valid.indices)
    assert sorted([*data.train.indices, *data.valid.indices]) == list(range(15))
    total = _label_counts(data.train) + _label_counts(data.valid)
    assert total == {0: 5, 1: 6, 2: 4}
    assert data.valid[0][0].shape == (3, 10, 10)
    again = load_image_folder(tmp_path, image_size=10, valid_fraction=0.2, seed=3)
    assert isinstance(again.valid, Subset)
    assert again.valid.indices == data.valid.indices


def test_image_folder_without_augmentation_is_repeatable(tmp_path: Path) -> None:
    _write_images(tmp_path / "cat", CLASS_COLOURS["cat"], 3)
    _write_images(tmp_path / "dog", CLASS_COLOURS["dog"], 3)
    data = load_image_folder(tmp_path, image_size=8, augment=False, valid_fraction=0.3)
    for i in range(len(data.train)):  # type: ignore[arg-type]
        assert torch.equal(data.train[i][0], data.train[i][0])


def test_image_folder_data_trains_a_tiny_network(tmp_path: Path) -> None:
    _make_split_layout(tmp_path, {"train": {"cat": 6, "dog": 6}, "valid": {"cat": 2, "dog": 2}})
    data = load_image_folder(tmp_path, image_size=8)
    space = NasBench201Space()
    seed_everything(0)
    model = space.build(
        space.sample(0),
        channels=4,
        cells_per_stage=1,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
    )
    accuracy = train(model, data, epochs=1, batch_size=4, device="cpu")
    assert 0.0 <= accuracy <= 1.0


def _assert_layout_error(root: Path, match: str, **kwargs: Any) -> DatasetError:
    with pytest.raises(DatasetError, match=match) as info:
        load_image_folder(root, **kwargs)
    assert LAYOUT_HINT in str(info.value) or "valid_fraction" in str(info.value)
    assert isinstance(info.value, NasError) and isinstance(info.value, ValueError)
    return info.value


def test_image_folder_missing_root(tmp_path: Path) -> None:
    _assert_layout_error(tmp_path / "nowhere", "does not exist")


def test_image_folder_empty_root(tmp_path: Path) -> None:
    _assert_layout_error(tmp_path, "no class folders")


def test_image_folder_only_hidden_folders(tmp_path: Path) -> None:
    _write_images(tmp_path / ".cache", CLASS_COLOURS["cat"], 2)
    _assert_layout_error(tmp_path, "no class folders")


def test_image_folder_train_without_valid(tmp_path: Path) -> None:
    _make_split_layout(tmp_path, {"train": {"cat": 2, "dog": 2}})
    _assert_layout_error(tmp_path, "train folder but no valid")


def test_image_folder_valid_without_train(tmp_path: Path) -> None:
    _make_split_layout(tmp_path, {"valid": {"cat": 2, "dog": 2}})
    _assert_layout_error(tmp_path, "valid folder but no train")


def test_image_folder_class_folder_without_images(tmp_path: Path) -> None:
    _write_images(tmp_path / "cat", CLASS_COLOURS["cat"], 3)
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "readme.txt").write_text("no pictures here")
    error = _assert_layout_error(tmp_path, "No images found")
    assert "dog" in str(error) and ".png" in str(error)


def test_image_folder_split_class_folders_without_images(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "valid" / "cat").mkdir(parents=True)
    _assert_layout_error(tmp_path, "No images found")


def test_image_folder_mismatched_classes(tmp_path: Path) -> None:
    _make_split_layout(tmp_path, {"train": {"cat": 2, "dog": 2}, "valid": {"cat": 1, "owl": 1}})
    _assert_layout_error(tmp_path, "differ from the train classes")


def test_image_folder_mismatched_test_classes(tmp_path: Path) -> None:
    _make_split_layout(
        tmp_path,
        {"train": {"cat": 2, "dog": 2}, "valid": {"cat": 1, "dog": 1}, "test": {"cat": 1}},
    )
    _assert_layout_error(tmp_path, "test classes")


def test_image_folder_too_few_images(tmp_path: Path) -> None:
    _write_images(tmp_path / "cat", CLASS_COLOURS["cat"], 1)
    with pytest.raises(DatasetError, match="too few .* use the train/valid layout"):
        load_image_folder(tmp_path)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5])
def test_image_folder_bad_valid_fraction(tmp_path: Path, fraction: float) -> None:
    _write_images(tmp_path / "cat", CLASS_COLOURS["cat"], 4)
    _assert_layout_error(tmp_path, "valid_fraction", valid_fraction=fraction)


# --------------------------------------------------------------------------- CIFAR-10


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        pytest.fail("load_cifar10 tried to download CIFAR-10")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", refuse)


@pytest.mark.usefixtures("no_download")
def test_cifar10_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert "cifar-10-batches-py" in message and "download=True" in message
    assert not (tmp_path / "cifar-10-batches-py").exists()


@pytest.mark.usefixtures("no_download")
def test_cifar10_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.usefixtures("no_download")
@pytest.mark.parametrize("files", [["data_batch_1"], ["data_batch_1", "batches.meta"], []])
def test_cifar10_corrupt_or_partial_folder(tmp_path: Path, files: list[str]) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(b"not a pickle")
    with pytest.raises(DatasetError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert "incomplete or corrupted" in message and "cifar-10-python.tar.gz" in message
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # nothing fetched


class FakeCifar:
    """Stands in for torchvision's CIFAR10 class: a few random 32x32 RGB images."""

    calls: list[dict[str, Any]] = []

    def __init__(
        self, root: str, train: bool = True, transform: Any = None, download: bool = False
    ) -> None:
        FakeCifar.calls.append({"root": root, "train": train, "download": download})
        rng = np.random.default_rng(0 if train else 1)
        self.data = rng.integers(0, 256, size=(40 if train else 10, 32, 32, 3), dtype=np.uint8)
        self.targets = [i % 10 for i in range(len(self.data))]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.transform(Image.fromarray(self.data[index]))
        return image, self.targets[index]


def test_cifar10_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    FakeCifar.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCifar)
    data = load_cifar10(tmp_path, valid_size=10, seed=1)
    assert not any(call["download"] for call in FakeCifar.calls)
    assert (data.num_classes, data.in_channels, data.image_size, data.name) == (
        10,
        3,
        32,
        "cifar10",
    )
    assert isinstance(data.train, Subset) and isinstance(data.valid, Subset)
    assert len(data.train) == 30 and len(data.valid) == 10
    assert data.test is not None and len(data.test) == 10  # type: ignore[arg-type]
    assert sorted([*data.train.indices, *data.valid.indices]) == list(range(40))
    assert data.valid[0][0].shape == (3, 32, 32)
    assert torch.equal(data.valid[0][0], data.valid[0][0])  # not augmented
    with pytest.raises(DatasetError, match="valid_size"):
        load_cifar10(tmp_path, valid_size=40)
