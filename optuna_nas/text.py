"""Text corpora for language models: Penn Treebank's file format, and a toy text.

A corpus folder holds ``ptb.train.txt``, ``ptb.valid.txt`` and (optionally)
``ptb.test.txt``: one sentence a line, words separated by spaces, rare words already
replaced by ``<unk>`` (Mikolov et al.'s preprocessing of the Penn Treebank, the files
DARTS' and AWD-LSTM's language-model code read). Nothing is downloaded: the folder is the
caller's. :func:`make_toy_text` makes a small text with learnable structure, and
:func:`write_text_corpus` writes any text in the same format, e.g. for tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from optuna_nas.errors import DatasetError

__all__ = [
    "EOS",
    "UNK",
    "TextCorpus",
    "batchify",
    "get_batch",
    "load_text_corpus",
    "make_toy_text",
    "write_text_corpus",
]

EOS = "<eos>"
"""The token appended to every line, as in Penn Treebank language modelling."""

UNK = "<unk>"
"""Penn Treebank's token for rare words; valid and test words unseen in train map to it."""

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class TextCorpus:
    """A tokenised text corpus: one long stream of token ids per split, and the vocabulary.

    Paper (the format): Mikolov et al., "Recurrent Neural Network Based Language Model",
    Interspeech 2010, https://www.isca-archive.org/interspeech_2010/mikolov10_interspeech.html;
    its use in DARTS: https://arxiv.org/abs/1806.09055.

    Args:
        train: Token ids of the training split, a 1-D ``int64`` tensor.
        valid: Token ids of the validation split.
        test: Token ids of the test split, or ``None`` when the folder has none.
        vocabulary: The words, by id, in order of first appearance in the training split.
        name: A short name for messages.
    """

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor | None
    vocabulary: tuple[str, ...]
    name: str = "text"
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {word: i for i, word in enumerate(self.vocabulary)})

    @property
    def vocab_size(self) -> int:
        """The number of distinct tokens."""
        return len(self.vocabulary)

    def encode(self, words: Sequence[str]) -> torch.Tensor:
        """Token ids of words; an unknown word becomes ``<unk>`` where the vocabulary has it.

        Args:
            words: The words to encode.

        Raises:
            DatasetError: A word is unknown and the vocabulary has no ``<unk>``.
        """
        unk = self._ids.get(UNK)
        ids: list[int] = []
        for word in words:
            index = self._ids.get(word, unk)
            if index is None:
                raise DatasetError(
                    f"{word!r} is not in the vocabulary of {self.name!r}, which has no {UNK} "
                    "token to stand for unknown words."
                )
            ids.append(index)
        return torch.tensor(ids, dtype=torch.int64)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        """The words of token ids."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return [self.vocabulary[int(i)] for i in values]


def _read_words(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start}); save "
            "it as UTF-8 with one sentence a line."
        ) from None
    # Each line is a sentence followed by <eos>, blank lines included, as in the reference
    # language-model code (AWD-LSTM's and DARTS' data.py).
    words: list[str] = []
    for line in text.splitlines():
        words += line.split()
        words.append(EOS)
    if not any(word != EOS for word in words):
        raise DatasetError(
            f"{str(path)!r} has no words; a Penn Treebank file has one sentence a line, "
            "words separated by spaces."
        )
    return words


def load_text_corpus(folder: str | Path, *, prefix: str = "ptb.") -> TextCorpus:
    """Read a text corpus in Penn Treebank's file format from a local folder.

    The folder holds ``{prefix}train.txt``, ``{prefix}valid.txt`` and optionally
    ``{prefix}test.txt``. Lines are split on whitespace and ``<eos>`` ends each line; the
    vocabulary is the training split's words in order of first appearance. A valid or test
    word that train lacks becomes ``<unk>`` when train has ``<unk>`` (the Penn Treebank
    convention); otherwise it is an error. ``prefix=""`` reads WikiText-2 as AWD-LSTM
    distributes it (``train.txt``, ...).

    Paper (the format and its use): Mikolov et al. 2010, as distributed with
    https://github.com/quark0/darts (``rnn/data.py``); DARTS, https://arxiv.org/abs/1806.09055.

    Args:
        folder: The corpus folder.
        prefix: The start of the file names.

    Returns:
        The corpus, named after the folder.

    Raises:
        DatasetError: The folder or a required file is missing, a file is empty or not
            UTF-8, or a valid or test word is unknown and train has no ``<unk>``.
    """
    root = Path(folder).expanduser()
    expected = ", ".join(f"{prefix}{split}.txt" for split in SPLITS)
    if not root.is_dir():
        raise DatasetError(
            f"Text folder {str(root)!r} does not exist; expected a folder with {expected} "
            "(the test file is optional), one sentence a line."
        )
    paths = {split: root / f"{prefix}{split}.txt" for split in SPLITS}
    for split in ("train", "valid"):
        if not paths[split].is_file():
            present = sorted(p.name for p in root.iterdir() if p.suffix == ".txt")
            raise DatasetError(
                f"{str(root)!r} has no {paths[split].name}; expected {expected} (the test "
                f"file is optional). Text files there: {present or 'none'}."
                + (" Pass prefix='' for files named train.txt, ..." if prefix and any(
                    name in present for name in ("train.txt", "valid.txt")) else "")
            )
    train_words = _read_words(paths["train"])
    vocabulary = tuple(dict.fromkeys(train_words))
    corpus = TextCorpus(
        torch.empty(0, dtype=torch.int64),
        torch.empty(0, dtype=torch.int64),
        None,
        vocabulary,
        name=root.name or str(root),
    )

    def encode(split: str) -> torch.Tensor:
        words = _read_words(paths[split])
        if UNK not in corpus._ids:
            unknown = sorted({w for w in words if w not in corpus._ids})
            if unknown:
                shown = ", ".join(repr(w) for w in unknown[:5])
                raise DatasetError(
                    f"{paths[split].name} in {str(root)!r} has {len(unknown)} word(s) that "
                    f"{paths['train'].name} lacks ({shown}{', ...' if len(unknown) > 5 else ''}"
                    f"); replace rare words by {UNK} in every split, as the Penn Treebank "
                    f"files do, or add them to {paths['train'].name}."
                )
        return corpus.encode(words)

    return TextCorpus(
        corpus.encode(train_words),
        encode("valid"),
        encode("test") if paths["test"].is_file() else None,
        vocabulary,
        name=corpus.name,
    )


def batchify(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a token stream into ``batch_size`` parallel streams, a ``(time, batch)`` tensor.

    Column ``b`` is the ``b``-th contiguous slice of the stream; the tail that does not fill
    a whole row is dropped, as in DARTS' and AWD-LSTM's ``batchify``.

    Paper: Zaremba et al., "Recurrent Neural Network Regularization", 2014,
    https://arxiv.org/abs/1409.2329 (the batching every PTB model since uses).

    Args:
        tokens: A 1-D tensor of token ids.
        batch_size: The number of parallel streams.

    Raises:
        DatasetError: The stream is too short for two time steps of ``batch_size`` streams.
    """
    if batch_size < 1:
        raise DatasetError(f"batch_size must be positive, got {batch_size}.")
    steps = tokens.numel() // batch_size
    if steps < 2:
        raise DatasetError(
            f"A split of {tokens.numel()} tokens is too short for batch_size={batch_size}: "
            f"each stream needs at least 2 tokens. Use a batch size of at most "
            f"{max(1, tokens.numel() // 2)} or a longer text."
        )
    return tokens[: steps * batch_size].view(batch_size, steps).t().contiguous()


def get_batch(
    source: torch.Tensor, start: int, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of ``seq_len`` steps from a batchified stream.

    Args:
        source: A ``(time, batch)`` tensor from :func:`batchify`.
        start: The first time step.
        seq_len: The number of steps; fewer at the end of the stream.

    Returns:
        ``(inputs, targets)``, each ``(steps, batch)``; targets are the inputs shifted by one.
    """
    length = min(seq_len, source.size(0) - 1 - start)
    if length < 1:
        raise ValueError(
            f"No step left at start={start} of a stream of {source.size(0)} steps."
        )
    return source[start : start + length], source[start + 1 : start + 1 + length]


def write_text_corpus(
    folder: str | Path, splits: Mapping[str, Sequence[str]], *, prefix: str = "ptb."
) -> Path:
    """Write sentences in Penn Treebank's file format, readable by :func:`load_text_corpus`.

    Args:
        folder: The folder to write to; made if missing.
        splits: Sentences (space-separated words, one string each) per split name
            (``train``, ``valid``, ``test``).
        prefix: The start of the file names.

    Returns:
        The folder.
    """
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise DatasetError(f"Unknown split name(s) {unknown}; use {list(SPLITS)}.")
    root = Path(folder).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    for split, sentences in splits.items():
        # The PTB files pad each line with a space on both sides; kept for fidelity.
        text = "".join(f" {sentence.strip()} \n" for sentence in sentences)
        (root / f"{prefix}{split}.txt").write_text(text, encoding="utf-8")
    return root


# ---- a toy text with learnable structure -------------------------------------------------
_DETERMINERS = {"sg": ("the", "a", "this"), "pl": ("the", "some", "these")}
_NOUNS = {
    "sg": ("cat", "dog", "bird", "child", "teacher"),
    "pl": ("cats", "dogs", "birds", "children", "teachers"),
}
_VERBS = {
    "sg": ("sees", "likes", "follows", "finds"),
    "pl": ("see", "like", "follow", "find"),
}
_ADJECTIVES = ("small", "old", "happy", "red")


def _noun_phrase(rng: np.random.Generator, number: str) -> list[str]:
    words = [str(rng.choice(_DETERMINERS[number]))]
    while len(words) < 3 and rng.random() < 0.4:
        words.append(str(rng.choice(_ADJECTIVES)))
    words.append(str(rng.choice(_NOUNS[number])))
    return words


def _sentence(rng: np.random.Generator) -> str:
    number = "sg" if rng.random() < 0.5 else "pl"
    words = _noun_phrase(rng, number)
    if rng.random() < 0.5:
        # A relative clause puts a second noun between the subject and its verb: the verb's
        # number depends on a word several steps back, which only a recurrent state keeps.
        other = "sg" if rng.random() < 0.5 else "pl"
        words += ["that", str(rng.choice(_VERBS[number])), *_noun_phrase(rng, other)]
    words.append(str(rng.choice(_VERBS[number])))
    words += _noun_phrase(rng, "sg" if rng.random() < 0.5 else "pl")
    return " ".join(words)


def make_toy_text(
    *,
    train_sentences: int = 2000,
    valid_sentences: int = 200,
    test_sentences: int = 200,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Sentences of a small English-like grammar, per split, for :func:`write_text_corpus`.

    ``determiner [adjective] noun [that verb noun-phrase] verb noun-phrase``: 28 words plus
    ``<eos>``, subject and verbs agreeing in number across an optional relative clause.
    Determiners, adjectives and nouns are drawn at random, so a model cannot reach
    perplexity 1, but word classes, phrase order and agreement are learnable: a good
    language model gets far below the uniform baseline (the vocabulary size, 29).

    Paper (agreement across a clause as a test of recurrent memory): Linzen et al.,
    "Assessing the Ability of LSTMs to Learn Syntax-Sensitive Dependencies", TACL 2016,
    https://arxiv.org/abs/1611.01368.

    Args:
        train_sentences: Sentences in the training split.
        valid_sentences: Sentences in the validation split.
        test_sentences: Sentences in the test split.
        seed: Seed of the draws; each split has its own stream.

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}``, one string per sentence.
    """
    counts = {"train": train_sentences, "valid": valid_sentences, "test": test_sentences}
    for split, count in counts.items():
        if count < 1:
            raise DatasetError(f"{split}_sentences must be positive, got {count}.")
    streams = np.random.SeedSequence(seed).spawn(len(counts))
    return {
        split: [_sentence(rng) for _ in range(count)]
        for (split, count), rng in zip(
            counts.items(), (np.random.default_rng(s) for s in streams), strict=True
        )
    }
