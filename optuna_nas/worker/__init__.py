"""Workers: one process per device, any number of machines, one study in a shared storage.

``optuna-nas worker`` calls :func:`launch_workers`: it creates (or joins) the study and
starts one process per device, each seeing only its own GPU. Every process runs
:func:`run_worker`, the trials of the study until it holds its trial count. On an RDB
storage heartbeats are on (:func:`open_storage`): the trial of a worker killed with SIGKILL
is failed once its heartbeat is stale, and another worker retries it once, with the same
params, so the same architecture. SIGINT or SIGTERM stops a worker cleanly: its running
trial is failed and re-queued, never left RUNNING.

The objective is a user's function named ``module:function`` (or ``path/file.py:function``).
Next to it, its module may define:

- ``space``: the :class:`~optuna_nas.spaces.SearchSpace` a named sampler such as
  ``controller`` searches;
- ``sampler``: an Optuna sampler, or ``sampler(seed)`` returning one (the worker's seed is
  the launch seed plus its index, so workers do not propose the same architectures);
- ``pruner``: an Optuna pruner, or ``pruner()`` returning one;
- ``direction``: ``"maximize"`` or ``"minimize"``, used when the study is created;
- ``directions``: instead of ``direction``, one of them per objective (e.g.
  ``["maximize", "minimize"]``), for a multi-objective study.

A sampler or pruner named on the command line wins over the module's.

In a multi-objective study Optuna has no ``trial.report`` or ``should_prune``: the launcher
refuses a pruner there (:class:`~optuna_nas.errors.WorkerError`, before any worker starts;
``none`` is fine), :func:`optuna_nas.train` keeps each epoch in the user attr
``epoch_values`` instead of reporting it, and each trial's progress line counts the trials
on the Pareto front instead of naming a best trial.
"""

from __future__ import annotations

from optuna_nas.worker._devices import DEVICE_ENV, current_device, parse_devices
from optuna_nas.worker._launch import WorkerConfig, launch_workers
from optuna_nas.worker._objective import (
    PRUNERS,
    WorkerObjective,
    load_objective,
    make_pruner,
    make_worker_sampler,
)
from optuna_nas.worker._run import WorkerReport, run_worker
from optuna_nas.worker._storage import (
    STORAGE_ENV,
    STORAGE_FILE_ENV,
    add_storage_options,
    open_storage,
    redact_url,
    resolve_storage_url,
)

__all__ = [
    "DEVICE_ENV",
    "PRUNERS",
    "STORAGE_ENV",
    "STORAGE_FILE_ENV",
    "WorkerConfig",
    "WorkerObjective",
    "WorkerReport",
    "add_storage_options",
    "current_device",
    "launch_workers",
    "load_objective",
    "make_pruner",
    "make_worker_sampler",
    "open_storage",
    "parse_devices",
    "redact_url",
    "resolve_storage_url",
    "run_worker",
]
