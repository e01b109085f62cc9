"""torch.distributed's all-reduce with the gloo backend among N processes on this machine: the
reference for `trading model allreduce-bench`. Each process runs with one thread
(OMP_NUM_THREADS=1, as torchrun sets); the ranks line up at a barrier before each call, an
iteration's time is its slowest rank's, and the median is reported.
Usage: python3 Benchmarks/allreduce_gloo.py OUT.json --ranks N [--count C] [--iterations K] [--warmup W]
"""
import argparse
import json
import os
import socket
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def rank_main(rank, size, count, iterations, warmup, port, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    buffer = torch.arange(count, dtype=torch.float32) % 97 * (rank + 1)
    times = []
    for iteration in range(warmup + iterations):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        buffer /= size  # the mean, as Shoal's all-reduce gives
        if iteration >= warmup:
            times.append(time.perf_counter() - start)
    with open(os.path.join(folder, f"times-{rank}"), "w") as out:
        out.write("\n".join(map(str, times)))
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--count", type=int, default=557_956)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    arguments = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(
            rank_main,
            args=(arguments.ranks, arguments.count, arguments.iterations, arguments.warmup, port, folder),
            nprocs=arguments.ranks,
        )
        times = [[float(line) for line in open(os.path.join(folder, f"times-{rank}"))] for rank in range(arguments.ranks)]
    slowest = sorted(max(column) for column in zip(*times))
    result = {
        "system": f"torch.distributed gloo ({torch.__version__})",
        "ranks": arguments.ranks,
        "floats": arguments.count,
        "median_ms": statistics.median(slowest) * 1000,
        "p90_ms": slowest[len(slowest) * 9 // 10] * 1000,
        "iterations": arguments.iterations,
    }
    json.dump(result, open(arguments.out, "w"), indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
