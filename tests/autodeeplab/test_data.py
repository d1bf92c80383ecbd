"""Segmentation data: the generated shapes set (determinism, layout, errors) and the VOC
and Cityscapes loaders on tiny folders written here (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from optuna_nas.autodeeplab import (
    SHAPES,
    load_cityscapes,
    load_voc,
    synthetic_segmentation,
)
from optuna_nas.errors import DatasetError, NasError


def test_synthetic_set_is_deterministic_and_independent_of_n() -> None:
    a = synthetic_segmentation(20, size=16, seed=3)
    b = synthetic_segmentation(20, size=16, seed=3)
    for split in ("train", "valid", "test"):
        for x, y in zip(getattr(a, split).tensors, getattr(b, split).tensors, strict=True):
            assert torch.equal(x, y)
    bigger = synthetic_segmentation(40, size=16, seed=3)
    assert torch.equal(bigger.train[0][0], a.train[0][0])
    other = synthetic_segmentation(20, size=16, seed=4)
    assert not torch.equal(other.train[0][0], a.train[0][0])


def test_synthetic_layout_and_classes() -> None:
    data = synthetic_segmentation(50, size=24, num_classes=4, seed=0)
    assert (len(data.train), len(data.valid), len(data.test)) == (30, 10, 10)  # type: ignore[arg-type]
    assert (data.num_classes, data.in_channels, data.image_size) == (4, 3, (24, 24))
    assert data.class_names == ("background", *SHAPES[:3])
    image, mask = data.train[0]
    assert image.shape == (3, 24, 24) and image.dtype == torch.float32
    assert mask.shape == (24, 24) and mask.dtype == torch.int64
    masks = data.train.tensors[1]  # type: ignore[attr-defined]
    assert set(masks.unique().tolist()) == {0, 1, 2, 3}
    background = float((masks == 0).float().mean())
    assert 0.5 < background < 0.95  # shapes cover a fair share, the background the most
    images = data.train.tensors[0]  # type: ignore[attr-defined]
    assert abs(float(images.mean())) < 0.5 and 0.5 < float(images.std()) < 1.5
    grey = synthetic_segmentation(10, size=16, in_channels=1, test_fraction=0.0)
    assert grey.test is None and grey.train[0][0].shape == (1, 16, 16)


def test_a_shapes_class_is_its_geometry_not_its_colour() -> None:
    """Colours vary as much within a class as anywhere, and every class has about the same
    mean colour: only the outline tells the classes apart."""
    data = synthetic_segmentation(200, size=24, num_classes=4, seed=2, test_fraction=0.0)
    images, masks = data.train.tensors  # type: ignore[attr-defined]
    colours = {
        c: torch.stack([images[i][:, masks[i] == c].mean(1)
                        for i in range(len(images)) if bool((masks[i] == c).any())])
        for c in (1, 2, 3)
    }
    for c, of_class in colours.items():
        assert len(of_class) > 40
        assert float(of_class.std(0).min()) > 0.9, c  # standardised images: std about 1
        for other in colours.values():
            assert float((of_class.mean(0) - other.mean(0)).abs().max()) < 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_classes": 7}, "num_classes must be 2..6"), ({"n": 3}, "too small"),
     ({"size": 4}, "at least 8"), ({"valid_fraction": 0.9}, "sum below 1")],
)
def test_synthetic_bad_arguments(kwargs: dict[str, int], match: str) -> None:
    options = {"n": 20, **kwargs}
    with pytest.raises(DatasetError, match=match):
        synthetic_segmentation(**options)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ VOC


def _write_voc(root: Path, names: dict[str, list[str]]) -> Path:
    base = root / "VOCdevkit" / "VOC2012"
    (base / "JPEGImages").mkdir(parents=True)
    (base / "SegmentationClass").mkdir()
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, files in names.items():
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(files))
        for name in files:
            Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(
                base / "JPEGImages" / f"{name}.jpg")
            labels = np.zeros((20, 30), dtype=np.uint8)
            labels[5:15, 8:20] = 15  # a "person"
            labels[4, 8:20] = 255  # its border
            mask = Image.fromarray(labels, mode="P")
            mask.putpalette([0, 0, 0] * 256)
            mask.save(base / "SegmentationClass" / f"{name}.png")
    return base


def test_missing_voc_folder_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="VOCdevkit/VOC2012/ with JPEGImages") as info:
        load_voc(tmp_path / "nowhere")
    assert "does not exist" in str(info.value) and isinstance(info.value, NasError)
    (tmp_path / "VOC2012" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(DatasetError, match="pass the folder that holds VOCdevkit"):
        load_voc(tmp_path)


def test_voc_incomplete_folders_are_named(tmp_path: Path) -> None:
    base = _write_voc(tmp_path, {"train": ["a"], "val": ["b"]})
    (base / "SegmentationClass" / "b.png").unlink()
    with pytest.raises(DatasetError, match="1 file.*val.txt are missing"):
        load_voc(tmp_path)
    (base / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DatasetError, match="val.txt' is missing"):
        load_voc(tmp_path)


def test_voc_loads_pairs_with_nearest_masks(tmp_path: Path) -> None:
    _write_voc(tmp_path, {"train": ["a", "b"], "val": ["c"]})
    data = load_voc(tmp_path, image_size=(16, 24), augment=False)
    assert (data.num_classes, data.image_size, len(data.train)) == (21, (16, 24), 2)  # type: ignore[arg-type]
    assert data.class_names[15] == "person" and data.test is None
    image, mask = data.valid[0]
    assert image.shape == (3, 16, 24) and image.dtype == torch.float32
    assert mask.shape == (16, 24) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) <= {0, 15, 255} and 15 in mask.tolist()[8]
    augmented = load_voc(tmp_path, image_size=12)
    image, mask = augmented.train[0]
    assert image.shape == (3, 12, 12) and set(mask.unique().tolist()) <= {0, 15, 255}


# ----------------------------------------------------------------------------- Cityscapes


def _write_cityscapes(root: Path) -> None:
    for split in ("train", "val"):
        images = root / "leftImg8bit" / split / "aachen"
        masks = root / "gtFine" / split / "aachen"
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        stem = f"aachen_000000_00001{9 if split == 'train' else 8}"
        Image.fromarray(np.full((16, 32, 3), 128, dtype=np.uint8)).save(
            images / f"{stem}_leftImg8bit.png")
        labels = np.zeros((16, 32), dtype=np.uint8)  # 0: unlabeled (ignored)
        labels[8:] = 7  # road: train id 0
        labels[8:, 16:] = 26  # car: train id 13
        Image.fromarray(labels).save(masks / f"{stem}_gtFine_labelIds.png")


def test_missing_cityscapes_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="leftImg8bit/.*gtFine"):
        load_cityscapes(tmp_path / "nowhere")
    (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match="leftImg8bit/val/ is missing"):
        load_cityscapes(tmp_path)


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path: Path) -> None:
    _write_cityscapes(tmp_path)
    data = load_cityscapes(tmp_path, image_size=(8, 16), augment=False)
    assert data.num_classes == 19 and data.class_names[0] == "road"
    assert data.class_names[13] == "car"
    _, mask = data.train[0]
    assert mask.shape == (8, 16)
    assert mask[0].tolist() == [255] * 16
    assert mask[-1].tolist() == [0] * 8 + [13] * 8
