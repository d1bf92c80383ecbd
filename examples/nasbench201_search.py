"""Score a sampler on NAS-Bench-201 in seconds: table look-ups charged their training time.

Run:  python examples/nasbench201_search.py --table ../shared/benchmarks/nasbench201/cifar10.csv
"""

from __future__ import annotations

import argparse

import optuna

from optuna_nas.benchmarks import NasBench201Objective, NasBench201Table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", required=True)
    parser.add_argument("--budget", type=float, default=12000.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    table = NasBench201Table.load(args.table)
    objective = NasBench201Objective(table, budget_s=args.budget)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed)
    )
    study.set_metric_names(["valid accuracy"])  # what optuna-dashboard's plots call it
    study.optimize(objective)  # stops by itself when the simulated budget is spent
    best = objective.best
    assert best is not None
    print(f"{objective.evaluations} evaluations; best {best.arch}")
    print(f"search valid acc {best.search_valid_acc:.2f}, test acc {best.final_test_acc:.2f}")


if __name__ == "__main__":
    main()
