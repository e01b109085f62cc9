"""PPO's sample efficiency over many seeds (make bench-ppo-seeds, also run by make bench):
Shoal's `trading rl train --algo ppo` and Stable-Baselines3's PPO with the rl-zoo CartPole
settings, each seed stopped when the 10-episode evaluation every 2,048 steps first reaches 475. Steps to a threshold vary several-fold between seeds, so three or thirteen seeds
cannot tell two implementations apart; this compares the two distributions with a two-sided
Mann-Whitney U test and writes its section of Benchmarks/RESULTS.md.
Usage: python3 Benchmarks/ppo_seeds.py BIN_DIR OUT_DIR RESULTS.md [--seeds N]
"""
import argparse
import datetime
import json
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_section import replace_section  # noqa: E402
from rl_shoal import train  # noqa: E402


def mann_whitney(a, b):
    """U of `a` against `b` and the two-sided p-value, from the normal approximation with the
    variance corrected for ties (samples here are multiples of the evaluation interval)."""
    pooled = sorted((value, side) for side, values in ((0, a), (1, b)) for value in values)
    ranks, index = {}, 0
    ties = 0.0
    while index < len(pooled):
        end = index
        while end + 1 < len(pooled) and pooled[end + 1][0] == pooled[index][0]:
            end += 1
        ranks[pooled[index][0]] = (index + end + 2) / 2
        size = end - index + 1
        ties += size**3 - size
        index = end + 1
    n, m = len(a), len(b)
    u = sum(ranks[value] for value in a) - n * (n + 1) / 2
    mean = n * m / 2
    variance = n * m / 12 * ((n + m + 1) - ties / ((n + m) * (n + m - 1)))
    z = (abs(u - mean) - 0.5) / math.sqrt(variance) if variance > 0 else 0.0
    return u, math.erfc(max(z, 0.0) / math.sqrt(2))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin")
    parser.add_argument("out")
    parser.add_argument("results")
    parser.add_argument("--seeds", type=int, default=30)
    arguments = parser.parse_args()
    os.makedirs(arguments.out, exist_ok=True)
    binary = os.path.join(arguments.bin, "trading")
    shoal = [train(binary, arguments.out, "ppo", "cartpole", 100_000, seed, 2048, 475, stop=True)["first_reached"]
             for seed in range(arguments.seeds)]

    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from rl_sb3 import run

    torch.set_num_threads(1)

    def ppo_zoo(seed):
        env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
        return PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                   learning_rate=lambda p: 1e-3 * p, clip_range=lambda p: 0.2 * p, seed=seed, verbose=0, device="cpu")

    sb3 = [run("ppo-zoo", ppo_zoo, "CartPole-v1", 100_000, 2048, 475, seed, stop=True)["first_reached"]
           for seed in range(arguments.seeds)]
    json.dump({"shoal": shoal, "sb3": sb3}, open(f"{arguments.out}/ppo_seeds.json", "w"))

    def summary(values):
        reached = [v for v in values if v is not None]
        if not reached:
            return len(reached), None, None
        return len(reached), statistics.median(reached), statistics.mean(reached)

    # Seeds that never reach the goal count as the budget and one more interval: later than any that did.
    never = 100_000 + 2048
    u, p = mann_whitney([v or never for v in shoal], [v or never for v in sb3])
    (shoal_reached, shoal_median, shoal_mean), (sb3_reached, sb3_median, sb3_mean) = summary(shoal), summary(sb3)
    version = __import__("stable_baselines3").__version__
    begin, end = "<!-- ppo-seeds:begin -->", "<!-- ppo-seeds:end -->"
    lines = [begin, "### PPO over many seeds", ""]
    lines.append(f"Measured {datetime.date.today()} by `make bench-ppo-seeds`, both systems back to back on one thread: PPO with")
    lines.append(f"the rl-zoo CartPole settings, seeds 0–{arguments.seeds - 1}, each stopped when the evaluation every 2,048 steps")
    lines.append(f"first reached 475 (Shoal's `trading rl train`, Stable-Baselines3 {version}).")
    lines.append("")
    lines.append("| | reached 475 | median steps | mean steps | steps per seed, sorted |")
    lines.append("|---|---:|---:|---:|---|")
    for name, values, reached, median, mean in [("Shoal", shoal, shoal_reached, shoal_median, shoal_mean),
                                               ("Stable-Baselines3", sb3, sb3_reached, sb3_median, sb3_mean)]:
        ordered = ", ".join(f"{v:,}" if v is not None else "never" for v in sorted(values, key=lambda v: v or never))
        figures = "— | —" if median is None else f"{median:,.0f} | {mean:,.0f}"
        lines.append(f"| {name} | {reached} of {len(values)} | {figures} | {ordered} |")
    lines.append("")
    verdict = "cannot tell the two apart" if p >= 0.05 else "tells them apart"
    lines.append(f"Two-sided Mann-Whitney U test of the steps (seeds that never reached the goal ranked last): U = {u:.0f},")
    lines.append(f"p = {p:.2f}; at the 5% level it {verdict}.")
    lines.append(end)
    replace_section(arguments.results, begin, end, lines)


if __name__ == "__main__":
    main()
