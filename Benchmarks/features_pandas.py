"""pandas' side of the feature benchmark: the same features as Shoal's, for BARS bars of
ASSETS assets, written the way a pandas user would (rolling windows, ewm, vectorised numpy).
Core: the 17 standard features (SMA 20, EMA 12, Bollinger 20 with %B, RSI 14, MACD 12/26/9,
OBV, VWAP 20, volume ROC 14, ATR 14, volatility ratio 10/50, Garman-Klass 20, log return).
All: those plus Haar and Daubechies-4 wavelet energies (window 64, 4 levels), FFT band powers
(window 64, 3 bands), the Hurst exponent (R/S, window 128), Higuchi's dimension (window 128,
delays 1-8) and the rolling correlation and beta against asset 0 (window 60): 32 features,
the windowed ones over numpy sliding-window views in chunks of 65,536 windows.
Usage: python3 Benchmarks/features_pandas.py OUT.json [--bars N] [--assets K] [--trials T]
"""
import argparse
import json
import time

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

CHUNK = 65_536


def market(bars, seed):
    random = np.random.default_rng(seed)
    returns = 0.001 * random.standard_normal(bars)
    close = 100 * np.exp(np.cumsum(returns))
    open_ = close * np.exp(0.0001 * random.standard_normal(bars))
    high = np.maximum(open_, close) * np.exp(np.abs(random.standard_normal(bars)) * 0.0005)
    low = np.minimum(open_, close) * np.exp(-np.abs(random.standard_normal(bars)) * 0.0005)
    volume = np.round(10000 * np.exp(0.3 * random.standard_normal(bars)))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume})


def features(frame):
    close, high, low, open_, volume = frame["close"], frame["high"], frame["low"], frame["open"], frame["volume"]
    out = pd.DataFrame(index=frame.index)
    out["sma_20"] = close.rolling(20).mean()
    out["ema_12"] = close.ewm(span=12, adjust=False).mean()
    middle = close.rolling(20).mean()
    deviation = close.rolling(20).std(ddof=0)
    out["bb_upper"] = middle + 2 * deviation
    out["bb_middle"] = middle
    out["bb_lower"] = middle - 2 * deviation
    out["bb_percent"] = (close - out["bb_lower"]) / (out["bb_upper"] - out["bb_lower"])
    change = close.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    out["rsi_14"] = 100 * gain / (gain + loss)
    line = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
    signal = line.ewm(span=9, adjust=False).mean()
    out["macd"], out["macd_signal"], out["macd_hist"] = line, signal, line - signal
    out["obv"] = (np.sign(change).fillna(0) * volume).cumsum() + volume.iloc[0]
    typical = (high + low + close) / 3
    out["vwap_20"] = (typical * volume).rolling(20).sum() / volume.rolling(20).sum()
    out["volume_roc_14"] = volume.pct_change(14) * 100
    previous = close.shift(1)
    true_range = np.maximum(high - low, np.maximum((high - previous).abs(), (low - previous).abs()))
    out["atr_14"] = true_range.ewm(alpha=1 / 14, adjust=False).mean()
    log_return = np.log(close / previous)
    out["volatility_ratio"] = log_return.rolling(10).std() / log_return.rolling(50).std()
    gk = 0.5 * np.log(high / low) ** 2 - (2 * np.log(2) - 1) * np.log(close / open_) ** 2
    out["garman_klass_20"] = np.sqrt(gk.rolling(20).mean())
    out["log_return"] = log_return
    return out


def windowed(series, window, compute, columns):
    """Applies `compute` to chunks of the windows of `series`; each window's results go to
    its last index."""
    values = np.asarray(series, dtype=float)
    out = np.full((columns, len(values)), np.nan)
    views = sliding_window_view(values, window)
    for start in range(0, len(views), CHUNK):
        chunk = views[start:start + CHUNK]
        out[:, start + window - 1:start + window - 1 + len(chunk)] = compute(chunk)
    return out


SQRT3 = np.sqrt(3.0)
D4_LOW = np.array([1 + SQRT3, 3 + SQRT3, 3 - SQRT3, 1 - SQRT3]) / (4 * np.sqrt(2.0))
D4_HIGH = np.array([D4_LOW[3], -D4_LOW[2], D4_LOW[1], -D4_LOW[0]])


def wavelet_energies(returns, daubechies, window=64, levels=4):
    def compute(w):
        energies = []
        a = w
        for _ in range(levels):
            length = a.shape[1]
            if daubechies:
                index = np.arange(0, length, 2)
                taps = [a[:, (index + k) % length] for k in range(4)]
                approximation = sum(D4_LOW[k] * taps[k] for k in range(4))
                detail = sum(D4_HIGH[k] * taps[k] for k in range(4))
            else:
                approximation = (a[:, 0::2] + a[:, 1::2]) * np.sqrt(0.5)
                detail = (a[:, 0::2] - a[:, 1::2]) * np.sqrt(0.5)
            energies.append((detail * detail).sum(axis=1))
            a = approximation
        return np.stack(energies)
    return windowed(returns, window, compute, levels)


def band_powers(returns, window=64, bands=3):
    def compute(w):
        centred = w - w.mean(axis=1, keepdims=True)
        spectrum = np.abs(np.fft.rfft(centred, axis=1)[:, 1:window // 2 + 1]) ** 2 / window
        total = spectrum.sum(axis=1)
        per = spectrum.shape[1] // bands
        edges = [b * per for b in range(bands)] + [spectrum.shape[1]]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack([np.where(total > 0, spectrum[:, edges[b]:edges[b + 1]].sum(axis=1) / total, np.nan) for b in range(bands)])
    return windowed(returns, window, compute, bands)


def slopes(xs, ys, valid):
    """Least-squares slopes of ys on xs per row, over the valid points (NaN with fewer than two)."""
    count = valid.sum(axis=1)
    xm = np.where(valid, xs, 0).sum(axis=1) / np.maximum(count, 1)
    ym = np.where(valid, ys, 0).sum(axis=1) / np.maximum(count, 1)
    dx = np.where(valid, xs - xm[:, None], 0)
    dy = np.where(valid, ys - ym[:, None], 0)
    sxx = (dx * dx).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((count >= 2) & (sxx > 0), (dx * dy).sum(axis=1) / sxx, np.nan)


def hurst(returns, window=128):
    sizes = [8 * 2 ** i for i in range(10) if 8 * 2 ** i <= window]

    def compute(w):
        xs, ys, valid = [], [], []
        for size in sizes:
            chunks = w[:, :window // size * size].reshape(len(w), window // size, size)
            deviation = chunks - chunks.mean(axis=2, keepdims=True)
            cumulative = deviation.cumsum(axis=2)
            spread = np.sqrt((deviation * deviation).mean(axis=2))
            ranges = cumulative.max(axis=2) - cumulative.min(axis=2)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratios = np.where(spread > 0, ranges / spread, 0.0)
            used = (spread > 0).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                ys.append(np.where(used > 0, np.log(ratios.sum(axis=1) / np.maximum(used, 1)), 0.0))
            xs.append(np.full(len(w), np.log(size)))
            valid.append(used > 0)
        result = slopes(np.stack(xs, axis=1), np.stack(ys, axis=1), np.stack(valid, axis=1))
        return np.where(np.isnan(w).any(axis=1), np.nan, result)[None, :]  # a window holding a NaN is NaN
    return windowed(returns, window, compute, 1)[0]


def higuchi(close, window=128, max_delay=8):
    def compute(w):
        xs, ys, ok = [], [], np.ones(len(w), dtype=bool)
        for k in range(1, max_delay + 1):
            total = np.zeros(len(w))
            for m in range(k):
                steps = (window - 1 - m) // k
                if steps < 1:
                    continue
                segment = w[:, m:m + steps * k + 1:k]
                total += np.abs(np.diff(segment, axis=1)).sum(axis=1) * (window - 1) / (steps * k * k)
            average = total / k
            ok &= (average > 0) & np.isfinite(average)
            xs.append(np.full(len(w), np.log(1 / k)))
            with np.errstate(invalid="ignore", divide="ignore"):
                ys.append(np.where(average > 0, np.log(average), 0.0))
        result = slopes(np.stack(xs, axis=1), np.stack(ys, axis=1), np.ones((len(w), max_delay), dtype=bool))
        return np.where(ok, result, np.nan)[None, :]
    return windowed(close, window, compute, 1)[0]


def advanced(frame, reference):
    close = frame["close"]
    log_return = np.log(close / close.shift(1)).to_numpy()
    columns = {}
    for name, d4 in (("haar", False), ("d4", True)):
        for level, values in enumerate(wavelet_energies(log_return, d4), start=1):
            columns[f"{name}_energy_{level}"] = values
    for name, values in zip(("fft_low", "fft_mid", "fft_high"), band_powers(log_return)):
        columns[name] = values
    columns["hurst_128"] = hurst(log_return)
    columns["higuchi_128"] = higuchi(close.to_numpy())
    mine = pd.Series(log_return)
    theirs = np.log(reference["close"] / reference["close"].shift(1))
    columns["correlation"] = mine.rolling(60).corr(theirs).to_numpy()
    columns["beta"] = (mine.rolling(60).cov(theirs) / theirs.rolling(60).var()).to_numpy()
    return pd.DataFrame(columns, index=frame.index)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--assets", type=int, default=4)
    parser.add_argument("--trials", type=int, default=3)
    arguments = parser.parse_args()
    frames = [market(arguments.bars, seed) for seed in range(arguments.assets)]
    times, all_times = [], []
    for trial in range(arguments.trials):
        start = time.perf_counter()
        tables = [features(frame) for frame in frames]
        times.append(time.perf_counter() - start)
        assert all(table.shape == (arguments.bars, 17) for table in tables)
        start = time.perf_counter()
        tables = [pd.concat([features(frame), advanced(frame, frames[0])], axis=1) for frame in frames]
        all_times.append(time.perf_counter() - start)
        assert all(table.shape == (arguments.bars, 32) for table in tables)
        print(f"  trial {trial + 1}: core {times[-1]:.3f} s, all {all_times[-1]:.3f} s", flush=True)
    best = min(times)
    result = {"system": f"pandas {pd.__version__} (numpy {np.__version__})", "seconds": best, "trials": times,
              "all_seconds": min(all_times), "all_trials": all_times,
              "bars": arguments.bars, "assets": arguments.assets,
              "bars_per_second": arguments.bars * arguments.assets / best}
    json.dump(result, open(arguments.out, "w"), indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
