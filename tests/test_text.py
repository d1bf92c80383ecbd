"""Text corpora: Penn Treebank's file format, the toy text, batching, and the loader's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from optuna_nas.errors import DatasetError
from optuna_nas.text import (
    EOS,
    UNK,
    batchify,
    get_batch,
    load_text_corpus,
    make_toy_text,
    write_text_corpus,
)

SINGULAR_VERBS = {"sees", "likes", "follows", "finds"}
PLURAL_VERBS = {"see", "like", "follow", "find"}
SINGULAR_NOUNS = {"cat", "dog", "bird", "child", "teacher"}
PLURAL_NOUNS = {"cats", "dogs", "birds", "children", "teachers"}


def _write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(text, encoding="utf-8")
    return folder


def test_ptb_format(tmp_path: Path) -> None:
    # The PTB files' own layout: a space before and after each line, <unk> for rare words.
    folder = _write(
        tmp_path / "penn",
        ptb_train_txt=" the cat sat \n\n a <unk> cat \n",
        ptb_valid_txt=" the dog sat \n",
        ptb_test_txt=" a cat \n",
    )
    corpus = load_text_corpus(folder)
    assert corpus.vocabulary == ("the", "cat", "sat", EOS, "a", UNK)
    assert corpus.vocab_size == 6
    assert corpus.name == "penn"
    # A blank line is an empty sentence: just <eos>, as in the reference data.py.
    assert corpus.decode(corpus.train) == ["the", "cat", "sat", EOS, EOS, "a", UNK, "cat", EOS]
    assert corpus.train.dtype == torch.int64
    # "dog" is not in train: it becomes <unk>, the Penn Treebank convention.
    assert corpus.decode(corpus.valid) == ["the", UNK, "sat", EOS]
    assert corpus.test is not None and corpus.decode(corpus.test) == ["a", "cat", EOS]
    assert corpus.encode(["cat", "zebra"]).tolist() == [1, 5]


def test_test_file_is_optional_and_prefix(tmp_path: Path) -> None:
    folder = _write(tmp_path, train_txt="a b\n", valid_txt="b a\n")
    corpus = load_text_corpus(folder, prefix="")
    assert corpus.test is None
    assert corpus.decode(corpus.valid) == ["b", "a", EOS]
    with pytest.raises(DatasetError, match="Pass prefix=''"):
        load_text_corpus(folder)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist; expected a folder with ptb.train"):
        load_text_corpus(tmp_path / "nowhere")


@pytest.mark.parametrize("missing", ["ptb.train.txt", "ptb.valid.txt"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    files = {"ptb_train_txt": "a b\n", "ptb_valid_txt": "a b\n"}
    del files[missing.replace(".", "_")]
    folder = _write(tmp_path, **files)
    with pytest.raises(DatasetError, match=f"has no {missing}; expected ptb.train.txt"):
        load_text_corpus(folder)


@pytest.mark.parametrize("text", ["", "\n\n", "   \n \t \n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    folder = _write(tmp_path, ptb_train_txt="a b\n", ptb_valid_txt=text)
    with pytest.raises(DatasetError, match="ptb.valid.txt' has no words; a Penn Treebank"):
        load_text_corpus(folder)


def test_binary_file(tmp_path: Path) -> None:
    folder = _write(tmp_path, ptb_valid_txt="a\n")
    (folder / "ptb.train.txt").write_bytes(b"\xff\xfe\x00a b")
    with pytest.raises(DatasetError, match="is not UTF-8 text"):
        load_text_corpus(folder)


def test_unknown_words_without_unk(tmp_path: Path) -> None:
    folder = _write(tmp_path, ptb_train_txt="a b\n", ptb_valid_txt="a z y\n")
    with pytest.raises(DatasetError) as info:
        load_text_corpus(folder)
    message = str(info.value)
    assert "ptb.valid.txt" in message and "2 word(s)" in message and "'y', 'z'" in message
    assert "replace rare words by <unk>" in message


def test_batchify_and_get_batch() -> None:
    tokens = torch.arange(23)
    source = batchify(tokens, 4)
    assert source.shape == (5, 4)  # 3 leftover tokens dropped
    assert source[:, 1].tolist() == [5, 6, 7, 8, 9]  # each column a contiguous slice
    inputs, targets = get_batch(source, 0, 3)
    assert inputs.shape == targets.shape == (3, 4)
    assert torch.equal(targets, inputs + 1)
    inputs, targets = get_batch(source, 3, 3)  # the end of the stream: one step left
    assert inputs.tolist() == [[3, 8, 13, 18]] and targets.tolist() == [[4, 9, 14, 19]]
    with pytest.raises(DatasetError, match="too short for batch_size=12"):
        batchify(tokens, 12)
    with pytest.raises(DatasetError, match="batch_size must be positive"):
        batchify(tokens, 0)


def test_toy_text(tmp_path: Path) -> None:
    splits = make_toy_text(train_sentences=300, valid_sentences=30, test_sentences=30, seed=3)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [300, 30, 30]
    assert make_toy_text(train_sentences=300, valid_sentences=30, test_sentences=30,
                         seed=3) == splits
    assert make_toy_text(seed=4)["train"][:30] != make_toy_text(seed=3)["train"][:30]
    assert splits["train"][:30] != splits["valid"]
    # Subject and verbs agree, across the relative clause too (the structure to learn).
    relative = 0
    for sentence in splits["train"]:
        words = sentence.split()
        subject = next(w for w in words if w in SINGULAR_NOUNS | PLURAL_NOUNS)
        verbs = [w for w in words if w in SINGULAR_VERBS | PLURAL_VERBS]
        agree = SINGULAR_VERBS if subject in SINGULAR_NOUNS else PLURAL_VERBS
        assert verbs and all(v in agree for v in verbs)
        relative += "that" in words
    assert 100 < relative < 200

    folder = write_text_corpus(tmp_path / "toy", splits)
    assert sorted(p.name for p in folder.iterdir()) == [
        "ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"
    ]
    corpus = load_text_corpus(folder)
    assert corpus.vocab_size == 29 and UNK not in corpus.vocabulary
    assert corpus.decode(corpus.valid) == " <eos> ".join([*splits["valid"], ""]).split()
    with pytest.raises(DatasetError, match="Unknown split"):
        write_text_corpus(tmp_path, {"training": ["a"]})
    with pytest.raises(DatasetError, match="valid_sentences must be positive"):
        make_toy_text(valid_sentences=0)
