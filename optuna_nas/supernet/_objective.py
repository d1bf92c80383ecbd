"""The weight-sharing objective: each trial trains and scores one path of a supernet."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import optuna
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from torch.utils.data._utils.collate import default_collate

from optuna_nas._constraints import (
    ArchConstraints,
    arch_constraint_values,
    check_arch_constraints,
    feasible,
    record_constraints,
)
from optuna_nas.asha import _check_objectives, _directions
from optuna_nas.data import ImageData
from optuna_nas.errors import NonFiniteLossError
from optuna_nas.nn._ops import plain_pooling
from optuna_nas.spaces._base import Architecture
from optuna_nas.supernet._checkpoint import CheckpointTarget, load_checkpoint, save_checkpoint
from optuna_nas.supernet._supernet import Supernet

__all__ = ["WeightSharingObjective"]

_logger = logging.getLogger(__name__)

_FORMAT = 1

#: What a trial can return: the shared-weight accuracy, then costs of its path.
_OBJECTIVES = ("accuracy", "params", "flops")


def _batch(dataset: Dataset[Any], index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(dataset, TensorDataset):
        images, labels = (t[index] for t in dataset.tensors[:2])
        return images, labels
    images, labels = default_collate([dataset[int(i)] for i in index])  # type: ignore[no-untyped-call]
    return images, labels


class WeightSharingObjective:
    """An Optuna objective that trains a supernet one architecture per trial.

    A trial takes the architecture its sampler proposes (``supernet.space.suggest(trial)``),
    trains the shared weights on that path for ``steps_per_trial`` minibatches, and returns
    the path's accuracy with the shared weights on ``eval_batches`` validation minibatches
    (a fixed random subset of the validation split, the same for every trial, so values
    are comparable). With :class:`optuna.samplers.RandomSampler` this is random search with
    weight sharing (Li & Talwalkar 2019); with
    :class:`~optuna_nas.samplers.ControllerSampler` (``preset="enas"``) it is ENAS (Pham et
    al. 2018), the controller learning from the shared-weight accuracies.

    Training is SGD with momentum, weight decay and gradient clipping, the learning rate
    annealed by a cosine over ``total_trials * steps_per_trial`` steps when ``total_trials``
    is given (constant otherwise). The minibatch order follows ``seed``: epoch ``e`` of the
    training split is a permutation drawn from ``seed`` and ``e``, so a run resumed from a
    checkpoint continues the same sequence. Every ``checkpoint_every`` trials the supernet,
    the optimizer and the position are saved to ``checkpoint`` (a file written atomically,
    or an Optuna artifact store attached to the study); a new process with the same
    ``checkpoint`` resumes from it. Each trial records ``supernet_step`` (minibatches
    trained before its own) and ``seed`` as user attrs, and the study the checkpoint's
    location.

    In a multi-objective study: ``objectives=("accuracy", "params")`` (or with
    ``"flops"``) makes each trial return its shared-weight accuracy and then the costs of
    its path: ``params``, the parameters the path uses in the supernet
    (:meth:`Supernet.path_parameters`), and ``flops``, one forward pass of the path on one
    input; both are also stored as user attrs. The study must have one direction per
    objective, maximise for the accuracy and minimise for the costs, or the trial fails
    with a ValueError saying so. With the default ``objectives=("accuracy",)`` a trial
    returns one float, so in a multi-objective study wrap it and return the other values
    yourself (``lambda trial: (objective(trial), cost(trial.params))``). Nothing is
    reported or pruned by the objective in either kind of study.

    Constraints known before training: with ``arch_constraints(params) -> sequence of
    floats`` (feasible where all <= 0; ``params`` as ``trial.params`` holds the
    architecture), each trial's constraint values are stored in its system attr
    ``constraints``, where Optuna's samplers read them (``trial.constraints``). The
    architecture comes from the study's sampler, which the objective cannot ask again
    within a trial, so an infeasible one is pruned before it trains a single step (user
    attr ``pruned_reason`` says why; the shared weights never see it). To propose only
    feasible architectures, use :func:`optuna_nas.pipeline.search_stage` (whose default
    random sampler draws feasible ones only) or a sampler that reads
    ``trial.constraints``.

    Paper: Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture
    Search", UAI 2019, https://arxiv.org/abs/1902.07638; Pham et al., "Efficient Neural
    Architecture Search via Parameter Sharing", ICML 2018, https://arxiv.org/abs/1802.03268.

    Args:
        supernet: The shared weights.
        data: The splits; ``data.train`` trains, ``data.valid`` scores.
        steps_per_trial: Minibatches trained per trial.
        eval_batches: Validation minibatches per score, or ``None`` for the whole split.
        batch_size: Minibatch size (training and scoring).
        lr: Initial learning rate.
        lr_min: Final learning rate of the cosine schedule.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        grad_clip: Max gradient norm, or ``None``.
        total_trials: Trials the cosine schedule spans; ``None`` keeps ``lr`` constant.
        checkpoint: Where to checkpoint: a file path or an Optuna artifact store; ``None``
            turns checkpoints off.
        checkpoint_every: Trials between checkpoints.
        seed: Seed of the minibatch order and of the validation subset.
        device: Where to train; by default CUDA when available, else the CPU.
        objectives: What a trial returns: ``"accuracy"`` first, then any of ``"params"``
            and ``"flops"`` (the path's costs, minimised). With one objective a trial
            returns a float, with more a tuple in this order.
        arch_constraints: ``arch_constraints(params) -> sequence of floats``, feasible
            where all <= 0; an infeasible trial is pruned before training. ``None``: no
            constraints.
    """

    def __init__(
        self,
        supernet: Supernet,
        data: ImageData,
        *,
        steps_per_trial: int = 50,
        eval_batches: int | None = 4,
        batch_size: int = 64,
        lr: float = 0.025,
        lr_min: float = 0.001,
        momentum: float = 0.9,
        weight_decay: float = 3e-4,
        grad_clip: float | None = 5.0,
        total_trials: int | None = None,
        checkpoint: CheckpointTarget | None = None,
        checkpoint_every: int = 10,
        seed: int = 0,
        device: str | torch.device | None = None,
        objectives: Sequence[str] = ("accuracy",),
        arch_constraints: ArchConstraints | None = None,
    ) -> None:
        if not isinstance(supernet, Supernet):
            raise TypeError(f"WeightSharingObjective needs a Supernet, got {supernet!r}.")
        for name, value in (("steps_per_trial", steps_per_trial), ("batch_size", batch_size),
                            ("checkpoint_every", checkpoint_every)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if eval_batches is not None and (not isinstance(eval_batches, int) or eval_batches < 1):
            raise ValueError(f"eval_batches must be a positive integer or None, got "
                             f"{eval_batches!r}.")
        if total_trials is not None and total_trials < 1:
            raise ValueError(f"total_trials must be positive or None, got {total_trials!r}.")
        if len(data.train) == 0 or len(data.valid) == 0:  # type: ignore[arg-type]
            raise ValueError(f"The {data.name} data has an empty train or valid split.")
        self.objectives = _check_objectives(objectives, "WeightSharingObjective", _OBJECTIVES)
        check_arch_constraints(arch_constraints)
        self.arch_constraints = arch_constraints
        self._costs: dict[Architecture, dict[str, int]] = {}
        self.supernet = supernet
        self.space = supernet.space
        self.data = data
        self.steps_per_trial = steps_per_trial
        self.eval_batches = eval_batches
        self.batch_size = batch_size
        self.lr = lr
        self.lr_min = lr_min
        self.grad_clip = grad_clip
        self.total_trials = total_trials
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.seed = seed
        self.device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.supernet.to(self.device)
        self.optimizer = torch.optim.SGD(
            self.supernet.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
        self.step = 0  # minibatches trained so far
        self.trials = 0  # trials trained so far
        self._loaded = checkpoint is None
        n_valid = len(data.valid)  # type: ignore[arg-type]
        order = torch.randperm(n_valid, generator=torch.Generator().manual_seed(seed + 1))
        self._valid_index = order if eval_batches is None else order[: eval_batches * batch_size]

    # ---- the minibatch stream -------------------------------------------------------------
    def _train_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.data.train)  # type: ignore[arg-type]
        per_epoch = max(1, n // self.batch_size)  # full batches only: BN needs > 1 sample
        epoch, position = divmod(self.step, per_epoch)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=generator)
        index = order[position * self.batch_size : (position + 1) * self.batch_size]
        return _batch(self.data.train, index)

    def _learning_rate(self) -> float:
        if self.total_trials is None:
            return self.lr
        total = self.total_trials * self.steps_per_trial
        progress = min(1.0, self.step / total)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * progress))

    # ---- training and scoring -------------------------------------------------------------
    def train_path(
        self, arch: Architecture, steps: int, trial: optuna.Trial | None = None
    ) -> None:
        """Train the shared weights on one architecture's path for ``steps`` minibatches."""
        net = self.supernet
        net.train()
        criterion = nn.CrossEntropyLoss()
        for _ in range(steps):
            for group in self.optimizer.param_groups:
                group["lr"] = self._learning_rate()
            images, labels = self._train_batch()
            images, labels = images.to(self.device), labels.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss = criterion(net(images, arch), labels)
            value = loss.item()
            if not math.isfinite(value):
                message = (
                    f"The supernet's training loss became {value} at step {self.step} on "
                    f"{arch}. Lower lr (now {self._learning_rate():g}) or keep grad_clip on; "
                    "this trial is stopped."
                )
                if trial is not None:
                    trial.set_user_attr("fail_reason", message)
                raise NonFiniteLossError(message)
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
            self.optimizer.step()
            self.step += 1

    def score(self, arch: Architecture, *, full: bool = False) -> float:
        """Accuracy of one architecture with the shared weights, on the scoring subset.

        Args:
            arch: An architecture of the supernet's space.
            full: Score on the whole validation split instead of the subset.
        """
        net = self.supernet
        net.eval()
        n = len(self.data.valid)  # type: ignore[arg-type]
        index = torch.arange(n) if full else self._valid_index
        correct = 0
        with torch.no_grad():
            for start in range(0, len(index), self.batch_size):
                images, labels = _batch(self.data.valid, index[start : start + self.batch_size])
                logits = net(images.to(self.device), arch)
                correct += int((logits.argmax(1) == labels.to(self.device)).sum())
        return correct / len(index)

    def feasible(self, arch: Architecture) -> bool:
        """Whether ``arch`` meets ``arch_constraints`` (always, without constraints)."""
        if self.arch_constraints is None:
            return True
        return feasible(arch_constraint_values(self.arch_constraints, self.space.to_params(arch)))

    def costs(self, arch: Architecture) -> dict[str, int]:
        """The costs of an architecture's path: ``params`` (the supernet parameters it
        uses) and ``flops`` (one forward pass on one input, a multiply-add counting two)."""
        made = self._costs.get(arch)
        if made is None:
            from torch.utils.flop_counter import FlopCounterMode

            net = self.supernet
            params = sum(p.numel() for p in net.path_parameters(arch))
            shape = tuple(self.data.train[0][0].shape)
            was_training = net.training
            net.eval()
            try:
                # Two inputs, halved: batch statistics need more than one value per channel.
                counter = FlopCounterMode(display=False)
                with counter, torch.no_grad(), plain_pooling():
                    net(torch.zeros(2, *shape, device=self.device), arch)
                flops = int(counter.get_total_flops()) // 2
            finally:
                net.train(was_training)
            if len(self._costs) > 4096:
                self._costs.clear()
            made = self._costs[arch] = {"params": params, "flops": flops}
        return dict(made)

    def _check_directions(self, study: optuna.Study) -> None:
        want = _directions(self.objectives)
        if list(study.directions) != want:
            have = [d.name.lower() for d in study.directions]
            raise ValueError(
                f"WeightSharingObjective(objectives={self.objectives!r}) returns "
                f"{len(want)} values to {[d.name.lower() for d in want]}, but the study "
                f"{study.study_name!r} has directions {have}; create the study with "
                f"directions={[d.name.lower() for d in want]}, or pass objectives that "
                "match it."
            )

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        if len(self.objectives) > 1:
            self._check_directions(trial.study)
        if not self._loaded:
            self.load(trial.study)
        arch = self.space.suggest(trial)
        if self.arch_constraints is not None:
            record_constraints(trial, self.space, arch, self.arch_constraints)
        trial.set_user_attr("supernet_step", self.step)
        trial.set_user_attr("seed", self.seed)
        self.train_path(arch, self.steps_per_trial, trial)
        accuracy = self.score(arch)
        self.trials += 1
        if self.checkpoint is not None and self.trials % self.checkpoint_every == 0:
            self.save(trial.study)
        if len(self.objectives) == 1:
            return accuracy
        costs = self.costs(arch)
        for name, value in costs.items():
            trial.set_user_attr(name, value)
        return (accuracy, *(float(costs[name]) for name in self.objectives[1:]))

    # ---- checkpoints ----------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {
            "space": repr(self.space),
            "network_options": repr(sorted(self.supernet.network_options.items())),
            "steps_per_trial": self.steps_per_trial,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    def save(self, study: optuna.Study | None = None) -> None:
        """Write a checkpoint now (``checkpoint`` must be set)."""
        if self.checkpoint is None:
            raise ValueError("This objective has no checkpoint location; pass checkpoint=.")
        state = {
            "format": _FORMAT,
            "identity": self._identity(),
            "supernet": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "trials": self.trials,
        }
        save_checkpoint(self.checkpoint, state, study)
        if study is not None:
            study.set_user_attr("supernet_checkpoint", str(self.checkpoint))
        _logger.info("Saved the supernet checkpoint after %d trials.", self.trials)

    def load(self, study: optuna.Study | None = None) -> bool:
        """Resume from the checkpoint if there is one; returns whether one was loaded."""
        self._loaded = True
        if self.checkpoint is None:
            return False
        state = load_checkpoint(self.checkpoint, study)
        if state is None:
            return False
        if state.get("format") != _FORMAT or state.get("identity") != self._identity():
            raise ValueError(
                f"The supernet checkpoint at {self.checkpoint!s} was written by a different "
                f"search ({state.get('identity')}, this one is {self._identity()}); use the "
                "same space, network options, steps_per_trial, batch_size and seed, or "
                "another checkpoint location."
            )
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.trials = int(state["trials"])
        _logger.info("Resumed the supernet from its checkpoint after %d trials.", self.trials)
        return True
