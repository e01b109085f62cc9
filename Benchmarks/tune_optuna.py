"""Optuna 5's side of `make bench-tune`: TPESampler (defaults, seeded) on Branin, Hartmann-6
and a 5-D Styblinski-Tang with a log-scaled, an integer and a categorical dimension, each
seed's best value after every trial. Prints one JSON object {function: {seed: [best so far]}}."""
import json
import math
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def branin(trial):
    x, y = trial.suggest_float("x", -5, 10), trial.suggest_float("y", 0, 15)
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]


def hartmann6(trial):
    x = [trial.suggest_float(f"x{j}", 0, 1) for j in range(6)]
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j] * 1e-4) ** 2 for j in range(6))) for i in range(4))


def styblinski_tang(trial):
    xs = [
        trial.suggest_float("x0", -5, 5),
        trial.suggest_float("x1", 1, 11, log=True) - 6,
        trial.suggest_int("x2", -5, 5),
        trial.suggest_categorical("x3", list(range(-5, 6))),
        trial.suggest_float("x4", -5, 5),
    ]
    return sum(x**4 - 16 * x * x + 5 * x for x in xs) / 2


FUNCTIONS = {"branin": branin, "hartmann6": hartmann6, "styblinski-tang": styblinski_tang}


def main():
    trials, seeds = int(sys.argv[1]), int(sys.argv[2])
    out = {}
    for name, function in FUNCTIONS.items():
        out[name] = {}
        for seed in range(seeds):
            study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), direction="minimize")
            study.optimize(function, n_trials=trials)
            best, curve = math.inf, []
            for trial in study.trials:
                best = min(best, trial.value)
                curve.append(best)
            out[name][str(seed)] = curve
        print(name, "done", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
