"""The backtest benchmark's market: seeded bars whose trends a moving-average crossover can
follow, so that its equity neither collapses under costs nor explodes (a driftless walk loses to
costs until the equity nears zero, where vectorbt stops filling and the runs stop being comparable).

Each asset's log price drifts up and down in alternating regimes of 1,500 to 4,500 bars (drift
1.2e-4 a bar, noise 1e-3): a crossover over 10 and 50 bars with 15 bp of costs a trade ends within
about e^±2 of its start. Prices go out with 17 significant digits, so every reader sees the same
doubles."""
import os
import sys

import numpy as np


def bars(count, assets, seed, drift=1.2e-4, sigma=1e-3, regime=3000, step_ms=60_000):
    """A list of (symbol, timestamps, open, high, low, close, volume) arrays."""
    rng = np.random.default_rng(seed)
    start_ms = 1_262_304_000_000  # 2010-01-01
    timestamps = start_ms + step_ms * np.arange(count, dtype=np.int64)
    out = []
    for asset in range(assets):
        lengths = rng.integers(regime // 2, regime * 3 // 2, size=count // (regime // 2) + 2)
        signs = np.repeat(np.tile([1.0, -1.0], len(lengths) // 2 + 1)[: len(lengths)], lengths)[:count]
        if rng.random() < 0.5:
            signs = -signs
        log_returns = signs * drift + sigma * rng.standard_normal(count)
        close = 100.0 * np.exp(np.cumsum(log_returns))
        open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(sigma * 0.2 * rng.standard_normal(count))
        # High and low well outside open and close, so that slippage never leaves the bar's range.
        spread = 1 + 0.002 + sigma * np.abs(rng.standard_normal(count))
        high = np.maximum(open_, close) * spread
        low = np.minimum(open_, close) / spread
        volume = np.round(rng.uniform(5_000, 50_000, count))
        out.append((f"A{asset}", timestamps, open_, high, low, close, volume))
    return out


def write_csv(folder, series, limit=None):
    """One `timestamp,open,high,low,close,volume` file per asset; returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for symbol, timestamps, open_, high, low, close, volume in series:
        n = len(close) if limit is None else min(limit, len(close))
        path = os.path.join(folder, symbol + ".csv")
        with open(path, "w") as handle:
            handle.write("timestamp,open,high,low,close,volume\n")
            columns = [timestamps[:n]] + [np.char.mod("%.17g", column[:n]) for column in (open_, high, low, close, volume)]
            handle.write(
                "\n".join(",".join(row) for row in zip(columns[0].astype(str), *columns[1:])) + "\n"
            )
        paths.append(path)
    return paths


if __name__ == "__main__":
    count, assets, seed, folder = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    print("\n".join(write_csv(folder, bars(count, assets, seed))))
