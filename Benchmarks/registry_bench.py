"""The registry benchmark in rounds: Shoal's `cluster models bench` (local store, then through the
registry's socket) and MLflow's client (local store, then through an `mlflow server`) take turns,
a share of each system's cycles in every round, so that both meet the same state of the machine
(on this VM the cost of a new file's pages drifts over minutes; see RESULTS.md). Which pair and
which system in a pair go first alternate from round to round. After each turn a probe times new 2 MB files written
as both systems write them, so the report can show the state each turn met.
Usage: registry_bench.py CLUSTER_BINARY OUT.json --folder DIR [--rounds N] [--shoal-count N]
       [--mlflow-count N] [--mlflow-server-count N]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from registry_mlflow import MlflowSide


def probe_new_files(folder, count=10, size=2 << 20, piece=256 << 10):
    """Median milliseconds to write a new file of `size` bytes, `piece` bytes a call (the files stay)."""
    os.makedirs(folder)
    data = os.urandom(size)
    times = []
    for index in range(count):
        start = time.perf_counter()
        descriptor = os.open(f"{folder}/{index}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        view = memoryview(data)
        for offset in range(0, size, piece):
            os.write(descriptor, view[offset:offset + piece])
        os.close(descriptor)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def shoal_turn(binary, folder, count, through_registry):
    out = folder + ".json"
    # --no-probes: this harness probes new files itself after every turn, for every system alike.
    command = [binary, "models", "bench", "--count", str(count), "--json", out, "--folder", folder, "--no-probes"]
    if through_registry:
        command.append("--through-registry")
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    result = json.load(open(out))
    return result["register_times_ms"], result["fetch_times_ms"], result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("out")
    parser.add_argument("--folder", required=True, help="a new folder for every store and probe, left in place")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--shoal-count", type=int, default=100, help="Shoal's cycles per turn")
    parser.add_argument("--mlflow-count", type=int, default=15, help="MLflow's local cycles per turn")
    parser.add_argument("--mlflow-server-count", type=int, default=8, help="cycles through the MLflow server per turn")
    arguments = parser.parse_args()
    folder = os.path.abspath(arguments.folder)
    os.makedirs(folder)
    print("  starting MLflow (local store, and a server on loopback)", file=sys.stderr)
    local = MlflowSide(f"{folder}/mlflow-local", server=False)
    try:
        server = MlflowSide(f"{folder}/mlflow-server", server=True)
    except BaseException:
        local.close()
        raise
    setups = {
        "shoal_local": lambda label, r: shoal_turn(arguments.binary, f"{folder}/shoal-local-{r}", arguments.shoal_count, False),
        "mlflow_local": lambda label, r: local.cycles(arguments.mlflow_count, label) + ({},),
        "shoal_socket": lambda label, r: shoal_turn(arguments.binary, f"{folder}/shoal-socket-{r}", arguments.shoal_count, True),
        "mlflow_server": lambda label, r: server.cycles(arguments.mlflow_server_count, label) + ({},),
    }
    # The server's workers go on starting after it first answers: the rounds begin once they are quiet.
    settling = time.perf_counter()
    server.settle()
    print(f"  the MLflow server's processes are quiet after {time.perf_counter() - settling:.0f} s", file=sys.stderr)
    pairs = [("shoal_local", "mlflow_local"), ("shoal_socket", "mlflow_server")]
    rounds = []
    started = time.perf_counter()
    try:
        for number in range(1, arguments.rounds + 1):
            turns = {}
            # Both orders alternate: which pair goes first, and which system first in a pair.
            for pair in (pairs if number % 2 else reversed(pairs)):
                for setup in (pair if number % 2 else reversed(pair)):
                    label = f"round {number}/{arguments.rounds} {setup.replace('_', ' ')}"
                    register_times, fetch_times, extra = setups[setup](label, number)
                    probe = probe_new_files(f"{folder}/probe-{number}-{setup}")
                    cycle = 1000 * len(register_times) / (sum(register_times) + sum(fetch_times))
                    turns[setup] = {
                        "register_times_ms": register_times, "fetch_times_ms": fetch_times, "new_file_ms": probe,
                        "sha256_ms": extra.get("sha256_ms"),
                    }
                    elapsed = time.perf_counter() - started
                    done = (number - 1) * 4 + len(turns)
                    print(f"  {label}: {cycle:.1f} cycles/s, new 2 MB file {probe:.2f} ms   "
                          f"[{done}/{4 * arguments.rounds} turns, {elapsed:.0f} s, ETA {elapsed / done * (4 * arguments.rounds - done):.0f} s]",
                          file=sys.stderr)
            rounds.append(turns)
    finally:
        local.close()
        server.close()
    json.dump({"system": f"MLflow {local.version}", "rounds": rounds, "shoal_count": arguments.shoal_count,
               "mlflow_count": arguments.mlflow_count, "mlflow_server_count": arguments.mlflow_server_count},
              open(arguments.out, "w"), indent=1)


if __name__ == "__main__":
    main()
