// Rolling-window market measures for ShoalMarket, vectorised across windows: eight
// consecutive windows are computed together, one per SIMD lane, so every loop over a window's
// values is a loop of vector operations. Inputs are double-precision series of `n` values;
// each output is a column of `n` values, written at the index of each window's last value
// (from `window − 1` on) and left untouched before. A window holding a NaN gives NaN.
#ifndef SHOAL_MARKET_H
#define SHOAL_MARKET_H

#ifdef __cplusplus
extern "C" {
#endif

/// Detail energies (sums of squared detail coefficients) of levels 1…`levels` of the
/// orthonormal discrete wavelet transform of each window (periodic boundary): Haar when
/// `daubechies` is 0, Daubechies-4 otherwise. `window` is a power of two ≥ 2^levels, at most
/// 256. Level l (1-based) goes to `out + (l − 1) · n`.
void shoal_wavelet_energies(const double *x, long n, long window, long levels, int daubechies, double *out);

/// The power spectrum |X_k|² (k = 1…window/2) of each mean-removed window, summed in `bands`
/// equal bands (the last takes the remainder) and divided by the total: band b goes to
/// `out + b · n`; windows without power stay untouched. `window` a power of two in 4…256.
void shoal_band_powers(const double *x, long n, long window, long bands, double *out);

/// The Hurst exponent by rescaled range: the least-squares slope of log(mean R/S) on log(size)
/// over sizes 8, 16, … up to `window` (at most 1024), chunks of each size tiling the window
/// from its start; chunks without spread are left out.
void shoal_hurst(const double *x, long n, long window, double *out);

/// Higuchi's fractal dimension of each window with delays 1…`max_delay` (at most 32): the
/// least-squares slope of log(mean normalised curve length) on log(1 / delay).
void shoal_higuchi(const double *x, long n, long window, long max_delay, double *out);

/// out[i] = log(numerator[i] / denominator[i]) where both are positive (±inf where the ratio
/// overflows or underflows, as libm's), NaN elsewhere, for i in 0…n−1 (vectorised; within an ulp
/// or two of libm's log).
void shoal_log_ratios(const double *numerator, const double *denominator, long n, double *out);

#ifdef __cplusplus
}
#endif

#endif
