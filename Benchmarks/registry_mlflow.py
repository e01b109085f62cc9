"""MLflow's side of the registry benchmark: MLflow's Python client on a SQLite backend with a
local artifact store, the same operations as `cluster models bench`:
  register: a run with 10 metrics and a 2 MB artifact, registered as a new model version, and
            an alias moved to it;
  fetch:    the version by alias, and its artifact downloaded.
With server=True, the client talks to an `mlflow server` (started here on loopback, SQLite
backend, artifacts proxied by the server with its defaults) over HTTP: the setup a client on
another host has, beside Shoal's `--through-registry`.
`registry_bench.py` runs it in rounds beside Shoal; alone:
  python3 Benchmarks/registry_mlflow.py OUT.json [--count N] [--folder DIR] [--server]
"""
import argparse
import contextlib
import io
import json
import logging
import os
import signal
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings

warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
logging.getLogger("alembic").setLevel(logging.ERROR)


class MlflowSide:
    """One MLflow setup (local store or through a server) in `folder`, warmed up, ready for cycles."""

    def __init__(self, folder, server):
        import mlflow
        from mlflow.tracking import MlflowClient

        self.mlflow = mlflow
        self.version = mlflow.__version__
        self.folder = folder
        self.server = None
        os.makedirs(folder)
        if server:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            self.server = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
                 "--artifacts-destination", f"{folder}/artifacts", "--host", "127.0.0.1", "--port", str(port)],
                stdout=open(f"{folder}/server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
            uri = f"http://127.0.0.1:{port}"
            for _ in range(240):
                try:
                    if urllib.request.urlopen(f"{uri}/health", timeout=1).status == 200:
                        break
                except OSError:
                    time.sleep(0.5)
            else:
                self.close()
                sys.exit(f"mlflow server did not start; see {folder}/server.log")
        else:
            uri = f"sqlite:///{folder}/mlflow.db"
        try:
            self.connect(mlflow, MlflowClient, uri, folder, server)
        except BaseException:
            self.close()  # the server, if one was started
            raise

    def connect(self, mlflow, MlflowClient, uri, folder, server):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if server:
            self.experiment = self.client.create_experiment("bench")  # artifacts go through the server
        else:
            self.experiment = self.client.create_experiment("bench", artifact_location=f"file://{folder}/artifacts")
        self.client.create_registered_model("hybrid")
        self.weights = os.path.join(folder, "weights.safetensors")
        with open(self.weights, "wb") as handle:
            handle.write(os.urandom(2 << 20))
        self.index = 0
        # Warm-up cycles first: MLflow imports and prepares much on first use (the first round of
        # an earlier harness with one warm-up cycle ran 50% slower than later ones), and through
        # a server each of its workers pays a first request.
        self.cycles(12 if server else 5)

    def cycles(self, count, label=""):
        """Runs `count` cycles; returns their register and fetch times in milliseconds."""
        register_times, fetch_times = [], []
        for done_count in range(count):
            with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints a link to every run it ends
                self.cycle(register_times, fetch_times)
            if label:
                print(f"\r  {label} {done_count + 1}/{count}: register {register_times[-1]:.1f} ms, fetch {fetch_times[-1]:.1f} ms   ",
                      file=sys.stderr, end="", flush=True)
        if label:
            print(file=sys.stderr)
        return register_times, fetch_times

    def cycle(self, register_times, fetch_times):
        """One cycle, its times appended to the lists."""
        from mlflow.entities import Metric

        client = self.client
        index = self.index
        self.index += 1
        start = time.perf_counter()
        run = client.create_run(self.experiment)
        stamp = int(time.time() * 1000)
        # One call for the ten metrics, as Shoal's register sends them in one request.
        client.log_batch(run.info.run_id, metrics=[Metric(f"metric_{metric}", index + metric / 10, stamp, 0) for metric in range(10)])
        client.log_artifact(run.info.run_id, self.weights, artifact_path="model")
        client.set_terminated(run.info.run_id)
        version = client.create_model_version("hybrid", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        client.set_registered_model_alias("hybrid", "champion", version.version)
        registered = time.perf_counter()
        found = client.get_model_version_by_alias("hybrid", "champion")
        target = tempfile.mkdtemp(dir=self.folder)
        path = self.mlflow.artifacts.download_artifacts(artifact_uri=found.source, dst_path=target)
        size = os.path.getsize(os.path.join(path, "weights.safetensors"))
        assert size == 2 << 20 and found.version == version.version
        done = time.perf_counter()
        # Downloads stay until the end, as Shoal's artifacts do: removing files here would slow
        # the next run's file creation (ext4 without a journal skips recently deleted inodes).
        register_times.append(1000 * (registered - start))
        fetch_times.append(1000 * (done - registered))

    def settle(self, quiet=0.05, limit=90):
        """Waits (up to `limit` seconds) until the server's processes use under `quiet` of a core
        over a second: its workers finish starting in the background after it first answers,
        and would take the CPU from whatever runs then."""
        if not self.server:
            return
        ticks = os.sysconf("SC_CLK_TCK")

        def used():
            total = 0
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                try:
                    fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[2]) == self.server.pid:  # its process group
                    total += int(fields[11]) + int(fields[12])
            return total / ticks

        deadline = time.monotonic() + limit
        before = used()
        while time.monotonic() < deadline:
            time.sleep(1)
            now = used()
            if now - before < quiet:
                return
            before = now

    def close(self):
        if self.server:  # the server and its workers: a process group of their own
            os.killpg(self.server.pid, signal.SIGTERM)
            self.server.wait()
            self.server = None


def summary(register_times, fetch_times):
    """Medians (ms) and rates (per second, over total time) of a list of cycles."""
    return {
        "register_ms": statistics.median(register_times),
        "fetch_ms": statistics.median(fetch_times),
        "cycle_per_second": 1000 * len(register_times) / (sum(register_times) + sum(fetch_times)),
        "register_per_second": 1000 * len(register_times) / sum(register_times),
        "fetch_per_second": 1000 * len(fetch_times) / sum(fetch_times),
        "count": len(register_times),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--folder", help="a new folder for the store, left in place (default: a temporary one, removed)")
    parser.add_argument("--server", action="store_true", help="through an `mlflow server` on loopback")
    arguments = parser.parse_args()
    folder = os.path.abspath(arguments.folder) if arguments.folder else tempfile.mkdtemp(prefix="mlflow-bench-") + "/store"
    side = MlflowSide(folder, arguments.server)
    try:
        register_times, fetch_times = side.cycles(arguments.count, label="mlflow")
    finally:
        side.close()
    if not arguments.folder:
        shutil.rmtree(os.path.dirname(folder), ignore_errors=True)
    result = summary(register_times, fetch_times)
    result.update(system=f"MLflow {side.version}", setup="server" if arguments.server else "local")
    json.dump(result, open(arguments.out, "w"), indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
