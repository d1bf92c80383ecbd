"""DARTS' recurrent search: the relaxation, the derivation rule, the second-order gradient,
the search on a toy text, and the training of the derived cell."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from optuna_nas.darts import enqueue_retraining
from optuna_nas.darts._recurrent import (
    RecurrentDartsResult,
    _averaged_weights,
    _second_order_gradient,
    _stalled,
    derive_recurrent,
    evaluate_perplexity,
    search_recurrent,
    train_language_model,
)
from optuna_nas.errors import ArchitectureError, DatasetError, NonFiniteLossError
from optuna_nas.nn import (
    DartsRecurrentCell,
    MixedRecurrentCell,
    RecurrentGenotype,
    RecurrentLanguageModel,
)
from optuna_nas.nn._darts_recurrent import PRIMITIVES
from optuna_nas.spaces import DartsCells, DartsRecurrentSpace, published_recurrent_cell
from optuna_nas.text import TextCorpus, load_text_corpus, make_toy_text, write_text_corpus

# Small enough for a CPU test, DARTS' settings otherwise (SGD lr 20, clip 0.25, Adam 3e-3).
SMALL: dict[str, Any] = {
    "embedding_size": 16,
    "batch_size": 16,
    "bptt": 15,
    "dropout": 0.1,
    "dropout_h": 0.1,
    "dropout_x": 0.1,
    "dropout_i": 0.1,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> TextCorpus:
    """The toy text (2,800 training tokens, 29 words), written and read in PTB's format."""
    splits = make_toy_text(train_sentences=300, valid_sentences=40, test_sentences=40, seed=0)
    return load_text_corpus(write_text_corpus(tmp_path_factory.mktemp("toy"), splits))


@pytest.fixture(scope="module")
def searched(corpus: TextCorpus) -> tuple[optuna.Study, RecurrentDartsResult]:
    """A first-order search of 2 epochs inside an Optuna trial."""
    results: list[RecurrentDartsResult] = []

    def objective(trial: optuna.Trial) -> float:
        results.append(search_recurrent(corpus, epochs=2, trial=trial, seed=0, **SMALL))
        return results[-1].valid_perplexity

    study = optuna.create_study(direction="minimize")
    study.optimize(objective, n_trials=1)
    return study, results[0]


def _one_hot(cell: MixedRecurrentCell, genotype: RecurrentGenotype) -> torch.Tensor:
    weights = torch.zeros(cell.num_edges, len(PRIMITIVES))
    for node, (op, pred) in enumerate(genotype.recurrent, start=1):
        weights[cell.edges.index((node, pred)), PRIMITIVES.index(op)] = 1.0
    return weights


# ---- the relaxation -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_mixed_cell_with_one_hot_weights_is_the_derived_cell(seed: int) -> None:
    space = DartsRecurrentSpace()
    genotype = space.genotype(space.sample(seed))
    mixed = MixedRecurrentCell(5, 5, dropout_x=0.3, dropout_h=0.3, batch_norm=False)
    derived = DartsRecurrentCell(genotype, 5, 5, dropout_x=0.3, dropout_h=0.3)
    derived.load_state_dict(mixed.state_dict())  # the same weights
    weights = _one_hot(mixed, genotype)
    mixed_lm = RecurrentLanguageModel(mixed, vocab_size=11, dropout=0.2, dropout_i=0.2,
                                      dropout_e=0.1)
    derived_lm = RecurrentLanguageModel(derived, vocab_size=11, dropout=0.2, dropout_i=0.2,
                                        dropout_e=0.1)
    derived_lm.load_state_dict(mixed_lm.state_dict())
    tokens = torch.randint(11, (6, 3))
    hidden = torch.randn(3, 5)
    for training in (False, True):  # with dropout: the same masks from the same seed
        mixed_lm.train(training)
        derived_lm.train(training)
        torch.manual_seed(1)
        log_probs, last, outputs = mixed_lm(tokens, hidden, weights)
        torch.manual_seed(1)
        expected, expected_last, expected_outputs = derived_lm(tokens, hidden)
        torch.testing.assert_close(log_probs, expected)
        torch.testing.assert_close(last, expected_last)
        torch.testing.assert_close(outputs, expected_outputs)
    # Moving node 1's weight to another activation changes the output.
    other = weights.clone()
    other[0] = other[0].roll(1) if other[0, -1] == 0 else other[0].roll(-1)
    mixed_lm.eval()
    assert not torch.allclose(mixed_lm(tokens, hidden, other)[0], expected)


def test_mixed_cell_mixes_linearly_and_none_adds_nothing() -> None:
    cell = MixedRecurrentCell(3, 4, steps=1, batch_norm=False).eval()
    x, h = torch.randn(2, 5, 3), torch.randn(5, 4)
    # One node, one edge: the output is the weighted sum of the activations' highways.
    outputs = {
        op: cell(x, h, F.one_hot(torch.tensor([k]), 5).float())[0]
        for k, op in enumerate(PRIMITIVES)
    }
    assert torch.equal(outputs["none"], torch.zeros(2, 5, 4))
    weights = torch.tensor([[0.1, 0.2, 0.3, 0.15, 0.25]])
    mixed_first = cell(x[:1], h, weights)[0]
    expected = sum(
        w * cell(x[:1], h, F.one_hot(torch.tensor([k]), 5).float())[0]
        for k, w in enumerate(weights[0].tolist())
    )
    torch.testing.assert_close(mixed_first, expected)
    with pytest.raises(ValueError, match=r"weights of shape \(1, 5\)"):
        cell(x, h)


def test_search_cell_batch_norm_and_derived_cell_arguments() -> None:
    cell = MixedRecurrentCell(3, 4, steps=2)  # DARTS' search cell: states batch-normalised
    assert cell.bn is not None and len(cell.bn) == 3
    assert not any(bn.affine for bn in cell.bn)  # type: ignore[union-attr]
    cell(torch.randn(3, 6, 3), torch.zeros(6, 4), torch.rand(3, 5))
    # Each state keeps its own running statistics, as its own distribution differs.
    means = [bn.running_mean for bn in cell.bn]  # type: ignore[union-attr]
    assert not torch.allclose(means[0], means[2])
    assert cell.edges == ((1, 0), (2, 0), (2, 1))
    _, arch = published_recurrent_cell("DARTS_V2")
    derived = DartsRecurrentCell(DartsRecurrentSpace().genotype(arch), 3, 3)
    with pytest.raises(ValueError, match="no relaxation weights"):
        derived(torch.randn(2, 1, 3), torch.zeros(1, 3), torch.ones(36, 5))
    with pytest.raises(ValueError, match="input\\s+and hidden sizes must be equal"):
        RecurrentLanguageModel(MixedRecurrentCell(3, 4), vocab_size=5)
    assert derived.steps == 8


# ---- derivation ---------------------------------------------------------------------------
def test_derivation_rule() -> None:
    space = DartsRecurrentSpace(steps=3)  # rows: n1<-0, n2<-0, n2<-1, n3<-0, n3<-1, n3<-2
    alphas = torch.tensor(
        [
            [5.0, 0.0, 0.5, 1.0, 0.0],  # none is strongest but never derived: sigmoid
            [0.0, 2.0, 0.0, 0.0, 0.0],  # tanh at softmax weight 0.65 ...
            [9.0, 0.0, 0.0, 0.0, 3.0],  # ... beats identity at 0.0025 (none takes the mass)
            [0.0, 1.0, 1.0, 0.0, 0.0],  # three equal edges: the earliest state ...
            [0.0, 1.0, 1.0, 0.0, 0.0],
            [0.0, 1.0, 1.0, 0.0, 0.0],  # ... and of two equal ops the first (tanh)
        ]
    )
    arch = derive_recurrent(space, alphas)
    assert str(arch) == (
        "Genotype(recurrent=[('sigmoid', 0), ('tanh', 0), ('tanh', 0)], concat=range(1, 4))"
    )
    alphas[2, 0] = 0.0  # without none on n2<-1, identity (logit 3) now wins node 2
    assert derive_recurrent(space, alphas)["n2/input"] == 1
    assert derive_recurrent(space, alphas)["n2/op"] == "identity"
    # Weights already softmaxed derive the same through their log.
    assert derive_recurrent(space, F.softmax(alphas, -1).log()) == derive_recurrent(space, alphas)
    # Only the space's ops compete.
    subset = DartsRecurrentSpace(steps=1, ops=("relu", "identity"))
    assert derive_recurrent(subset, torch.tensor([[0.0, 5.0, 1.0, 0.0, 2.0]]))["n1/op"] == (
        "identity"
    )
    with pytest.raises(ArchitectureError, match=r"needs \(6, 5\)"):
        derive_recurrent(space, torch.zeros(36, 5))
    with pytest.raises(ArchitectureError, match="not DartsCells"):
        derive_recurrent(DartsCells(), alphas)  # type: ignore[arg-type]


# ---- second order -------------------------------------------------------------------------
def test_second_order_gradient_is_the_unrolled_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    # In float64, with a small finite-difference radius, the result matches the exact
    # Hessian-vector product (double backward): equations 7 and 8 of the paper.
    torch.manual_seed(0)
    cell = MixedRecurrentCell(4, 4, steps=3)
    model = RecurrentLanguageModel(cell, vocab_size=7).double()
    alpha = (0.5 * torch.randn(cell.num_edges, 5, dtype=torch.float64)).requires_grad_()
    train = (torch.randint(7, (5, 3)), torch.randint(7, (5, 3)), torch.randn(3, 4).double())
    arch = (torch.randint(7, (5, 3)), torch.randint(7, (5, 3)), torch.randn(3, 4).double())
    lr = 0.5
    before = [p.detach().clone() for p in model.parameters()]
    default, hidden_next, loss = _second_order_gradient(model, alpha, train, arch, lr, 0.0,
                                                        None)
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    monkeypatch.setattr("optuna_nas.darts._recurrent.HVP_RADIUS", 1e-6)
    got, _, _ = _second_order_gradient(model, alpha, train, arch, lr, 0.0, None)

    def nll(params: dict[str, torch.Tensor], batch: Any, a: torch.Tensor) -> torch.Tensor:
        inputs, targets, hidden = batch
        log_probs, _, _ = functional_call(model, params, (inputs, hidden, F.softmax(a, -1)))
        return F.nll_loss(log_probs.reshape(-1, 7), targets.reshape(-1))

    w = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    grads = torch.autograd.grad(nll(w, train, alpha.detach()), list(w.values()))
    unrolled = {n: (p - lr * g).detach().requires_grad_()
                for (n, p), g in zip(w.items(), grads, strict=True)}
    dalpha, *v = torch.autograd.grad(nll(unrolled, arch, alpha), [alpha, *unrolled.values()])
    grad_w = torch.autograd.grad(nll(w, train, alpha), list(w.values()), create_graph=True)
    dot = sum((g * u).sum() for g, u in zip(grad_w, v, strict=True))
    (hessian_vector,) = torch.autograd.grad(dot, [alpha])
    expected = dalpha - lr * hessian_vector
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-12)
    # DARTS' radius (0.01 / ||v||) is close too, and the correction is not negligible.
    assert (default - expected).norm() < 0.01 * expected.norm()
    assert (lr * hessian_vector).norm() > 0.05 * dalpha.norm()
    assert loss.shape == () and hidden_next.shape == (3, 4) and not hidden_next.requires_grad


# ---- the search ---------------------------------------------------------------------------
def test_search(searched: tuple[optuna.Study, RecurrentDartsResult], corpus: TextCorpus) -> None:
    study, result = searched
    assert result.order == "first" and result.epochs == 2 and result.seconds > 0
    assert isinstance(result.space, DartsRecurrentSpace)
    assert len(result.perplexity_history) == 2
    assert result.valid_perplexity == result.perplexity_history[-1]
    assert all(1 < p < 3 * corpus.vocab_size for p in result.perplexity_history)
    assert len(result.alpha_history) == 3 and result.alphas.shape == (36, 5)
    assert result.edges[:3] == ["n1<-0", "n2<-0", "n2<-1"] and len(result.edges) == 36
    assert result.ops == PRIMITIVES
    for weights in result.alpha_history:
        torch.testing.assert_close(weights.sum(-1), torch.ones(36))
    # alpha starts at 1e-3 * N(0, 1): uniform op weights, to a few 1e-4.
    assert (result.alpha_history[0] - 0.2).abs().max() < 1e-3
    assert (result.alpha_history[-1] - result.alpha_history[0]).abs().max() > 1e-3
    torch.testing.assert_close(result.alpha_history[-1], F.softmax(result.alphas, -1))
    assert result.architecture == derive_recurrent(result.space, result.alphas)
    assert result.genotype == str(result.architecture)
    # The trial: one perplexity per epoch, the derived cell as user attrs.
    trial = study.trials[0]
    assert trial.intermediate_values == dict(enumerate(result.perplexity_history))
    assert trial.value == result.valid_perplexity
    assert DartsRecurrentSpace().parse(trial.user_attrs["arch"]) == result.architecture
    assert trial.user_attrs["arch_space"] == "darts_recurrent"
    assert trial.user_attrs["params"] > 0
    # ... which DARTS' retraining helper reads like a convolutional search's.
    retraining = optuna.create_study()
    assert enqueue_retraining(retraining, trial, space=DartsRecurrentSpace()) == (
        result.architecture
    )
    assert DartsRecurrentSpace().suggest(retraining.ask()) == result.architecture


def test_derived_cell_builds_and_trains(
    searched: tuple[optuna.Study, RecurrentDartsResult], corpus: TextCorpus
) -> None:
    _, result = searched
    options = {k: v for k, v in SMALL.items() if k not in ("batch_size", "bptt", "device")}
    torch.manual_seed(0)
    model = result.space.build(result.architecture, vocab_size=corpus.vocab_size, **options)
    # An untrained model is near the uniform baseline: perplexity = vocabulary size.
    untrained = evaluate_perplexity(model, corpus.valid)
    assert abs(untrained - corpus.vocab_size) < 0.1 * corpus.vocab_size

    def objective(trial: optuna.Trial) -> float:
        return train_language_model(model, corpus, epochs=8, trial=trial, batch_size=16,
                                    bptt=15, device="cpu")

    study = optuna.create_study(direction="minimize")
    study.optimize(objective, n_trials=1)
    best = study.best_value
    reported = list(study.trials[0].intermediate_values.values())
    assert len(reported) == 8 and best == min(reported)
    # Below the uniform baseline (29) and the unigram model (25.5): it uses the context.
    assert best < 15, reported
    # The model holds the best epoch's weights.
    assert evaluate_perplexity(model, corpus.valid) == pytest.approx(best, rel=1e-6)


def test_second_order_search_is_pruned_with_its_architecture(corpus: TextCorpus) -> None:
    study = optuna.create_study(direction="minimize",
                                pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    study.optimize(
        lambda trial: search_recurrent(
            corpus, epochs=3, order="second", trial=trial, seed=1, **SMALL
        ).valid_perplexity,
        n_trials=1,
    )
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    (value,) = trial.intermediate_values.values()  # pruned after its first epoch
    assert math.isfinite(value) and value > 1
    DartsRecurrentSpace().parse(trial.user_attrs["arch"])


def test_divergence_is_an_error(corpus: TextCorpus) -> None:
    with pytest.raises(NonFiniteLossError, match="Lower the learning rate"):
        search_recurrent(corpus, epochs=1, weight_lr=1e35, **SMALL)
    space, arch = published_recurrent_cell("DARTS_V1")
    model = space.build(arch, vocab_size=corpus.vocab_size, embedding_size=8)
    with pytest.raises(NonFiniteLossError, match="became"):
        train_language_model(model, corpus, epochs=1, lr=1e35, batch_size=16, bptt=15,
                             device="cpu")


def test_argument_errors(corpus: TextCorpus, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="order must be 'first' or 'second'"):
        search_recurrent(corpus, epochs=1, order="third")
    with pytest.raises(ValueError, match="train_portion must be in"):
        search_recurrent(corpus, epochs=1, train_portion=1.0)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        search_recurrent(corpus, epochs=0)
    with pytest.raises(DatasetError, match="train_portion=0.5.*too short for batch_size=2000"):
        search_recurrent(corpus, epochs=1, batch_size=2000)
    mixed = RecurrentLanguageModel(MixedRecurrentCell(4, 4), vocab_size=corpus.vocab_size)
    with pytest.raises(ArchitectureError, match="derive an architecture first"):
        train_language_model(mixed, corpus, epochs=1)
    short = load_text_corpus(write_text_corpus(tmp_path, {"train": ["a b c"] * 50,
                                                           "valid": ["a b"]}))
    space, arch = published_recurrent_cell("DARTS_V2")
    with pytest.raises(DatasetError, match="too short for batch_size=10"):
        train_language_model(space.build(arch, vocab_size=short.vocab_size, embedding_size=4),
                             short, epochs=1, batch_size=4)


def test_nt_asgd() -> None:
    assert not _stalled([5.0, 4.0, 3.0], 3.5, 5)  # not enough epochs yet
    assert _stalled([5.0, 4.0, 3.0], 5.5, 2)  # worse than the best before the last 2
    assert not _stalled([5.0, 4.0, 3.0], 4.5, 2)
    assert not _stalled([5.0, 4.0, 3.0], 9.0, None)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.ASGD(model.parameters(), lr=0.1, t0=0, lambd=0.0)
    values = []
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.ones(1, 2)).sum().backward()
        optimizer.step()
        values.append(model.weight.detach().clone())
    average = optimizer.state[model.weight]["ax"]
    assert not torch.allclose(average, values[-1])
    with _averaged_weights(model, optimizer):  # evaluated with the averaged weights
        torch.testing.assert_close(model.weight.detach(), average)
    torch.testing.assert_close(model.weight.detach(), values[-1])  # and restored
    with _averaged_weights(model, torch.optim.SGD(model.parameters(), lr=0.1)):
        torch.testing.assert_close(model.weight.detach(), values[-1])


def test_search_in_a_multi_objective_study_keeps_epochs_without_reporting(
    corpus: TextCorpus,
) -> None:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        result = search_recurrent(corpus, epochs=2, trial=trial, seed=0, **SMALL)
        return result.valid_perplexity, 1.0

    study = optuna.create_study(directions=["minimize", "minimize"])
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.intermediate_values == {}
    assert len(trial.user_attrs["epoch_values"]) == 2
    assert trial.user_attrs["epoch_values"][-1] == trial.values[0]
