"""PyTorch's side of the hybrid model benchmark: the same rows as `trading model bench`, with
the reference module of Benchmarks/hybrid_reference.py, on the CPU with `--threads` threads.
Usage: python3 Benchmarks/hybrid_bench_torch.py OUT.json [--threads N] [--repeats R]
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from hybrid_reference import HybridModel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    torch.manual_seed(1)
    model = HybridModel()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    results = {"system": f"PyTorch {torch.__version__}", "threads": arguments.threads}

    def timed(body):
        start = time.perf_counter()
        body()
        return time.perf_counter() - start

    x = torch.randn(64, 32, 64)
    labels = torch.arange(64) % 3
    returns = torch.full((64, 1), 0.001)

    def train():
        model.train()
        optimiser.zero_grad()
        logits, regression, _ = model(x)
        loss = F.cross_entropy(logits, labels) + 0.5 * F.mse_loss(regression, returns)
        loss.backward()
        optimiser.step()

    train()
    results["train_step_ms"] = statistics.median(timed(train) for _ in range(arguments.repeats)) * 1000
    model.eval()
    one = torch.randn(1, 32, 64)
    with torch.no_grad():
        model(one)
        results["inference_batch1_ms"] = statistics.median(timed(lambda: model(one)) for _ in range(max(5, arguments.repeats))) * 1000
        wide = torch.randn(256, 32, 64)
        results["throughput_batch256_per_s"] = 256 / statistics.median(timed(lambda: model(wide)) for _ in range(arguments.repeats))
        model.train()  # dropout on: 30 stochastic passes batched into one
        repeated = one.repeat(30, 1, 1)
        results["mc_dropout_30_ms"] = statistics.median(timed(lambda: model(repeated)) for _ in range(max(5, arguments.repeats))) * 1000
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump(results, open(arguments.out, "w"), indent=1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
