"""Stable-Baselines3's side of the RL benchmark (make bench-rl): the same algorithms, settings,
network sizes, budgets, evaluation schedule (every N steps, 10 deterministic episodes on fresh
seeds) and thread count as `trading rl train`, on Gymnasium's CartPole-v1 and Pendulum-v1.
Training time excludes evaluation. Usage: python3 Benchmarks/rl_sb3.py OUT.json [--seeds 0,1,2] [--quick]
"""
import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, PPO, SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise


class Timed(BaseCallback):
    """Evaluates every `interval` steps; keeps the training time apart from evaluation."""

    def __init__(self, env_id, interval, episodes=10, seed=0, stop_at=None):
        super().__init__()
        self.env = gym.make(env_id)
        self.interval, self.episodes, self.seed, self.stop_at = interval, episodes, seed, stop_at
        self.next_eval = interval
        self.curve = []
        self.training = 0.0
        self.started = None

    def _on_training_start(self):
        self.started = time.perf_counter()

    def evaluate(self):
        returns = []
        for episode in range(self.episodes):
            obs, _ = self.env.reset(seed=1_000_000 + self.seed + episode)
            total, done = 0.0, False
            while not done:
                action, _ = self.model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = self.env.step(action)
                total += reward
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    def _on_step(self):
        if self.num_timesteps >= self.next_eval:
            self.training += time.perf_counter() - self.started
            mean = self.evaluate()
            self.curve.append({"steps": self.num_timesteps, "mean": mean})
            self.next_eval += self.interval
            self.started = time.perf_counter()
            if self.stop_at is not None and mean >= self.stop_at:
                return False
        return True

    def _on_training_end(self):
        self.training += time.perf_counter() - self.started


def run(name, make_model, env_id, steps, interval, threshold, seed, stop=False):
    model = make_model(seed)
    callback = Timed(env_id, interval, seed=seed, stop_at=threshold if stop else None)
    model.learn(total_timesteps=steps, callback=callback)
    reached = next((p["steps"] for p in callback.curve if threshold is not None and p["mean"] >= threshold), None)
    result = {
        "algorithm": name, "seed": seed, "steps": int(model.num_timesteps), "first_reached": reached,
        "final_eval": callback.curve[-1]["mean"] if callback.curve else None,
        "steps_per_second": model.num_timesteps / max(callback.training, 1e-9), "curve": callback.curve,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--quick", action="store_true", help="one seed, shorter budgets (a smoke test)")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in arguments.seeds.split(",")]
    scale = 0.1 if arguments.quick else 1.0
    if arguments.quick:
        seeds = seeds[:1]
    results = {"system": f"Stable-Baselines3 {__import__('stable_baselines3').__version__}, PyTorch {torch.__version__}", "runs": []}

    def ppo_zoo(seed):
        env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
        return PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                   learning_rate=lambda p: 1e-3 * p, clip_range=lambda p: 0.2 * p, seed=seed, verbose=0, device="cpu")

    def ppo_defaults(seed):
        return PPO("MlpPolicy", "CartPole-v1", seed=seed, verbose=0, device="cpu")

    def dqn_defaults(seed):
        return DQN("MlpPolicy", "CartPole-v1", seed=seed, verbose=0, device="cpu")

    def sac_defaults(seed):
        return SAC("MlpPolicy", "Pendulum-v1", seed=seed, verbose=0, device="cpu")

    def td3_like_shoal(seed):
        env = gym.make("Pendulum-v1")
        noise = NormalActionNoise(mean=np.zeros(1), sigma=0.1 * np.ones(1))  # SB3 adds it on the [-1, 1] scale, as Shoal
        return TD3("MlpPolicy", env, gamma=0.98, learning_starts=1000, action_noise=noise, seed=seed, verbose=0, device="cpu")

    for seed in seeds:
        results["runs"].append(run("ppo-zoo", ppo_zoo, "CartPole-v1", int(100_000 * scale), 2048, 475, seed))
    # Ten more PPO seeds, each stopped at the goal.
    results["extra_ppo"] = [] if arguments.quick else [
        run("ppo-zoo", ppo_zoo, "CartPole-v1", 100_000, 2048, 475, seed, stop=True) for seed in range(3, 13)]
    results["runs"].append(run("ppo-defaults", ppo_defaults, "CartPole-v1", int(20_480 * scale), 2048, None, seeds[0]))
    results["runs"].append(run("dqn-defaults", dqn_defaults, "CartPole-v1", int(20_000 * scale), 2000, None, seeds[0]))
    for seed in seeds:
        results["runs"].append(run("sac", sac_defaults, "Pendulum-v1", int(20_000 * scale), 1000, -200, seed))
    for seed in seeds:
        results["runs"].append(run("td3", td3_like_shoal, "Pendulum-v1", int(20_000 * scale), 1000, -200, seed))
    json.dump(results, open(arguments.out, "w"), indent=1)


if __name__ == "__main__":
    main()
