"""Puts the registry table (Shoal's `cluster models bench`, with the shared artifact store and
through the registry's socket, and MLflow's client, one run) into Benchmarks/RESULTS.md,
replacing the section from an earlier run.
Usage: registry_report.py SHOAL_SHARED.json SHOAL_SOCKET.json MLFLOW.json RESULTS.md"""
import datetime
import json
import sys

from results_section import replace_section

shared = json.load(open(sys.argv[1]))
socket = json.load(open(sys.argv[2]))
mlflow = json.load(open(sys.argv[3]))
path = sys.argv[4]
begin, end = "<!-- registry:begin -->", "<!-- registry:end -->"

lines = [begin, "## Model registry (issue: storage layer and model registry)", ""]
lines.append(f"Measured {datetime.date.today()} by `make bench-registry` (also part of `make bench`), one run, all back to back.")
lines.append(f"Shoal: `cluster models bench` ({int(shared['count'])} cycles each) — a registry on loopback with a SQLite store and a local")
lines.append("artifact folder, the client over ZeroMQ; every artifact is new bytes (no deduplication) and every fetch checks the")
lines.append("SHA-256 of the bytes it reads. *Shared store*: the client sees the registry's artifact folder (as here, or over a")
lines.append("shared mount), so it writes the artifact there under its hash and reads it back itself, and only metadata crosses")
lines.append("the socket — the setup MLflow's client has with a local artifact store. *Through the socket*: `--through-registry`,")
lines.append("the bytes travel in the requests and replies and the registry hashes them (a client on another host without the mount).")
lines.append(f"{mlflow['system']}: `Benchmarks/registry_mlflow.py` ({mlflow['count']} cycles), its Python client on a SQLite")
lines.append("backend with a local artifact store. A cycle: register a version with 10 metrics and a 2 MB artifact and move an")
lines.append("alias to it (MLflow: a run with 10 metrics and the artifact logged, a model version from it, the alias set), then")
lines.append("fetch the version by alias with its artifact. Medians in milliseconds; rates are cycles over total time.")
lines.append("")
lines.append(f"| row | Shoal, shared store | Shoal, through the socket | {mlflow['system']} | shared / MLflow | socket / MLflow |")
lines.append("|---|---:|---:|---:|---:|---:|")
rows = [
    ("register + alias (ms, median)", "register_ms", False),
    ("fetch by alias with artifact (ms, median)", "fetch_ms", False),
    ("register + alias (per second)", "register_per_second", True),
    ("fetch by alias (per second)", "fetch_per_second", True),
    ("whole cycle (per second)", "cycle_per_second", True),
]
for name, key, higher in rows:
    a, b, m = shared[key], socket[key], mlflow[key]
    ratio = (lambda s: s / m) if higher else (lambda s: m / s)
    lines.append(f"| {name} | {a:,.2f} | {b:,.2f} | {m:,.2f} | {ratio(a):.1f}× | {ratio(b):.1f}× |")
lines.append("")
lines.append(f"One SHA-256 pass over the 2 MB artifact took {shared['sha256_ms']:.2f} ms in this run (OpenSSL with SHA-NI). Each cycle")
lines.append("needs two: the writer names the file by its hash, and the fetch checks it. With the shared store they are most of")
lines.append("the cycle (on register the hash runs while another thread writes the file); through the socket the registry also")
lines.append("copies the bytes through ZeroMQ and loopback TCP both ways.")
lines.append(end)
replace_section(path, begin, end, lines)
