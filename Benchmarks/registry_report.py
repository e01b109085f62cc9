"""Puts the registry table into Benchmarks/RESULTS.md, replacing the section from an earlier run:
Shoal's `cluster models bench` with the shared artifact store and through the registry's socket,
beside MLflow's client on a local store and through an `mlflow server`, all from one run.
Usage: registry_report.py SHOAL_SHARED.json SHOAL_SOCKET.json MLFLOW.json MLFLOW_SERVER.json RESULTS.md"""
import datetime
import json
import sys

from results_section import replace_section

shared = json.load(open(sys.argv[1]))
socket = json.load(open(sys.argv[2]))
local = json.load(open(sys.argv[3]))
server = json.load(open(sys.argv[4]))
path = sys.argv[5]
begin, end = "<!-- registry:begin -->", "<!-- registry:end -->"


def ratio(shoal, mlflow, key, higher):
    return shoal[key] / mlflow[key] if higher else mlflow[key] / shoal[key]


rows = [
    ("register + alias (ms, median)", "register_ms", False),
    ("fetch by alias with artifact (ms, median)", "fetch_ms", False),
    ("register + alias (per second)", "register_per_second", True),
    ("fetch by alias (per second)", "fetch_per_second", True),
    ("whole cycle (per second)", "cycle_per_second", True),
]
system = local["system"]
lines = [begin, "## Model registry (issue: storage layer and model registry)", ""]
lines += [
    f"Measured {datetime.date.today()} by `make bench-registry` (also part of `make bench`), one run, all back to back.",
    "A cycle: register a version with 10 metrics and a 2 MB artifact and move an alias to it (MLflow: a run with 10",
    "metrics and the artifact logged, a model version from it, the alias set), then fetch the version by alias with",
    "its artifact. Every artifact is new bytes (no deduplication), registered as `binary` on both sides (neither parses",
    "it); every Shoal fetch checks the SHA-256 of what it reads (MLflow checks nothing). MLflow logs the ten metrics in",
    "one `log_batch` call; its fetch writes the artifact to a new file (its download API has no in-memory form), while",
    "Shoal's `load` returns the bytes in memory. Medians in milliseconds; rates are cycles over total time, after one",
    "warm-up cycle (three for the MLflow server, whose workers each pay a first request). Two setups, each beside its",
    "MLflow counterpart:",
    "",
    f"- *Local store*: Shoal's client sees the registry's artifact folder (same host or a shared mount) and writes",
    f"  and reads artifacts there itself, only metadata crossing the socket (`cluster models bench`, {int(shared['count'])} cycles);",
    f"  {system}'s Python client on a SQLite backend with a local artifact store (`Benchmarks/registry_mlflow.py`,",
    f"  {local['count']} cycles).",
    f"- *Through the server*: every artifact byte crosses the registry's socket, in 256 KiB pieces that the registry",
    f"  hashes and writes as they come (`--through-registry`, {int(socket['count'])} cycles: a client on another host without the",
    f"  mount); MLflow's client through an `mlflow server` on loopback (SQLite backend, artifacts proxied by the",
    f"  server, its defaults; `--server`, {server['count']} cycles).",
    "",
    "| row | Shoal, local store | MLflow, local store | local / MLflow | Shoal, through its server | MLflow, through its server | server / MLflow |",
    "|---|---:|---:|---:|---:|---:|---:|",
]
for name, key, higher in rows:
    lines.append(
        f"| {name} | {shared[key]:,.2f} | {local[key]:,.2f} | {ratio(shared, local, key, higher):.1f}× "
        f"| {socket[key]:,.2f} | {server[key]:,.2f} | {ratio(socket, server, key, higher):.1f}× |")
lines += [
    "",
    f"Shoal through its server beside MLflow's *local* client, same run: whole cycle {ratio(socket, local, 'cycle_per_second', True):.1f}×, "
    f"register {ratio(socket, local, 'register_per_second', True):.1f}×, fetch {ratio(socket, local, 'fetch_per_second', True):.1f}×.",
    "",
    f"Where a cycle's time goes, same run: one SHA-256 pass over the 2 MB artifact took {shared['sha256_ms']:.2f} ms (OpenSSL with",
    "SHA-NI) and a cycle needs two: the writer names the file by its hash, and the fetch checks it. A verified fetch is",
    "that pass, one request and a read from the page cache; SHA-256 cannot be split across cores, so no verified fetch",
    f"can come near a tenth of MLflow's unchecked {local['fetch_ms']:.2f} ms — the fetch row is bounded by the check, the whole cycle is not.",
]
if "new_file_ms" in shared:
    lines += [
        f"A new 2 MB file, written as Shoal writes it (256 KiB a call), took {shared['new_file_ms']:.2f} ms (median of 20, after Shoal's runs).",
    ]
lines += [
    "Two facts of this VM shape the figures (ratios on other machines will differ), and the harness is built around",
    "them. (1) Its kernel reports freed",
    "memory to the host (free page reporting, 8 MiB blocks) and the host takes it back, so the first touch of such",
    "memory stalls. In a separate measurement on 2026-12-03 (a C probe, 150 new files each, interleaved), a new 2 MB",
    "file written in one call (which the kernel serves with one 2 MB page-cache folio, likely from such blocks) took",
    "7.8 ms median, in 256 KiB calls 1.3 ms; so Shoal writes files 256 KiB a call.",
    "(2) Its ext4 has no journal, and then a new file's inode skips every inode removed in the last seconds to",
    "minutes: removing thousands of files slows the next creations for whoever runs next, so each system's files",
    "stay until all four runs are done, MLflow's downloads too (with those removed inside MLflow's timed loop and",
    "the earlier runs' folders removed before it, as in this harness's first version, MLflow's cycle took twice as long).",
    end,
]
replace_section(path, begin, end, lines)
