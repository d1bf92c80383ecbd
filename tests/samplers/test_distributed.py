"""ControllerSampler on one PostgreSQL study shared by several worker processes.

Four worker processes (``python -m tests.samplers.test_distributed ...``, this file's
``__main__``) each run 50 trials of one study on a PostgreSQL server, each with its own
``ControllerSampler(NasBench201Space(), seed=worker)``. The objective is cheap and its best
architecture is known: the reward is a weighted sum over the cell's six edges of a score per
op (convolutions best, as in the real benchmark), so the best cell has ``nor_conv_3x3`` on
every edge and scores 22.5, a random cell 12.0 on average (standard deviation 3.3), and the
ranking is fine-grained enough that a sampler that never repeats an architecture still has
good new ones to find after 200 trials (the 200th best cell scores 19.1).

The test runs three times: with the declared space (``space.suggest(trial)``), define-by-run,
where the objective asks for the six edges with plain ``suggest_categorical`` calls and each
worker's sampler is ``ControllerSampler(seed=worker)``, with no space, and multi-objective:
the declared space, ``directions=["maximize", "minimize"]``, the reward against a cost that
the same convolutions raise (``COSTS``), where the later trials' front must dominate clearly
more than the first trials' one.

Each trial records, as user attrs, the worker that ran it and the trial numbers its
worker's controller had learned from (``sampler._learned``) when it proposed the trial's
architecture. The test then checks that every trial is recorded, that every worker's
controller learned from trials that other workers ran, and that the study's later trials
score clearly better than its first ones.

Needs ``OPTUNA_NAS_TEST_POSTGRES_URL`` (see ``tests/_postgres.py``): skipped without it,
except in CI, where it fails.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from optuna_nas.samplers import ControllerSampler
from optuna_nas.spaces import NasBench201Space
from tests._postgres import postgres_study_name, postgres_url, storage  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
N_WORKERS = 4
TRIALS_PER_WORKER = 50
OP_SCORES = {
    "none": 0.0,
    "skip_connect": 1.0,
    "avg_pool_3x3": 1.5,
    "nor_conv_1x1": 2.5,
    "nor_conv_3x3": 3.0,
}
COSTS = {
    "none": 0.0,
    "skip_connect": 0.0,
    "avg_pool_3x3": 0.0,
    "nor_conv_1x1": 1.0,
    "nor_conv_3x3": 3.0,
}
EDGE_WEIGHTS = {"1<-0": 1.0, "2<-0": 1.1, "2<-1": 1.2, "3<-0": 1.3, "3<-1": 1.4, "3<-2": 1.5}
BEST_REWARD = 22.5
RANDOM_MEAN_GAP = 4.5
RANDOM_MEAN_REWARD = 12.0
RANDOM_STD_REWARD = 3.3
READY_TIMEOUT_S = 120.0
WORKER_TIMEOUT_S = 300.0


def reward(arch_values: dict[str, object]) -> float:
    """Weighted sum of the edges' op scores; ``nor_conv_3x3`` everywhere is best (22.5).

    Args:
        arch_values: Edge name (``"1<-0"`` ... ``"3<-2"``, or the param name with its
            ``arch/`` prefix) to op.
    """
    return sum(
        EDGE_WEIGHTS[name.removeprefix("arch/")] * OP_SCORES[str(op)]
        for name, op in arch_values.items()
    )


def cost(arch_values: dict[str, object]) -> float:
    """Weighted sum of the edges' op costs: a parameter count, 0 to 22.5."""
    return sum(
        EDGE_WEIGHTS[name.removeprefix("arch/")] * COSTS[str(op)]
        for name, op in arch_values.items()
    )


def front_gaps() -> dict[float, float]:
    """Cost -> the best reward of any cell that costs that much or less (the Pareto
    front), by enumerating the 15,625 cells."""
    space = NasBench201Space()
    names = [d.name for d in space.decisions]
    best: dict[float, float] = {}
    for ops in itertools.product(list(OP_SCORES), repeat=len(names)):
        values: dict[str, object] = dict(zip(names, ops, strict=True))
        key = round(cost(values), 6)
        best[key] = max(best.get(key, 0.0), reward(values))
    front, running = {}, 0.0
    for key in sorted(best):
        running = max(running, best[key])
        front[key] = running
    return front


def _wait_for_everyone(ready_dir: Path, index: int, n_workers: int) -> None:
    """A barrier between processes: start the trials together, so that they interleave."""
    (ready_dir / f"ready-{index}").touch()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(list(ready_dir.glob("ready-*"))) < n_workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker {index}: the other workers did not start in time")
        time.sleep(0.05)


def run_worker(
    url: str, study_name: str, index: int, n_trials: int, ready_dir: Path, mode: str
) -> None:
    """One worker: ``n_trials`` trials of the shared study with its own ControllerSampler.

    Args:
        url: The PostgreSQL URL.
        study_name: The study, already created by the test.
        index: The worker's number, also its sampler's seed.
        n_trials: How many trials this worker runs.
        ready_dir: Where the workers meet before they start.
        mode: ``"declared"`` (the space object), ``"define-by-run"`` (plain suggests) or
            ``"multi-objective"`` (the space object, reward and cost).
    """
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = NasBench201Space()
    sampler = ControllerSampler(space if mode != "define-by-run" else None, seed=index)
    rdb = storage(url)
    study = optuna.load_study(study_name=study_name, storage=rdb, sampler=sampler)

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        if mode != "define-by-run":
            arch = space.suggest(trial)
        else:
            arch = space.from_values(
                {d.name: trial.suggest_categorical(d.name, d.choices) for d in space.decisions}
            )
        trial.set_user_attr("worker", index)
        # What this worker's controller had learned from when it proposed `arch`.
        trial.set_user_attr("learned", sorted(sampler._learned))
        if mode == "multi-objective":
            return reward(arch.as_dict()), cost(arch.as_dict())
        return reward(arch.as_dict())

    _wait_for_everyone(ready_dir, index, N_WORKERS)
    study.optimize(objective, n_trials=n_trials)
    rdb.engine.dispose()


@pytest.mark.parametrize("mode", ["declared", "define-by-run", "multi-objective"])
def test_four_workers_share_one_learning_controller(
    postgres_url: str,  # noqa: F811
    postgres_study_name: str,  # noqa: F811
    tmp_path: Path,
    mode: str,
) -> None:
    rdb = storage(postgres_url)
    directions = ["maximize", "minimize"] if mode == "multi-objective" else ["maximize"]
    optuna.create_study(study_name=postgres_study_name, storage=rdb, directions=directions)

    ready_dir = tmp_path / "ready"
    ready_dir.mkdir()
    # One thread per worker: four processes share the cores; BLAS and torch threads would
    # only spin against each other.
    threads = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    env = {**os.environ, **dict.fromkeys(threads, "1")}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.samplers.test_distributed",
                postgres_url,
                postgres_study_name,
                str(index),
                str(TRIALS_PER_WORKER),
                str(ready_dir),
                mode,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(N_WORKERS)
    ]
    outputs = []
    try:
        for worker in workers:
            output, _ = worker.communicate(timeout=WORKER_TIMEOUT_S)
            outputs.append(output)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for index, (worker, output) in enumerate(zip(workers, outputs, strict=True)):
        assert worker.returncode == 0, f"worker {index} exited with {worker.returncode}:\n{output}"

    study = optuna.load_study(study_name=postgres_study_name, storage=rdb)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    rdb.engine.dispose()

    # Every trial is recorded, complete, with its worker and a valid architecture.
    assert len(trials) == N_WORKERS * TRIALS_PER_WORKER
    assert [t.number for t in trials] == list(range(N_WORKERS * TRIALS_PER_WORKER))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    worker_of = {t.number: int(t.user_attrs["worker"]) for t in trials}
    for index in range(N_WORKERS):
        assert sum(w == index for w in worker_of.values()) == TRIALS_PER_WORKER
    for t in trials:
        arch = {
            k: v for k, v in t.params.items() if mode == "define-by-run" or k.startswith("arch/")
        }
        assert len(arch) == 6
        assert t.values[0] == pytest.approx(reward(arch))
        if mode == "multi-objective":
            assert t.values[1] == pytest.approx(cost(arch))

    # Each worker's controller learned from the other workers' trials, and kept doing so.
    for index in range(N_WORKERS):
        own = [t for t in trials if worker_of[t.number] == index]
        learned_last = set(own[-1].user_attrs["learned"])
        assert learned_last <= set(worker_of), "learned from a trial that is not in the study"
        from_others = {n for n in learned_last if worker_of[n] != index}
        for other in range(N_WORKERS):
            if other != index:
                got = sum(worker_of[n] == other for n in from_others)
                assert got >= 10, (
                    f"worker {index} learned from only {got} trials of worker {other}"
                )
        # Learning from others is not a one-off: the set grows over the worker's run.
        halfway = set(own[len(own) // 2].user_attrs["learned"])
        assert halfway < learned_last
        assert any(worker_of[n] != index for n in learned_last - halfway)

    # The shared controller learns: the later trials score clearly better than the first
    # ones. The first 20 (about 5 per worker) are proposed before the controller has seen
    # many results. (The first 50 are not the comparison: the default configuration
    # screens its proposals with a model of the results after 10 of them and never repeats
    # an architecture, so by trial 50 it already proposes cells about as good as the ones
    # left unevaluated near the top of the space, which caps what the last trials can add.)
    if mode == "multi-objective":
        # The later trials lie closer to the Pareto front: their reward falls short of the
        # best at their cost by less (a random cell's gap is 4.5 on average).
        front = front_gaps()
        gaps = [front[round(t.values[1], 6)] - t.values[0] for t in trials]
        first, last = statistics.fmean(gaps[:20]), statistics.fmean(gaps[-50:])
        message = f"mean gap to the front: first 20 trials {first:.2f}, last 50 {last:.2f}"
        assert last < first - 0.4, message
        assert last < RANDOM_MEAN_GAP - 1.0, message
        return
    values = [float(t.value) for t in trials if t.value is not None]
    first = statistics.fmean(values[:20])
    last = statistics.fmean(values[-50:])
    message = f"mean reward of the first 20 trials {first:.2f}, of the last 50 {last:.2f}"
    assert last > first + 2.0, message
    # And far above chance: a random cell scores 12.0 on average, standard deviation 3.3.
    assert last > RANDOM_MEAN_REWARD + 1.5 * RANDOM_STD_REWARD, message
    assert max(values) >= BEST_REWARD - 1.5, f"best reward {max(values)}"

if __name__ == "__main__":
    run_worker(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
        Path(sys.argv[5]),
        sys.argv[6],
    )
