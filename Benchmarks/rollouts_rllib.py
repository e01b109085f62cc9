"""RLlib's side of the rollouts benchmark (make bench-rollouts): PPO on CartPole-v1 with the
default (new) API stack and default settings (train_batch_size 4000), num_env_runners N, trained
until the mean return of the training episodes (RLlib's episode_return_mean, over the last 100)
reaches 475 or the time limit passes. Writes one JSON object: per iteration the wall time since
training began, environment steps sampled, the return, and RLlib's sampling timer.
Usage: python3 Benchmarks/rollouts_rllib.py RUNNERS OUT.json [--limit SECONDS] [--seed S]
"""
import argparse
import json
import os
import time


def lookup(result, *paths):
    """The first of several possible result keys (RLlib has renamed them between releases)."""
    for path in paths:
        node = result
        for key in path.split("/"):
            if not isinstance(node, dict) or key not in node:
                node = None
                break
            node = node[key]
        if node is not None:
            return node
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("runners", type=int)
    parser.add_argument("out")
    parser.add_argument("--limit", type=float, default=300)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig

    began = time.time()
    ray.init(include_dashboard=False, log_to_driver=False)
    config = (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=arguments.runners, num_cpus_per_env_runner=1)
        .debugging(seed=arguments.seed)
    )
    algo = config.build_algo()
    built = time.time()
    iterations = []
    reached = None
    first_keys = None
    while time.time() - built < arguments.limit:
        result = algo.train()
        if first_keys is None:
            first_keys = sorted(result.keys())
        now = time.time() - built
        returns = lookup(result, "env_runners/episode_return_mean", "episode_return_mean")
        sampled = lookup(result, "env_runners/num_env_steps_sampled_lifetime", "num_env_steps_sampled_lifetime")
        sampling = lookup(result, "timers/env_runner_sampling_timer", "env_runners/sample")
        iterations.append({"seconds": now, "sampled": sampled, "return": returns, "sampling_seconds": sampling})
        print(f"rllib {arguments.runners} runner(s): {now:6.1f} s  {sampled} steps  return {returns}  "
              f"sampling {sampling}", flush=True)
        if returns is not None and returns >= 475:
            reached = now
            break
    algo.stop()
    ray.shutdown()
    total = iterations[-1]
    sampling_total = sum(i["sampling_seconds"] or 0 for i in iterations)
    json.dump({
        "runners": arguments.runners, "seed": arguments.seed, "setup_seconds": built - began,
        "seconds_to_475": reached, "seconds": total["seconds"], "sampled": total["sampled"],
        "steps_per_second": total["sampled"] / total["seconds"],
        "sampling_steps_per_second": total["sampled"] / sampling_total if sampling_total else None,
        "iterations": iterations, "result_keys": first_keys,
        "train_batch_size": config.train_batch_size_per_learner,
    }, open(arguments.out, "w"), indent=1)


if __name__ == "__main__":
    main()
