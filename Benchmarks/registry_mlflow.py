"""MLflow's side of the registry benchmark: MLflow's Python client on a SQLite backend with a
local artifact store, the same operations as `cluster models bench`:
  register: a run with 10 metrics and a 2 MB artifact, registered as a new model version, and
            an alias moved to it;
  fetch:    the version by alias, and its artifact downloaded.
With --server, the client talks to an `mlflow server` (started here on loopback, SQLite backend,
artifacts proxied by the server with its defaults) over HTTP: the setup a client on another host has,
beside Shoal's `--through-registry`.
Usage: python3 Benchmarks/registry_mlflow.py OUT.json [--count N] [--folder DIR] [--server]
"""
import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import statistics
import sys
import tempfile
import time
import urllib.request
import warnings

warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
logging.getLogger("alembic").setLevel(logging.ERROR)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--folder", help="a new folder for the store, left in place (default: a temporary one, removed)")
    parser.add_argument("--server", action="store_true", help="through an `mlflow server` on loopback")
    arguments = parser.parse_args()

    import mlflow
    from mlflow.tracking import MlflowClient

    if arguments.folder:
        os.makedirs(arguments.folder)
        folder = os.path.abspath(arguments.folder)
    else:
        folder = tempfile.mkdtemp(prefix="mlflow-bench-")
    server = None
    if arguments.server:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
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
            os.killpg(server.pid, signal.SIGKILL)
            sys.exit(f"mlflow server did not start; see {folder}/server.log")
    else:
        uri = f"sqlite:///{folder}/mlflow.db"
    try:
        result = measure(mlflow, MlflowClient, uri, folder, arguments)
    finally:
        if server:  # the server and its workers: a process group of their own
            os.killpg(server.pid, signal.SIGTERM)
            server.wait()
    if not arguments.folder:
        shutil.rmtree(folder, ignore_errors=True)
    result["setup"] = "server" if arguments.server else "local"
    json.dump(result, open(arguments.out, "w"), indent=1)
    print(json.dumps(result))


def measure(mlflow, MlflowClient, uri, folder, arguments):
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if arguments.server:
        experiment = client.create_experiment("bench")  # artifacts go through the server
    else:
        experiment = client.create_experiment("bench", artifact_location=f"file://{folder}/artifacts")
    client.create_registered_model("hybrid")
    weights = os.path.join(folder, "weights.safetensors")
    with open(weights, "wb") as handle:
        handle.write(os.urandom(2 << 20))
    from mlflow.entities import Metric

    # Through a server, a few more cycles first: its workers each pay a first request.
    warmup = 3 if arguments.server else 1
    register_times, fetch_times = [], []
    for index in range(arguments.count + warmup):
        start = time.perf_counter()
        run = client.create_run(experiment)
        stamp = int(time.time() * 1000)
        # One call for the ten metrics, as Shoal's register sends them in one request.
        client.log_batch(run.info.run_id, metrics=[Metric(f"metric_{metric}", index + metric / 10, stamp, 0) for metric in range(10)])
        client.log_artifact(run.info.run_id, weights, artifact_path="model")
        client.set_terminated(run.info.run_id)
        version = client.create_model_version("hybrid", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        client.set_registered_model_alias("hybrid", "champion", version.version)
        registered = time.perf_counter()
        found = client.get_model_version_by_alias("hybrid", "champion")
        target = tempfile.mkdtemp(dir=folder)
        path = mlflow.artifacts.download_artifacts(artifact_uri=found.source, dst_path=target)
        size = os.path.getsize(os.path.join(path, "weights.safetensors"))
        assert size == 2 << 20 and found.version == version.version
        done = time.perf_counter()
        # Downloads stay until the end, as Shoal's artifacts do: removing files here would slow
        # the next run's file creation (ext4 without a journal skips recently deleted inodes).
        if index >= warmup:
            register_times.append(registered - start)
            fetch_times.append(done - registered)
        print(f"  mlflow {index + 1 - warmup}/{arguments.count}: register {1000 * (registered - start):.1f} ms, fetch {1000 * (done - registered):.1f} ms",
              file=sys.stderr, end="\r", flush=True)
    print(file=sys.stderr)
    return {
        "system": f"MLflow {mlflow.__version__}",
        "register_ms": statistics.median(register_times) * 1000,
        "fetch_ms": statistics.median(fetch_times) * 1000,
        "cycle_per_second": len(register_times) / (sum(register_times) + sum(fetch_times)),
        "register_per_second": len(register_times) / sum(register_times),
        "fetch_per_second": len(fetch_times) / sum(fetch_times),
        "count": arguments.count,
    }


if __name__ == "__main__":
    main()
