"""RLlib's side of the rollouts benchmark (make bench-rollouts): PPO on CartPole-v1 with the
default (new) API stack, its default settings (train_batch_size 4000) or Shoal's (--settings zoo),
num_env_runners N, trained until an evaluation of 10 deterministic episodes (every 2,048 steps
or so, as Shoal's) reaches a mean return of 475, or the time limit passes. Writes one JSON
object: per iteration the wall time since training began, environment steps sampled, the
returns, and RLlib's sampling timer.
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
    parser.add_argument("--settings", choices=["default", "zoo"], default="default",
                        help="zoo: Shoal's (rl-zoo's) CartPole settings instead of RLlib's defaults")
    arguments = parser.parse_args()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig

    began = time.time()
    ray.init(include_dashboard=False, log_to_driver=False)
    config = (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=arguments.runners, num_cpus_per_env_runner=1, create_env_on_local_worker=True)
        .debugging(seed=arguments.seed)
    )
    # Evaluate every 2,048 steps or so, 10 episodes without exploration (in the driver's own env
    # runner), as Shoal's runs do.
    config = config.evaluation(
        evaluation_interval=None, evaluation_duration=10, evaluation_duration_unit="episodes",
        evaluation_config={"explore": False})
    evaluate_every = 2048
    if arguments.settings == "zoo":
        # rl-zoo's CartPole PPO, as Shoal runs it: 8 environments x 32 steps per update, 20 epochs of one
        # minibatch of 256, gamma 0.98, GAE lambda 0.8, separate 64x64 tanh networks, learning rate 1e-3
        # falling linearly to 0 over 100,000 steps.
        from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
        config = (
            config.env_runners(num_envs_per_env_runner=8 // arguments.runners, rollout_fragment_length=32)
            .training(train_batch_size_per_learner=256, minibatch_size=256, num_epochs=20, gamma=0.98, lambda_=0.8,
                      clip_param=0.2, entropy_coeff=0.0, vf_loss_coeff=0.5, grad_clip=0.5,
                      lr=[[0, 1e-3], [100_000, 1e-8]], vf_clip_param=float("inf"), kl_coeff=0.0)
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh",
                                                       vf_share_layers=False))
        )
    algo = config.build_algo()
    built = time.time()
    iterations = []
    reached = None
    first_keys = None
    # Training and evaluation are timed apart (evaluations run here, between iterations), so that
    # the training rate leaves evaluations out as Shoal's does; the wall time to 475 includes them.
    training = 0.0
    next_evaluation = evaluate_every
    while time.time() - built < arguments.limit:
        began_iteration = time.time()
        result = algo.train()
        training += time.time() - began_iteration
        if first_keys is None:
            first_keys = sorted(result.keys())
        returns = lookup(result, "env_runners/episode_return_mean", "episode_return_mean")
        sampled = lookup(result, "env_runners/num_env_steps_sampled_lifetime", "num_env_steps_sampled_lifetime")
        sampling = lookup(result, "timers/env_runner_sampling_timer", "env_runners/sample")
        evaluation = None
        if sampled is not None and sampled >= next_evaluation:
            next_evaluation += evaluate_every
            evaluation = lookup(algo.evaluate(), "env_runners/episode_return_mean", "episode_return_mean")
        now = time.time() - built
        iterations.append({"seconds": now, "training_seconds": training, "sampled": sampled, "return": returns,
                           "evaluation": evaluation, "sampling_seconds": sampling})
        print(f"rllib {arguments.runners} runner(s): {now:6.1f} s  {sampled} steps  return {returns}  "
              f"evaluation {evaluation}  sampling {sampling}", flush=True)
        if evaluation is not None and evaluation >= 475:
            reached = now
            break
    algo.stop()
    ray.shutdown()
    total = iterations[-1]
    sampling_total = sum(i["sampling_seconds"] or 0 for i in iterations)
    json.dump({
        "runners": arguments.runners, "seed": arguments.seed, "settings": arguments.settings, "setup_seconds": built - began,
        "seconds_to_475": reached, "seconds": total["seconds"], "sampled": total["sampled"],
        "steps_per_second": total["sampled"] / total["training_seconds"],
        "sampling_steps_per_second": total["sampled"] / sampling_total if sampling_total else None,
        "iterations": iterations, "result_keys": first_keys,
        "train_batch_size": config.train_batch_size_per_learner,
    }, open(arguments.out, "w"), indent=1)


if __name__ == "__main__":
    main()
