"""Cross-checks Shoal's features against pandas and numpy on the same bars, for the columns where
the two share a definition (TA-Lib-seeded EMA, RSI, MACD and ATR are left out there: pandas seeds
differently): the core columns, the windowed ones (wavelet energies, band powers, Hurst,
Higuchi, from Benchmarks/features_pandas.py) and correlation and beta against a second asset;
then against TA-Lib itself (the `TA-Lib` package) for SMA, EMA, Bollinger Bands, RSI, MACD, ATR
and OBV, seeds included.
Usage: python3 Benchmarks/features_crosscheck.py BIN_DIR [--bars N]
Prints the largest relative difference per column; exits 1 if any passes 1e-6.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features_pandas  # noqa: E402  (the windowed features, defined once for both scripts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--bars", type=int, default=20000)
    arguments = parser.parse_args()
    trading = os.path.join(arguments.bin_dir, "trading")
    folder = tempfile.mkdtemp(prefix="shoal-crosscheck-")
    subprocess.run([trading, "data", "generate", "--bars", str(arguments.bars), "--symbols", "X,Y", "--out", folder], check=True,
                   capture_output=True)
    subprocess.run([trading, "data", "features", f"{folder}/X.csv", "--all", "--reference", f"{folder}/Y.csv",
                    "--out", f"{folder}/features.csv"], check=True, capture_output=True)
    bars = pd.read_csv(f"{folder}/X.csv")
    other = pd.read_csv(f"{folder}/Y.csv")
    shoal = pd.read_csv(f"{folder}/features.csv")
    close, high, low, open_, volume = bars["close"], bars["high"], bars["low"], bars["open"], bars["volume"]
    previous = close.shift(1)
    log_return = np.log(close / previous)
    middle = close.rolling(20).mean()
    deviation = close.rolling(20).std(ddof=0)
    typical = (high + low + close) / 3
    gk = 0.5 * np.log(high / low) ** 2 - (2 * np.log(2) - 1) * np.log(close / open_) ** 2
    expected = {
        "sma_20": middle,
        "bb_middle": middle,
        "bb_upper": middle + 2 * deviation,
        "bb_lower": middle - 2 * deviation,
        "bb_percent": (close - (middle - 2 * deviation)) / (4 * deviation),
        "obv": (np.sign(close.diff()).fillna(0) * volume).cumsum() + volume.iloc[0],
        "vwap_20": (typical * volume).rolling(20).sum() / volume.rolling(20).sum(),
        "volume_roc_14": volume.pct_change(14, fill_method=None) * 100,
        "log_return": log_return,
        "volatility_ratio": log_return.rolling(10).std() / log_return.rolling(50).std(),
        "garman_klass_20": np.sqrt(gk.rolling(20).mean()),
    }
    windowed = features_pandas.advanced(bars, other)
    for name in windowed.columns:
        target = {"correlation": "correlation_Y", "beta": "beta_Y"}.get(name, name)
        expected[target] = windowed[name]
    import talib  # the C library's own values
    c, h, l, v = (np.asarray(series, dtype=float) for series in (close, high, low, volume))
    upper, middle_ta, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2, nbdevdn=2, matype=0)
    line, signal, histogram = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    references = [(name, "pandas/numpy", values) for name, values in expected.items()] + [
        ("sma_20", "TA-Lib", talib.SMA(c, timeperiod=20)),
        ("ema_12", "TA-Lib", talib.EMA(c, timeperiod=12)),
        ("bb_upper", "TA-Lib", upper),
        ("bb_middle", "TA-Lib", middle_ta),
        ("bb_lower", "TA-Lib", lower),
        ("rsi_14", "TA-Lib", talib.RSI(c, timeperiod=14)),
        ("macd", "TA-Lib", line),
        ("macd_signal", "TA-Lib", signal),
        ("macd_hist", "TA-Lib", histogram),
        ("atr_14", "TA-Lib", talib.ATR(h, l, c, timeperiod=14)),
        ("obv", "TA-Lib", talib.OBV(c, v)),
    ]
    worst = 0.0
    print(f"{'column':20} {'against':13} {'rows':>7} {'max relative difference':>24}")
    for name, source, reference in references:
        ours = shoal[name].to_numpy(dtype=float)
        theirs = np.asarray(reference, dtype=float)
        both = ~np.isnan(ours) & ~np.isnan(theirs)
        if (np.isnan(ours) != np.isnan(theirs)).any():
            print(f"{name}: warm-up differs ({np.isnan(ours).sum()} NaN in Shoal, {np.isnan(theirs).sum()} in {source})")
            worst = max(worst, 1.0)
        difference = np.abs(ours[both] - theirs[both]) / np.maximum(1.0, np.abs(theirs[both]))
        largest = float(difference.max()) if difference.size else 0.0
        worst = max(worst, largest)
        print(f"{name:20} {source:13} {int(both.sum()):>7} {largest:>24.3e}")
    print(f"largest: {worst:.3e} ({'within' if worst <= 1e-6 else 'OUTSIDE'} 1e-6)")
    sys.exit(0 if worst <= 1e-6 else 1)


if __name__ == "__main__":
    main()
