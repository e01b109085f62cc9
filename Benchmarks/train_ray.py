"""Ray Train's side of `make bench-train`: `TorchTrainer` (DDP over gloo, one CPU and one thread
per worker) training Benchmarks/hybrid_reference.py's module at the synthetic market's feature
count, batch 64 per worker, with AdamW and gradient clipping as Shoal's loop.

  python3 Benchmarks/train_ray.py OUT.json --workers N [--steps S] [--warmup W]
      samples per second between step W and the last step (rank 0's clock, all workers' samples);
  python3 train_ray.py --first-step
      the entrypoint for `ray job submit`: prints "first finished step" once rank 0 has taken one.
"""
import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def train_loop(config):
    import torch
    import torch.nn.functional as F
    import ray.train

    sys.path.insert(0, config["path"])
    from hybrid_reference import HybridModel

    torch.set_num_threads(1)
    context = ray.train.get_context()
    rank, size = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(0)
    model = ray.train.torch.prepare_model(HybridModel(features=config["features"]))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    generator = torch.Generator().manual_seed(rank)
    x = torch.randn(64, config["features"], 64, generator=generator)
    labels = torch.randint(0, 3, (64,), generator=generator)
    returns = torch.randn(64, 1, generator=generator)
    marks = []
    for step in range(config["steps"]):
        model.train()
        optimiser.zero_grad()
        logits, regression, _ = model(x)
        loss = F.cross_entropy(logits, labels) + 0.5 * F.mse_loss(regression, returns)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        marks.append(time.perf_counter())
        if step == 0 and rank == 0:
            print("first finished step", flush=True)
    warmup = config["warmup"]
    rate = (len(marks) - warmup) * 64 * size / (marks[-1] - marks[warmup - 1])
    # Ray Train 2.60 keeps no metrics in its Result without a checkpoint: rank 0 writes them.
    if rank == 0 and config.get("metrics"):
        json.dump({"samples_per_second": rate, "steps": len(marks)}, open(config["metrics"], "w"))
    ray.train.report({"samples_per_second": rate, "steps": len(marks)})


def run(workers, steps, warmup, features, address=None):
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if address is None:
        ray.init(num_cpus=max(2, workers), include_dashboard=False)
    else:
        ray.init(address=address)
    metrics = tempfile.mktemp(prefix="ray-train-metrics-", suffix=".json")
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"path": HERE, "steps": steps, "warmup": warmup, "features": features, "metrics": metrics},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(storage_path=tempfile.mkdtemp(prefix="ray-train-bench-")),
    )
    trainer.fit()
    ray.shutdown()
    return json.load(open(metrics)) if os.path.exists(metrics) else {}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--features", type=int, default=17)
    parser.add_argument("--first-step", action="store_true")
    arguments = parser.parse_args()
    if arguments.first_step:
        run(2, 3, 1, arguments.features, address="auto")
        return
    metrics = run(arguments.workers, arguments.steps, arguments.warmup, arguments.features)
    import ray
    result = {"system": f"Ray Train {ray.__version__} TorchTrainer", "workers": arguments.workers,
              "samples_per_second": metrics["samples_per_second"]}
    json.dump(result, open(arguments.out, "w"), indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
