"""Shoal's side of the RL benchmark (make bench-rl): `trading rl train` (release, 1 thread) for
each algorithm, environment and seed, the same budgets and evaluation schedule as
Benchmarks/rl_sb3.py; then the ensemble on the synthetic market, out of sample.
Usage: python3 Benchmarks/rl_shoal.py BIN_DIR OUT_DIR [--seeds 0,1,2] [--quick]
"""
import argparse
import csv
import json
import os
import subprocess
import sys


def train(binary, out, algo, env, steps, seed, interval, threshold, extra=(), stop=False):
    folder = f"{out}/{algo}-{env}-{'-'.join(extra).strip('-').replace('--', '') or 'default'}-{seed}"
    command = [binary, "rl", "train", "--algo", algo, "--env", env, "--steps", str(steps), "--seed", str(seed),
               "--eval-interval", str(interval), "--threads", "1", "--out", folder, *extra]
    if stop:
        command += ["--stop-at", str(threshold)]
    print("$", " ".join(command), flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = [line for line in completed.stdout.splitlines() if " steps/s " in line]
    if last:
        print(last[-1], flush=True)
    if completed.returncode != 0:
        print(completed.stdout[-3000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(command)} failed with {completed.returncode}")
    rows = list(csv.DictReader(open(f"{folder}/curve.csv")))
    reached = next((int(r["steps"]) for r in rows if threshold is not None and float(r["evaluation_mean"]) >= threshold), None)
    return {
        "algorithm": algo, "environment": env, "variant": " ".join(extra) or "default", "seed": seed,
        "steps": int(rows[-1]["steps"]), "first_reached": reached, "final_eval": float(rows[-1]["evaluation_mean"]),
        "steps_per_second": float(rows[-1]["steps_per_second"]), "folder": folder,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin")
    parser.add_argument("out")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--quick", action="store_true")
    arguments = parser.parse_args()
    binary = os.path.join(arguments.bin, "trading")
    seeds = [int(s) for s in arguments.seeds.split(",")]
    scale = 0.1 if arguments.quick else 1.0
    if arguments.quick:
        seeds = seeds[:1]
    os.makedirs(arguments.out, exist_ok=True)
    runs = []
    for seed in seeds:
        runs.append(train(binary, arguments.out, "ppo", "cartpole", int(100_000 * scale), seed, 2048, 475))
    # Ten more PPO seeds, each stopped at the goal: steps to a threshold vary a lot from seed to seed.
    extra = [] if arguments.quick else [
        train(binary, arguments.out, "ppo", "cartpole", 100_000, seed, 2048, 475, stop=True) for seed in range(3, 13)]
    runs.append(train(binary, arguments.out, "ppo", "cartpole", int(20_480 * scale), seeds[0], 2048, None, ("--preset", "sb3")))
    runs.append(train(binary, arguments.out, "rainbow", "cartpole", int(20_000 * scale), seeds[0], 2000, None, ("--preset", "dqn")))
    for seed in seeds:
        runs.append(train(binary, arguments.out, "rainbow", "cartpole", int(100_000 * scale), seed, 2000, 475))
    for seed in seeds:
        runs.append(train(binary, arguments.out, "sac", "pendulum", int(20_000 * scale), seed, 1000, -200))
    for seed in seeds:
        runs.append(train(binary, arguments.out, "td3", "pendulum", int(20_000 * scale), seed, 1000, -200))
    ensemble = train(binary, arguments.out, "ensemble", "trading", int(20_000 * scale), seeds[0], 5000, None)
    ensemble["oos"] = json.load(open(f"{ensemble['folder']}/oos.json"))
    json.dump({"runs": runs, "extra_ppo": extra, "ensemble": ensemble}, open(f"{arguments.out}/shoal_rl.json", "w"), indent=1)


if __name__ == "__main__":
    main()
