"""pandas' side of the feature benchmark: the same 17 features as Shoal's standard pipeline
(SMA 20, EMA 12, Bollinger 20 with %B, RSI 14, MACD 12/26/9, OBV, VWAP 20, volume ROC 14,
ATR 14, volatility ratio 10/50, Garman-Klass 20, log return) for BARS bars of ASSETS assets,
written the way a pandas user would (rolling windows, ewm, vectorised numpy).
Usage: python3 Benchmarks/features_pandas.py OUT.json [--bars N] [--assets K] [--trials T]
"""
import argparse
import json
import time

import numpy as np
import pandas as pd


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--assets", type=int, default=4)
    parser.add_argument("--trials", type=int, default=3)
    arguments = parser.parse_args()
    frames = [market(arguments.bars, seed) for seed in range(arguments.assets)]
    times = []
    for trial in range(arguments.trials):
        start = time.perf_counter()
        tables = [features(frame) for frame in frames]
        times.append(time.perf_counter() - start)
        assert all(table.shape == (arguments.bars, 17) for table in tables)
    best = min(times)
    result = {"system": f"pandas {pd.__version__} (numpy {np.__version__})", "seconds": best, "trials": times,
              "bars": arguments.bars, "assets": arguments.assets,
              "bars_per_second": arguments.bars * arguments.assets / best}
    json.dump(result, open(arguments.out, "w"), indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
