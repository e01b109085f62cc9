// Rolling-window market measures, eight windows at a time (see include/shoal_market.h).
#include "kernel_attributes.h"
#include "shoal_market.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#define SHOAL_LANES _Pragma("clang loop vectorize(assume_safety) interleave(enable)")
#else
#define SHOAL_LANES
#endif

enum { lanes = 8 };
typedef double lane_t[lanes];

/// Windows `start`…`start + 7` of `x` into `buffer[position][lane]`; lanes past the last
/// window repeat it (their results are not written).
static inline void load_windows(const double *x, long n, long window, long start, lane_t *buffer) {
    const long last = n - window;
    if (start + lanes - 1 <= last) {
        // Position j of the eight windows is x[start + j …start + j + 7]: one vector each.
        for (long j = 0; j < window; j++) memcpy(buffer[j], x + start + j, sizeof(lane_t));
    } else {
        for (long j = 0; j < window; j++) {
            for (int w = 0; w < lanes; w++) {
                const long s = start + w <= last ? start + w : last;
                buffer[j][w] = x[s + j];
            }
        }
    }
}

/// Writes lane values to `out` at the windows' last indices (valid lanes only).
static inline void store_windows(double *out, long n, long window, long start, const double *values) {
    for (int w = 0; w < lanes && start + w <= n - window; w++) out[start + w + window - 1] = values[w];
}

/// log(x) for each lane (Cephes' rational approximation, within an ulp or two of libm's),
/// vectorised; x must be positive and finite (other lanes give garbage, to be masked).
static inline void lane_logs(const double *x, double *y) {
    static const double p[6] = {1.01875663804580931796e-4, 4.97494994976747001425e-1, 4.70579119878881725854e0,
                                1.44989225341610930846e1, 1.79368678507819816313e1, 7.70838733755885391666e0};
    static const double q[5] = {1.12873587189167450590e1, 4.52279145837532221105e1, 8.29875266912776603211e1,
                                7.11544750618563894466e1, 2.31251620126765340583e1};
    SHOAL_LANES
    for (int w = 0; w < lanes; w++) {
        long long bits;
        double value = x[w] > 0 ? x[w] : 1;
        memcpy(&bits, &value, sizeof bits);
        double e = (double)(((bits >> 52) & 0x7ff) - 1022);
        bits = (bits & 0x000fffffffffffffLL) | 0x3fe0000000000000LL;  // the mantissa in [0.5, 1)
        double m;
        memcpy(&m, &bits, sizeof m);
        const int below = m < 0.70710678118654752440;
        e = below ? e - 1 : e;
        m = below ? m + m - 1 : m - 1;
        const double z = m * m;
        const double numerator = ((((p[0] * m + p[1]) * m + p[2]) * m + p[3]) * m + p[4]) * m + p[5];
        const double denominator = ((((m + q[0]) * m + q[1]) * m + q[2]) * m + q[3]) * m + q[4];
        double r = m * (z * numerator / denominator);
        r -= e * 2.121944400546905827679e-4;
        r -= 0.5 * z;
        y[w] = m + r + e * 0.693359375;
    }
}

SHOAL_KERNEL
void shoal_log_ratios(const double *numerator, const double *denominator, long n, double *out) {
    double ratio[lanes], logs[lanes];
    long start = 0;
    for (; start + lanes <= n; start += lanes) {
        SHOAL_LANES
        for (int w = 0; w < lanes; w++) {
            const double a = numerator[start + w], b = denominator[start + w];
            ratio[w] = a > 0 && b > 0 ? a / b : NAN;
        }
        lane_logs(ratio, logs);
        int unusual = 0;
        SHOAL_LANES
        for (int w = 0; w < lanes; w++) unusual |= !(ratio[w] >= DBL_MIN && ratio[w] <= DBL_MAX);
        if (!unusual) {
            memcpy(out + start, logs, sizeof logs);
        } else {
            // NaN, zero, subnormal or infinite ratios (never prices' in practice): libm's answer.
            for (int w = 0; w < lanes; w++) {
                const double a = numerator[start + w], b = denominator[start + w];
                out[start + w] = ratio[w] >= DBL_MIN && ratio[w] <= DBL_MAX ? logs[w] : a > 0 && b > 0 ? log(a / b) : NAN;
            }
        }
    }
    for (; start < n; start++) {
        const double a = numerator[start], b = denominator[start];
        out[start] = a > 0 && b > 0 ? log(a / b) : NAN;
    }
}

/// The least-squares slope of y on x over the points whose `valid` flag is set, per lane; NaN
/// with fewer than two.
static inline void lane_slopes(int points, const double (*xs)[lanes], const double (*ys)[lanes], const int (*valid)[lanes], double *slope) {
    for (int w = 0; w < lanes; w++) {
        double count = 0, mx = 0, my = 0;
        for (int p = 0; p < points; p++) {
            if (!valid[p][w]) continue;
            count += 1;
            mx += xs[p][w];
            my += ys[p][w];
        }
        if (count < 2) {
            slope[w] = NAN;
            continue;
        }
        mx /= count;
        my /= count;
        double sxy = 0, sxx = 0;
        for (int p = 0; p < points; p++) {
            if (!valid[p][w]) continue;
            sxy += (xs[p][w] - mx) * (ys[p][w] - my);
            sxx += (xs[p][w] - mx) * (xs[p][w] - mx);
        }
        slope[w] = sxx > 0 ? sxy / sxx : NAN;
    }
}

// MARK: wavelets

SHOAL_KERNEL void shoal_wavelet_energies(const double *x, long n, long window, long levels, int daubechies, double *out) {
    if (window > 256 || window < 2 || n < window) return;
    lane_t values[256], next[128];
    const double s3 = sqrt(3.0), norm = 4 * sqrt(2.0);
    const double h[4] = {(1 + s3) / norm, (3 + s3) / norm, (3 - s3) / norm, (1 - s3) / norm};
    const double g[4] = {h[3], -h[2], h[1], -h[0]};
    const double haar = sqrt(0.5);
    for (long start = 0; start + window <= n; start += lanes) {
        load_windows(x, n, window, start, values);
        long length = window;
        for (long level = 0; level < levels && length >= 2; level++) {
            const long half = length / 2;
            double energy[lanes] = {0};
            for (long i = 0; i < half; i++) {
                double approximation[lanes], detail[lanes];
                if (!daubechies) {
                    SHOAL_LANES
                    for (int w = 0; w < lanes; w++) {
                        approximation[w] = (values[2 * i][w] + values[2 * i + 1][w]) * haar;
                        detail[w] = (values[2 * i][w] - values[2 * i + 1][w]) * haar;
                    }
                } else {
                    const long mask = length - 1;  // a power of two: the periodic wrap is a mask
                    const long k0 = 2 * i, k1 = (2 * i + 1) & mask, k2 = (2 * i + 2) & mask, k3 = (2 * i + 3) & mask;
                    SHOAL_LANES
                    for (int w = 0; w < lanes; w++) {
                        approximation[w] = h[0] * values[k0][w] + h[1] * values[k1][w] + h[2] * values[k2][w] + h[3] * values[k3][w];
                        detail[w] = g[0] * values[k0][w] + g[1] * values[k1][w] + g[2] * values[k2][w] + g[3] * values[k3][w];
                    }
                }
                SHOAL_LANES
                for (int w = 0; w < lanes; w++) {
                    next[i][w] = approximation[w];
                    energy[w] += detail[w] * detail[w];
                }
            }
            store_windows(out + level * n, n, window, start, energy);
            memcpy(values, next, sizeof(lane_t) * half);
            length = half;
        }
    }
}

// MARK: spectrum

SHOAL_KERNEL void shoal_band_powers(const double *x, long n, long window, long bands, double *out) {
    if (window > 256 || window < 4 || n < window || bands < 1 || bands > window / 2) return;
    // A sliding DFT: bin k of the window starting at s + 1 is (X_k(s) − x_s + x_{s+W}) · e^{2πik/W}.
    // The mean only moves bin 0, which is left out, so the windows need not be centred. Each
    // window holding a NaN is NaN; the bins are computed afresh every 1024 windows (rounding)
    // and after a NaN leaves the window.
    const long bins = window / 2, per_band = bins / bands;
    double rotation_real[128], rotation_imaginary[128], real[128], imaginary[128];
    // e^{−2πim/W} for m = 0…W−1, for the bins computed afresh.
    double twiddle_real[256], twiddle_imaginary[256];
    for (long m = 0; m < window; m++) {
        twiddle_real[m] = cos(-2 * M_PI * (double)m / (double)window);
        twiddle_imaginary[m] = sin(-2 * M_PI * (double)m / (double)window);
    }
    for (long k = 1; k <= bins; k++) {
        rotation_real[k - 1] = cos(2 * M_PI * (double)k / (double)window);
        rotation_imaginary[k - 1] = sin(2 * M_PI * (double)k / (double)window);
    }
    long last_nan = -1;  // the latest NaN seen at or before the window's end
    int fresh = 1;
    for (long start = 0; start + window <= n; start++) {
        const long end = start + window - 1;
        if (isnan(x[end])) last_nan = end;
        if (start == 0) {
            for (long j = 0; j < window - 1; j++) {
                if (isnan(x[j])) last_nan = j;
            }
        }
        if (last_nan >= start) {
            fresh = 1;
            continue;
        }
        if (fresh || start % 1024 == 0) {
            for (long k = 1; k <= bins; k++) {
                double re = 0, im = 0;
                for (long j = 0; j < window; j++) {
                    const long m = (k * j) % window;
                    re += x[start + j] * twiddle_real[m];
                    im += x[start + j] * twiddle_imaginary[m];
                }
                real[k - 1] = re;
                imaginary[k - 1] = im;
            }
            fresh = 0;
        } else {
            const double change = x[end] - x[start - 1];
            SHOAL_LANES
            for (long k = 0; k < bins; k++) {
                const double re = real[k] + change, im = imaginary[k];
                real[k] = re * rotation_real[k] - im * rotation_imaginary[k];
                imaginary[k] = re * rotation_imaginary[k] + im * rotation_real[k];
            }
        }
        double band_power[128] = {0};
        double total = 0;
        for (long k = 0; k < bins; k++) {
            long band = k / per_band;
            if (band >= bands) band = bands - 1;
            const double power = (real[k] * real[k] + imaginary[k] * imaginary[k]) / (double)window;
            band_power[band] += power;
            total += power;
        }
        if (!(total > 0)) continue;
        for (long b = 0; b < bands; b++) out[b * n + end] = band_power[b] / total;
    }
}

// MARK: fractal measures

SHOAL_KERNEL void shoal_hurst(const double *x, long n, long window, double *out) {
    if (window < 16 || window > 1024 || n < window) return;
    // The window's values and their running sums and sums of squares, P[0] = Q[0] = 0.
    lane_t *values = malloc(sizeof(lane_t) * (size_t)window);
    lane_t *sums = malloc(sizeof(lane_t) * (size_t)(window + 1));
    lane_t *squares = malloc(sizeof(lane_t) * (size_t)(window + 1));
    if (!values || !sums || !squares) {
        free(values);
        free(sums);
        free(squares);
        return;
    }
    long sizes[8];
    double logs[8];
    int points = 0;
    for (long size = 8; size <= window && points < 8; size *= 2) {
        logs[points] = log((double)size);
        sizes[points++] = size;
    }
    double xs[8][lanes], ys[8][lanes];
    int valid[8][lanes];
    for (long start = 0; start + window <= n; start += lanes) {
        load_windows(x, n, window, start, values);
        // Running sums in registers, stored row by row; a NaN anywhere leaves the last sum NaN.
        double run[lanes] = {0}, run_squares[lanes] = {0};
        memcpy(sums[0], run, sizeof(lane_t));
        memcpy(squares[0], run_squares, sizeof(lane_t));
        for (long j = 0; j < window; j++) {
            SHOAL_LANES
            for (int w = 0; w < lanes; w++) {
                run[w] += values[j][w];
                run_squares[w] += values[j][w] * values[j][w];
            }
            memcpy(sums[j + 1], run, sizeof(lane_t));
            memcpy(squares[j + 1], run_squares, sizeof(lane_t));
        }
        int holds_nan[lanes];
        for (int w = 0; w < lanes; w++) holds_nan[w] = isnan(run[w]);
        for (int p = 0; p < points; p++) {
            const long size = sizes[p];
            const double inverse = 1 / (double)size;
            double total[lanes] = {0}, used[lanes] = {0};
            for (long first = 0; first + size <= window; first += size) {
                // The running sum of deviations from the chunk's mean after t + 1 values is
                // P[first + t + 1] − P[first] − (t + 1) · mean: its range, from the prefix sums.
                double mean[lanes], spread[lanes], high[lanes], low[lanes];
                SHOAL_LANES
                for (int w = 0; w < lanes; w++) {
                    const double chunk = sums[first + size][w] - sums[first][w];
                    mean[w] = chunk * inverse;
                    const double variance = (squares[first + size][w] - squares[first][w]) * inverse - mean[w] * mean[w];
                    spread[w] = sqrt(variance > 0 ? variance : 0);
                    high[w] = -INFINITY;
                    low[w] = INFINITY;
                }
                for (long t = 1; t <= size; t++) {
                    SHOAL_LANES
                    for (int w = 0; w < lanes; w++) {
                        const double running = sums[first + t][w] - sums[first][w] - (double)t * mean[w];
                        high[w] = running > high[w] ? running : high[w];
                        low[w] = running < low[w] ? running : low[w];
                    }
                }
                SHOAL_LANES
                for (int w = 0; w < lanes; w++) {
                    const int spread_out = spread[w] > 0;
                    total[w] += spread_out ? (high[w] - low[w]) / (spread_out ? spread[w] : 1) : 0;
                    used[w] += spread_out ? 1 : 0;
                }
            }
            double ratio[lanes];
            for (int w = 0; w < lanes; w++) {
                valid[p][w] = used[w] > 0;
                xs[p][w] = logs[p];
                ratio[w] = used[w] > 0 ? total[w] / used[w] : 1;
            }
            lane_logs(ratio, ys[p]);
        }
        double slope[lanes];
        lane_slopes(points, (const double (*)[lanes])xs, (const double (*)[lanes])ys, (const int (*)[lanes])valid, slope);
        for (int w = 0; w < lanes && start + w <= n - window; w++) {
            if (!holds_nan[w] && !isnan(slope[w])) out[start + w + window - 1] = slope[w];
        }
    }
    free(values);
    free(sums);
    free(squares);
}

SHOAL_KERNEL void shoal_higuchi(const double *x, long n, long window, long max_delay, double *out) {
    if (max_delay < 2 || max_delay > 32 || window <= 2 * max_delay || n < window) return;
    lane_t *values = malloc(sizeof(lane_t) * (size_t)window);
    if (!values) return;
    double xs[32][lanes], ys[32][lanes];
    int valid[32][lanes];
    double logs[32];
    for (long k = 1; k <= max_delay; k++) logs[k - 1] = log(1 / (double)k);
    for (long start = 0; start + window <= n; start += lanes) {
        load_windows(x, n, window, start, values);
        int ok[lanes];
        for (int w = 0; w < lanes; w++) ok[w] = 1;
        for (long k = 1; k <= max_delay; k++) {
            double total[lanes] = {0};
            for (long m = 0; m < k; m++) {
                const long steps = (window - 1 - m) / k;
                if (steps < 1) continue;
                // Four partial sums, so that consecutive additions do not wait on each other.
                double p0[lanes] = {0}, p1[lanes] = {0}, p2[lanes] = {0}, p3[lanes] = {0};
                long i = 1;
                for (; i + 3 <= steps; i += 4) {
                    const long a0 = m + i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
                    SHOAL_LANES
                    for (int w = 0; w < lanes; w++) {
                        p0[w] += fabs(values[a0][w] - values[a0 - k][w]);
                        p1[w] += fabs(values[a1][w] - values[a1 - k][w]);
                        p2[w] += fabs(values[a2][w] - values[a2 - k][w]);
                        p3[w] += fabs(values[a3][w] - values[a3 - k][w]);
                    }
                }
                for (; i <= steps; i++) {
                    const long a = m + i * k;
                    SHOAL_LANES
                    for (int w = 0; w < lanes; w++) p0[w] += fabs(values[a][w] - values[a - k][w]);
                }
                const double scale = (double)(window - 1) / ((double)(steps * k) * (double)k);
                SHOAL_LANES
                for (int w = 0; w < lanes; w++) total[w] += (p0[w] + p1[w] + p2[w] + p3[w]) * scale;
            }
            double average[lanes];
            for (int w = 0; w < lanes; w++) {
                average[w] = total[w] / (double)k;
                if (!(average[w] > 0) || !isfinite(average[w])) ok[w] = 0;
                valid[k - 1][w] = 1;
                xs[k - 1][w] = logs[k - 1];
            }
            lane_logs(average, ys[k - 1]);
        }
        double slope[lanes];
        lane_slopes((int)max_delay, (const double (*)[lanes])xs, (const double (*)[lanes])ys, (const int (*)[lanes])valid, slope);
        for (int w = 0; w < lanes && start + w <= n - window; w++) {
            if (ok[w] && !isnan(slope[w])) out[start + w + window - 1] = slope[w];
        }
    }
    free(values);
}
