"""An objective for ``optuna-nas worker``: NAS-Bench-201 cells on the bundled digits.

Each worker process imports this module and runs ``objective`` on its own device (the
``device`` parameter: ``cuda:0`` is the process's own GPU, or the CPU). Next to the
objective are the search space, the sampler, the pruner and the direction, which the
worker picks up unless the command line names others.

One machine, two CPU workers, a SQLite study (the study is created on first use):

    optuna-nas worker --storage sqlite:///workers.db --study-name digits \\
        --objective examples/worker_objective.py:objective --devices cpu,cpu --trials 12

One machine with four GPUs, a PostgreSQL study, the URL kept off the command line:

    export OPTUNA_NAS_STORAGE_FILE=~/.optuna_nas_url     # first line: postgresql://...
    optuna-nas worker --study-name digits --objective examples/worker_objective.py:objective \\
        --devices cuda:0,cuda:1,cuda:2,cuda:3 --trials 200

Add ``--dashboard-port 8080`` to watch the study at http://127.0.0.1:8080/dashboard.
"""

from __future__ import annotations

import os
import time

import optuna
import torch

import optuna_nas as nas

space = nas.spaces.NasBench201Space()
direction = "maximize"

#: Epochs of a trial that is not pruned; ``OPTUNA_NAS_EXAMPLE_EPOCHS`` overrides it.
EPOCHS = int(os.environ.get("OPTUNA_NAS_EXAMPLE_EPOCHS", "6"))
_data: nas.ImageData | None = None


def sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    """The controller learns the cell and the learning rate together; one seed per worker."""
    return nas.ControllerSampler(space, seed=seed)


def pruner() -> optuna.pruners.BasePruner:
    """ASHA across all workers, through the study's storage."""
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)


def objective(trial: optuna.Trial, device: torch.device) -> float:
    """Train the trial's cell for ``EPOCHS`` epochs and return its validation accuracy."""
    global _data
    if _data is None:  # once per worker process
        _data = nas.load_digits(seed=0)
    arch = space.suggest(trial)
    lr = trial.suggest_float("lr", 0.01, 0.2, log=True)
    trial.set_user_attr("arch", str(arch))
    trial.set_user_attr("device", str(device))
    nas.seed_everything(trial.number)
    model = space.build(arch, channels=8, cells_per_stage=1, in_channels=1, num_classes=10)
    started = time.perf_counter()
    try:
        return nas.train(model, _data, epochs=EPOCHS, lr=lr, trial=trial, device=device)
    finally:
        # Wall time per epoch that ran (a pruned trial stops early), for the step-time table.
        epochs_run = len(trial.storage.get_trial(trial._trial_id).intermediate_values)
        if epochs_run:
            trial.set_user_attr("seconds_per_epoch", (time.perf_counter() - started) / epochs_run)
