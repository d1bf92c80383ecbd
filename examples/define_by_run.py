"""Architecture and hyperparameters learned together, define-by-run, with no space object.

A plain torch MLP on scikit-learn's digits: its depth, each layer's width, activation and
dropout, the learning rate and the batch size are all ordinary ``trial.suggest_*`` calls,
with a branch (a layer's width is only asked for the layers the trial has). The
controller learns every one of them, and which ones a trial asks for, from the trials.

Run:  python examples/define_by_run.py --trials 40
"""

from __future__ import annotations

import argparse

import optuna
import torch
from torch import nn

import optuna_nas as nas

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def build(trial: optuna.Trial, in_features: int, num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for i in range(trial.suggest_int("n_layers", 1, 3)):
        units = trial.suggest_int(f"units_{i}", 16, 256, log=True)
        activation = trial.suggest_categorical(f"activation_{i}", list(ACTIVATIONS))
        dropout = trial.suggest_float(f"dropout_{i}", 0.0, 0.5, step=0.1)
        layers += [nn.Linear(width, units), ACTIVATIONS[activation](), nn.Dropout(dropout)]
        width = units
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(images).argmax(dim=1) == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--storage", default=None, help="e.g. sqlite:///define_by_run.db")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = nas.load_digits(seed=0)
    train_x, train_y = data.train.tensors
    valid_x, valid_y = data.valid.tensors

    def objective(trial: optuna.Trial) -> float:
        nas.seed_everything(trial.number)
        model = build(trial, train_x[0].numel(), data.num_classes)
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        batch_size = trial.suggest_categorical("batch_size", [16, 32, 64, 128])
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        score = 0.0
        for epoch in range(args.epochs):
            model.train()
            order = torch.randperm(len(train_x))
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            score = accuracy(model, valid_x, valid_y)
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return score

    study = optuna.create_study(
        study_name="define_by_run",
        storage=args.storage,
        load_if_exists=True,
        direction="maximize",
        sampler=nas.ControllerSampler(seed=args.seed),  # no space: it learns the params
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    )
    study.set_metric_names(["valid accuracy"])
    study.optimize(objective, n_trials=args.trials)
    print(f"best valid accuracy {study.best_value:.4f}")
    print(study.best_params)


if __name__ == "__main__":
    main()
