"""Rollout workers beside RLlib (make bench-rollouts): PPO on CartPole-v1 with 1 and 2 rollout
workers, Shoal (`trading rl train --env-runners N`, release, the rl-zoo settings: 8 environments
× 32 steps per update) and RLlib 2.60 (default API stack and settings, train_batch_size 4000,
Benchmarks/rollouts_rllib.py), one after the other in one run; then PPO with 2 workers over 30
seeds beside single-process PPO (steps to an evaluation of 475, two-sided Mann-Whitney U).
Writes its section of Benchmarks/RESULTS.md.
Usage: python3 Benchmarks/rollouts_bench.py BIN_DIR OUT_DIR RESULTS.md [--seeds N] [--rllib-limit SECONDS]
"""
import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ppo_seeds import mann_whitney  # noqa: E402
from results_section import replace_section  # noqa: E402
from rl_shoal import train  # noqa: E402
from train_bench import processor  # noqa: E402

BEGIN = "<!-- bench-rollouts begin -->"
END = "<!-- bench-rollouts end -->"
GOAL = 475


def shoal_run(binary, out, runners, seed):
    """One run of 100,000 steps (no early stop), evaluated every 2,048 steps."""
    folder = f"{out}/shoal-{runners}-{seed}"
    command = [binary, "rl", "train", "--algo", "ppo", "--env", "cartpole", "--steps", "100000", "--seed", str(seed),
               "--eval-interval", "2048", "--threads", "1", "--env-runners", str(runners), "--out", folder]
    began = time.time()
    completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.time() - began
    if completed.returncode != 0:
        print(completed.stdout[-3000:], file=sys.stderr)
        raise SystemExit(f"{' '.join(command)} failed with {completed.returncode}")
    lines = completed.stdout.splitlines()
    progress = [line for line in lines if "sampling" in line and "steps/s" in line]
    sampling = float(re.search(r"sampling (\d+) steps/s", progress[-1]).group(1))
    updates = float(re.search(r"learner (\d+) updates/s", progress[-1]).group(1))
    rows = list(csv.DictReader(open(f"{folder}/curve.csv")))
    last = rows[-1]
    trained = next((float(r["seconds"]) for r in rows if float(r["training_mean_100"] or "nan") >= GOAL), None)
    evaluated = next((float(r["seconds"]) for r in rows if float(r["evaluation_mean"]) >= GOAL), None)
    print(f"shoal {runners} runner(s) seed {seed}: {progress[-1]}", flush=True)
    return {
        "runners": runners, "seed": seed, "steps": int(last["steps"]), "seconds": float(last["seconds"]),
        "steps_per_second": int(last["steps"]) / float(last["seconds"]), "sampling_steps_per_second": sampling,
        "updates_per_second": updates, "seconds_to_475_training": trained, "seconds_to_475_evaluation": evaluated,
        "process_wall_seconds": wall,
    }


ENCODER_CONFIG = {"data": {"bars": 4000}, "batchSize": 64, "maxSteps": 20, "epochs": 1, "patience": 0}


def hybrid_scaling(bin_dir, out, steps):
    """PPO on the trading environment observing a registered hybrid model's features (the default
    architecture, 10 Monte Carlo passes per bar), 1 and 2 runners on a running cluster: the
    sampling phase's steps/s. The encoder is trained for a few steps and registered first."""
    session = os.path.abspath(f"{out}/session")
    env = dict(os.environ, SHOAL_SESSION_DIR=session)
    cluster, trading = os.path.join(bin_dir, "cluster"), os.path.join(bin_dir, "trading")
    subprocess.run([cluster, "start", "--head", "--port", "0"], check=True, env=env, stdout=sys.stderr)
    try:
        config = f"{out}/encoder.json"
        json.dump(ENCODER_CONFIG, open(config, "w"))
        subprocess.run([trading, "model", "train", "--config", config, "--out", f"{out}/encoder", "--register", "bench-encoder"],
                       check=True, env=env, stdout=sys.stderr)
        rows = {}
        for runners in (1, 2):
            command = [trading, "rl", "train", "--algo", "ppo", "--env", "trading", "--features", "hybrid", "--encoder",
                       "bench-encoder", "--bars", "4000", "--steps", str(steps), "--eval-interval", str(steps),
                       "--eval-episodes", "1", "--env-runners", str(runners), "--envs-per-runner", str(8 // runners),
                       "--out", f"{out}/hybrid-{runners}"]
            completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if completed.returncode != 0:
                print(completed.stdout[-3000:], file=sys.stderr)
                raise SystemExit(f"{' '.join(command)} failed with {completed.returncode}")
            line = [l for l in completed.stdout.splitlines() if "sampling" in l and "steps/s" in l][-1]
            print(f"hybrid trading, {runners} runner(s): {line}", flush=True)
            rows[runners] = float(re.search(r"sampling (\d+) steps/s", line).group(1))
        return {"steps": steps, "sampling_steps_per_second": {str(k): v for k, v in rows.items()}, "encoder": ENCODER_CONFIG}
    finally:
        subprocess.run([cluster, "stop"], env=env, stdout=sys.stderr)


def ensemble_runs(binary, out, steps, bands=(0.0, 0.25)):
    """`trading rl train --algo ensemble --env trading` (members trained at once as actors, judged
    beside cash on the validation span) without and with a rebalancing band: the out-of-sample
    rows of oos.json and the members' validation lines."""
    runs = {}
    for band in bands:
        folder = f"{out}/ensemble-{band}"
        command = [binary, "rl", "train", "--algo", "ensemble", "--env", "trading", "--steps", str(steps),
                   "--rebalance-band", str(band), "--out", folder]
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if completed.returncode != 0:
            print(completed.stdout[-3000:], file=sys.stderr)
            raise SystemExit(f"{' '.join(command)} failed with {completed.returncode}")
        lines = [l for l in completed.stdout.splitlines() if l.startswith("Member ") or l.startswith("No member")]
        print("\n".join(lines), flush=True)
        runs[str(band)] = {"oos": json.load(open(f"{folder}/oos.json")), "validation": lines}
    return {"steps": steps, "runs": runs}


def offpolicy_runs(binary, out, seeds=range(5), steps=20_000):
    """SAC on Pendulum-v1, in one process and with 2 rollout workers (one environment each,
    transitions feeding the learner's buffer while the next batch samples), seeds 0-4: the steps to
    an evaluation of -200 and the last evaluation."""
    rows = {"single": [], "two_runners": []}
    for seed in seeds:
        for name, extra in (("single", ()), ("two_runners", ("--env-runners", "2"))):
            run = train(binary, out, "sac", "pendulum", steps, seed, 1000, -200, extra)
            rows[name].append({"first_reached": run["first_reached"], "final_eval": run["final_eval"],
                               "steps_per_second": run["steps_per_second"]})
    return {"steps": steps, "runs": rows}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin")
    parser.add_argument("out")
    parser.add_argument("results")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--rllib-limit", type=float, default=300)
    parser.add_argument("--hybrid-steps", type=int, default=1024)
    parser.add_argument("--rllib-only", action="store_true", help="rerun RLlib's side; keep Shoal's from OUT_DIR/rollouts.json")
    parser.add_argument("--rerun", choices=["ensemble", "offpolicy"],
                        help="rerun one part (the ensemble's runs, SAC's); keep the rest from OUT_DIR/rollouts.json")
    parser.add_argument("--ensemble-steps", type=int, default=20_000)
    arguments = parser.parse_args()
    os.makedirs(arguments.out, exist_ok=True)
    binary = os.path.join(arguments.bin, "trading")
    here = os.path.dirname(os.path.abspath(__file__))
    if arguments.rerun:
        figures = json.load(open(f"{arguments.out}/rollouts.json"))
        figures[arguments.rerun] = (ensemble_runs(binary, arguments.out, arguments.ensemble_steps) if arguments.rerun == "ensemble"
                                    else offpolicy_runs(binary, arguments.out))
        json.dump(figures, open(f"{arguments.out}/rollouts.json", "w"), indent=1)
        report(figures, arguments.results)
        return
    previous = json.load(open(f"{arguments.out}/rollouts.json")) if arguments.rllib_only else None
    figures = {"processor": processor(), "date": time.strftime("%Y-%m-%d"), "runs": {}}
    for runners in (1, 2):
        shoal = (previous["runs"][str(runners)]["shoal"] if previous else
                 [shoal_run(binary, arguments.out, runners, seed) for seed in range(5)])
        figures["runs"][runners] = {"shoal": shoal}
        for settings in ("default", "zoo"):
            out = f"{arguments.out}/rllib-{settings}-{runners}.json"
            subprocess.run([sys.executable, f"{here}/rollouts_rllib.py", str(runners), out, "--limit", str(arguments.rllib_limit),
                            "--settings", settings], check=True, stdout=sys.stderr)
            figures["runs"][runners]["rllib" if settings == "default" else "rllib_zoo"] = json.load(open(out))
    if previous:
        figures["seeds"], figures["hybrid"] = previous["seeds"], previous["hybrid"]
        figures["ensemble"] = previous.get("ensemble") or ensemble_runs(binary, arguments.out, arguments.ensemble_steps)
        figures["offpolicy"] = previous.get("offpolicy") or offpolicy_runs(binary, arguments.out)
        json.dump(figures, open(f"{arguments.out}/rollouts.json", "w"), indent=1)
        report(figures, arguments.results)
        return
    # Learning with 2 workers beside one process: steps to an evaluation of 475 over many seeds.
    seeds = range(arguments.seeds)
    single = [train(binary, arguments.out, "ppo", "cartpole", 100_000, s, 2048, GOAL, stop=True)["first_reached"] for s in seeds]
    workers = [train(binary, arguments.out, "ppo", "cartpole", 100_000, s, 2048, GOAL, ("--env-runners", "2"),
                     stop=True)["first_reached"] for s in seeds]
    figures["seeds"] = {"single": single, "two_runners": workers}
    figures["hybrid"] = hybrid_scaling(arguments.bin, arguments.out, arguments.hybrid_steps)
    figures["ensemble"] = ensemble_runs(binary, arguments.out, arguments.ensemble_steps)
    figures["offpolicy"] = offpolicy_runs(binary, arguments.out)
    json.dump(figures, open(f"{arguments.out}/rollouts.json", "w"), indent=1)
    report(figures, arguments.results)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(f, results):
    def seconds(value):
        return "not reached" if value is None else f"{value:.2f}"

    lines = [
        BEGIN,
        "## Rollout workers (issue: parallel RL rollouts)",
        "",
        f"Measured {f['date']} by `make bench-rollouts`, one run, release build, on {f['processor']}; Shoal and RLlib "
        "one after the other in that run. Rollout workers are processes of one machine (one node daemon): each Shoal "
        "runner is an actor in a process of its own, RLlib's are Ray actors. PPO on CartPole-v1: Shoal with the rl-zoo "
        "settings (8 environments × 32 steps per update, 20 epochs of batch 256), split over the workers; RLlib 2.60 with "
        "its defaults on the default API stack (train_batch_size 4000, minibatch 128, 30 epochs), the same at both worker "
        "counts, and again with Shoal's settings (8 environments × 32 steps, 20 epochs of one minibatch of 256, the same "
        "discounts, clipping, networks and learning-rate schedule). Both stop on the same rule: an evaluation of 10 "
        "deterministic episodes, about every 2,048 steps, reaching a mean return of 475.",
        "",
        "| PPO on CartPole-v1 | workers | Shoal | RLlib, its defaults | Shoal / RLlib | RLlib, Shoal's settings | Shoal / RLlib |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for runners, run in sorted(f["runs"].items(), key=lambda item: int(item[0])):
        shoal, rllib, zoo = run["shoal"], run["rllib"], run["rllib_zoo"]
        overall = median([r["steps_per_second"] for r in shoal])
        sampling = median([r["sampling_steps_per_second"] for r in shoal])
        evaluated = median([r["seconds_to_475_evaluation"] for r in shoal])

        def rate(value, reference):
            return f"{value / reference:.0f}×" if reference else ""

        def sooner(reference):
            return f"{reference / evaluated:.0f}× sooner" if reference and evaluated else ""

        lines.append(f"| sampled steps/s, overall (learning included) | {runners} | {overall:,.0f} | "
                     f"{rllib['steps_per_second']:,.0f} | **{rate(overall, rllib['steps_per_second'])}** | "
                     f"{zoo['steps_per_second']:,.0f} | {rate(overall, zoo['steps_per_second'])} |")
        lines.append(f"| sampled steps/s, sampling phase | {runners} | {sampling:,.0f} | "
                     f"{rllib['sampling_steps_per_second'] or 0:,.0f} | {rate(sampling, rllib['sampling_steps_per_second'])} | "
                     f"{zoo['sampling_steps_per_second'] or 0:,.0f} | {rate(sampling, zoo['sampling_steps_per_second'])} |")
        lines.append(f"| wall seconds to an evaluation of 475 | {runners} | {seconds(evaluated)} | "
                     f"{seconds(rllib['seconds_to_475'])} | **{sooner(rllib['seconds_to_475'])}** | "
                     f"{seconds(zoo['seconds_to_475'])} | {sooner(zoo['seconds_to_475'])} |")
    lines += [
        "",
        "Goals: ≥ 100× RLlib's sampled steps/s and ≤ a hundredth of its wall time to 475, at each worker count (against "
        "RLlib's defaults, the issue's setting). Shoal: the median of 5 seeds (0–4), each 100,000 steps with an "
        "evaluation every 2,048 (its wall time includes the evaluations); environment steps over the training time "
        "(evaluations left out); the sampling phase: steps over the time the learner waited for its workers' parts "
        "(publishing the weights included). RLlib: seed 0, its wall time from the built algorithm (evaluations, run "
        "between iterations in the driver's env runner, included), its training rate over the time in `train()`, its "
        "sampling phase from its env_runner_sampling_timer (a smoothed mean per iteration, summed); setup (ray.init and build) took "
        + ", ".join(f"{run['rllib']['setup_seconds']:.1f} s with {n}" for n, run in sorted(f["runs"].items()))
        + " worker(s), beside Shoal's whole process (embedded cluster started and stopped) of "
        + ", ".join(f"{median([r['process_wall_seconds'] for r in run['shoal']]):.1f} s with {n}"
                    for n, run in sorted(f["runs"].items()))
        + ". Shoal's overall rate is bounded by its learner: 20 updates of two 64×64 networks on 256 samples take "
        "about 5.4 ms of each 7 ms iteration here (about 50 GFLOP/s, near one core's sgemm rate at these sizes), which "
        "caps the overall rate near 47,000 steps/s with sampling free.",
        "",
    ]
    single, two = f["seeds"]["single"], f["seeds"]["two_runners"]
    never = 100_000 + 2048
    u, p = mann_whitney([v or never for v in two], [v or never for v in single])

    def row(name, values):
        reached = [v for v in values if v is not None]
        return (f"| {name} | {len(reached)} of {len(values)} | {median(reached) or 0:,.0f} | "
                f"{statistics.mean(reached) if reached else 0:,.0f} |")

    lines += [
        f"PPO with 2 workers beside one process, seeds 0–{len(single) - 1}, each stopped when the evaluation every 2,048 "
        "steps first reached 475 (the rl-zoo settings; with workers, 2 × 4 environments):",
        "",
        "| | reached 475 | median steps | mean steps |",
        "|---|---:|---:|---:|",
        row("2 rollout workers", two),
        row("one process", single),
        "",
        f"Two-sided Mann-Whitney U test of the steps (seeds that never reached the goal ranked last): U = {u:.0f}, "
        f"p = {p:.2f}; " + ("at the 5% level it cannot tell the two apart." if p >= 0.05 else
                            "at the 5% level the two differ."),
        "",
    ]
    hybrid = f["hybrid"]
    h1, h2 = hybrid["sampling_steps_per_second"]["1"], hybrid["sampling_steps_per_second"]["2"]
    lines += [
        "| PPO on the trading environment with hybrid features | runners | sampled steps/s (sampling phase) | scaling |",
        "|---|---:|---:|---:|",
        f"| 8 environments in all | 1 | {h1:,.1f} | |",
        f"| 8 environments in all | 2 | {h2:,.1f} | **{h2 / (2 * h1):.0%}** |",
        "",
        f"Goal ≥ 85% scaling from 1 to 2 runners (2 vCPUs, one node daemon). Each step of each environment observes the "
        f"hybrid model's features of its bar, computed when a runner's environments first meet the bar (the default "
        f"architecture, window 64, 10 Monte Carlo dropout passes for the uncertainty; each runner keeps its own bars), "
        f"from an encoder registered by `trading model train` ({hybrid['encoder']['maxSteps']} steps) and read by the "
        f"runners from the object store; {hybrid['steps']:,} steps per run on a 4,000-bar market.",
        "",
    ]
    offpolicy = f.get("offpolicy")
    if offpolicy:
        def described(runs):
            reached = [r["first_reached"] for r in runs if r["first_reached"] is not None]
            finals = [r["final_eval"] for r in runs]
            rates = [r["steps_per_second"] for r in runs]
            return (f"{len(reached)} of {len(runs)} | {median(reached) or 0:,.0f} | {statistics.mean(finals):.1f} | "
                    f"{', '.join(f'{v:.0f}' for v in finals)} | {median(rates):,.0f} |")

        lines += [
            f"SAC on Pendulum-v1 with 2 rollout workers beside one process, seeds 0–{len(offpolicy['runs']['single']) - 1}, "
            f"{offpolicy['steps']:,} steps, an evaluation (10 episodes) every 1,000: the workers' transitions feed the "
            "learner's replay buffer while the next batch (about 256 transitions) samples with the weights of that "
            "moment, one gradient step per environment step either way.",
            "",
            "| SAC, Pendulum-v1 | reached −200 | median steps to −200 | mean last evaluation | last evaluations | steps/s |",
            "|---|---:|---:|---:|---|---:|",
            "| 2 rollout workers | " + described(offpolicy["runs"]["two_runners"]),
            "| one process | " + described(offpolicy["runs"]["single"]),
            "",
        ]
    ensemble = f.get("ensemble")
    if ensemble:
        lines += [
            "### The ensemble on the cluster, out of sample",
            "",
            f"`trading rl train --algo ensemble --env trading --steps {ensemble['steps']:,}` (seed 0): PPO "
            f"({5 * ensemble['steps']:,} steps), SAC and TD3 ({ensemble['steps']:,} each) train at once, one actor each "
            "(two at a time on these 2 vCPUs), on the first 70% of a 20,000-bar synthetic market; each then trades the "
            "next 15% (validation) and is left out unless it matches holding cash after costs; the last 15% is the test "
            "below. Costs 0.1% commission + 0.05% slippage on every trade; Sharpe annualised for one-minute bars.",
            "",
            "| rebalancing band | strategy | return | Sharpe | max drawdown | trades | turnover per bar | costs | return + costs |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for band, run in ensemble["runs"].items():
            for name, row in sorted(run["oos"].items(), key=lambda item: -item[1]["sharpe"]):
                lines.append(
                    f"| {float(band):g} | {name} | {row['return'] * 100:+.2f}% | {row['sharpe']:.2f} | "
                    f"{row['max_drawdown'] * 100:.2f}% | {row.get('trades', 0):.0f} | {row.get('turnover_per_bar', 0):.4f} | "
                    f"{row.get('costs', 0) * 100:.2f}% | {(row['return'] + row.get('costs', 0)) * 100:+.2f}% |")
        lines += ["", "On the validation span (what decides who is left out):", ""]
        for band, run in ensemble["runs"].items():
            lines += [f"- band {float(band):g}: " + " ".join(run["validation"])]
        lines += [
            "",
            "Why the members lose: compare the return and costs columns. Without a band PPO's deterministic policy "
            "changes its position on nearly every bar (its Gaussian's mean moves a little each bar) and SAC swings its "
            "position widely; their costs are about their whole loss, so before costs they are near flat: neither found "
            "an edge on this market that survives 0.15% a trade. A band cuts the number of trades but, with members "
            "trained under it taking larger swings, not the losses. Judged on the validation span after costs, members "
            "that do not match cash are left out, and with none left the ensemble holds cash.",
        ]
    lines += [
        END,
    ]
    replace_section(results, BEGIN, END, lines)


if __name__ == "__main__":
    main()
