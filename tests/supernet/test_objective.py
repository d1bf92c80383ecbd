"""WeightSharingObjective: random search with weight sharing ranks architectures like
training from scratch does, ENAS learns from shared-weight scores, checkpoints resume a
killed search, and bad input gets a clear error."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from optuna_nas import ControllerSampler, load_digits, seed_everything, train
from optuna_nas.data import ImageData
from optuna_nas.errors import NonFiniteLossError
from optuna_nas.spaces import NasBench201Space
from optuna_nas.supernet import Supernet, WeightSharingObjective
from optuna_nas.supernet._checkpoint import CHECKPOINT_ATTR

TINY = {"channels": 8, "cells_per_stage": 1, "in_channels": 1}


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_digits(seed=0)


def make_objective(data: ImageData, **options: object) -> WeightSharingObjective:
    seed_everything(0)
    supernet = Supernet(NasBench201Space(), **TINY)  # type: ignore[arg-type]
    settings: dict[str, object] = {"steps_per_trial": 3, "eval_batches": 2, "lr": 0.05}
    settings.update(options)
    return WeightSharingObjective(supernet, data, **settings)  # type: ignore[arg-type]


def kendall_tau(a: list[float], b: list[float]) -> float:
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    sign = [((a[i] > a[j]) - (a[i] < a[j])) * ((b[i] > b[j]) - (b[i] < b[j])) for i, j in pairs]
    return sum(sign) / len(pairs)


def test_random_search_with_weight_sharing_ranks_better_than_chance(digits: ImageData) -> None:
    """RSWS on digits, then six fixed random architectures scored with the shared weights
    and trained from scratch: the two rankings agree (Kendall tau > 0)."""
    start = time.perf_counter()
    objective = make_objective(digits, steps_per_trial=4, eval_batches=None)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=60)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    steps = [t.user_attrs["supernet_step"] for t in study.trials]
    assert steps == [4 * k for k in range(60)]
    space = NasBench201Space()
    archs = [space.sample(random.Random(100 + k)) for k in range(6)]
    shared = [objective.score(a, full=True) for a in archs]
    scratch = []
    for arch in archs:
        seed_everything(0)
        model = space.build(arch, **TINY)
        scratch.append(train(model, digits, epochs=2, lr=0.05, seed=0))
    assert kendall_tau(shared, scratch) > 0, (shared, scratch)
    assert time.perf_counter() - start < 60


def test_enas_controller_learns_from_shared_weight_scores(digits: ImageData) -> None:
    objective = make_objective(digits)
    sampler = ControllerSampler(NasBench201Space(), preset="enas", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    before = {k: v.clone() for k, v in sampler._policy.state_dict().items()}
    study.optimize(objective, n_trials=21)
    assert len(sampler._samples) == 20  # learned before proposing trial 20
    assert sampler._updates == 2  # one update per 10 results, as ENAS aggregates
    after = sampler._policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_checkpoint_resumes_the_same_search(digits: ImageData, tmp_path: Path) -> None:
    """Six trials in one go equal three, a checkpoint, and three more in a new objective."""
    path = tmp_path / "supernet.pt"
    straight = make_objective(digits)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(straight, n_trials=6)

    first = make_objective(digits, checkpoint=path, checkpoint_every=3)
    resumed_study = optuna.create_study(direction="maximize",
                                        sampler=optuna.samplers.RandomSampler(seed=0))
    resumed_study.optimize(first, n_trials=3)
    assert path.exists()
    second = make_objective(digits, checkpoint=path, checkpoint_every=3)
    resumed_study.optimize(second, n_trials=3)
    assert second.trials == 6 and second.step == 18
    assert [t.value for t in resumed_study.trials] == [t.value for t in study.trials]
    for (name, a), b in zip(straight.supernet.state_dict().items(),
                            second.supernet.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert resumed_study.user_attrs["supernet_checkpoint"] == str(path)


def test_checkpoint_in_an_artifact_store(digits: ImageData, tmp_path: Path) -> None:
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="ws", direction="maximize")
    first = make_objective(digits, checkpoint=store, checkpoint_every=2)
    study.optimize(first, n_trials=4)
    artifact = study._storage.get_study_system_attrs(study._study_id)[CHECKPOINT_ATTR]
    assert (tmp_path / artifact).exists()
    assert len([p for p in tmp_path.iterdir() if p.suffix != ".db"]) == 1  # old one removed
    second = make_objective(digits, checkpoint=store)
    assert second.load(optuna.load_study(study_name="ws", storage=storage))
    assert second.trials == 4 and second.step == 12


def test_a_killed_search_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    db, checkpoint = tmp_path / "search.db", tmp_path / "supernet.pt"
    script = tmp_path / "search.py"
    script.write_text(textwrap.dedent(f"""
        import optuna, torch
        from optuna_nas import load_digits
        from optuna_nas.pipeline import search_stage
        from optuna_nas.spaces import NasBench201Space
        torch.set_num_threads(1)
        search_stage(NasBench201Space(), load_digits(seed=0), n_trials=10_000,
                     network_options={TINY!r}, steps_per_trial=3, eval_batches=2,
                     storage="sqlite:///{db}", study_name="search",
                     checkpoint={str(checkpoint)!r}, checkpoint_every=1, lr=0.05)
    """))
    process = subprocess.Popen([sys.executable, str(script)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if db.exists() and checkpoint.exists():
                study = optuna.load_study(study_name="search", storage=f"sqlite:///{db}")
                if len(study.get_trials(states=(TrialState.COMPLETE,))) >= 3:
                    break
        else:
            pytest.fail("the search did not get to three trials in two minutes")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["trials"] >= 3 and saved["step"] == 3 * saved["trials"]

    from optuna_nas.pipeline import search_stage

    study = optuna.load_study(study_name="search", storage=f"sqlite:///{db}")
    finished = len(study.get_trials(states=(TrialState.COMPLETE,)))
    study, objective = search_stage(
        NasBench201Space(), load_digits(seed=0), n_trials=finished + 2, network_options=TINY,
        steps_per_trial=3, eval_batches=2, storage=f"sqlite:///{db}", study_name="search",
        checkpoint=checkpoint, checkpoint_every=1, lr=0.05,
    )
    new = study.get_trials(states=(TrialState.COMPLETE,))[finished:]
    assert [t.user_attrs["supernet_step"] for t in new] == [saved["step"], saved["step"] + 3]
    assert objective.trials == saved["trials"] + 2


def test_bad_checkpoints_and_arguments(digits: ImageData, tmp_path: Path) -> None:
    path = tmp_path / "supernet.pt"
    objective = make_objective(digits, checkpoint=path)
    objective.save()
    other = make_objective(digits, checkpoint=path, steps_per_trial=5)
    with pytest.raises(ValueError, match="different search"):
        other.load()
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        make_objective(digits, checkpoint=path).load()
    with pytest.raises(ValueError, match="steps_per_trial"):
        make_objective(digits, steps_per_trial=0)
    with pytest.raises(ValueError, match="eval_batches"):
        make_objective(digits, eval_batches=0)
    with pytest.raises(TypeError, match="needs a Supernet"):
        WeightSharingObjective(torch.nn.Linear(2, 2), digits)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no checkpoint location"):
        make_objective(digits).save()


def test_a_nan_loss_fails_the_trial_and_the_study_goes_on(digits: ImageData) -> None:
    objective = make_objective(digits, lr=1e30, grad_clip=None)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=2, catch=(NonFiniteLossError,))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and "Lower lr" in failed[0].user_attrs["fail_reason"]
