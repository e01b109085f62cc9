// Rolling-window market measures, eight windows at a time (see include/shoal_market.h).
#include "shoal_market.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__) && defined(__linux__)
#define SHOAL_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SHOAL_KERNEL
#endif

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
        for (long j = 0; j < window; j++) {
            SHOAL_LANES
            for (int w = 0; w < lanes; w++) buffer[j][w] = x[start + w + j];
        }
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
                    const long k0 = 2 * i, k1 = (2 * i + 1) % length, k2 = (2 * i + 2) % length, k3 = (2 * i + 3) % length;
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
    lane_t real[256], imaginary[256];
    double cosines[128], sines[128];
    long reversed[256];
    for (long k = 0; k < window / 2; k++) {
        cosines[k] = cos(-2 * M_PI * (double)k / (double)window);
        sines[k] = sin(-2 * M_PI * (double)k / (double)window);
    }
    long bits = 0;
    while ((1L << bits) < window) bits++;
    for (long i = 0; i < window; i++) {
        long r = 0;
        for (long b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
        reversed[i] = r;
    }
    const long bins = window / 2, per_band = bins / bands;
    lane_t values[256];
    for (long start = 0; start + window <= n; start += lanes) {
        load_windows(x, n, window, start, values);
        double mean[lanes] = {0};
        for (long j = 0; j < window; j++) {
            SHOAL_LANES
            for (int w = 0; w < lanes; w++) mean[w] += values[j][w];
        }
        for (int w = 0; w < lanes; w++) mean[w] /= (double)window;
        for (long j = 0; j < window; j++) {
            SHOAL_LANES
            for (int w = 0; w < lanes; w++) {
                real[reversed[j]][w] = values[j][w] - mean[w];
                imaginary[reversed[j]][w] = 0;
            }
        }
        for (long length = 2; length <= window; length <<= 1) {
            const long step = window / length;
            for (long block = 0; block < window; block += length) {
                for (long k = 0; k < length / 2; k++) {
                    const double wr = cosines[k * step], wi = sines[k * step];
                    const long a = block + k, b = a + length / 2;
                    SHOAL_LANES
                    for (int w = 0; w < lanes; w++) {
                        const double tr = wr * real[b][w] - wi * imaginary[b][w];
                        const double ti = wr * imaginary[b][w] + wi * real[b][w];
                        real[b][w] = real[a][w] - tr;
                        imaginary[b][w] = imaginary[a][w] - ti;
                        real[a][w] += tr;
                        imaginary[a][w] += ti;
                    }
                }
            }
        }
        double band_power[128][lanes];
        double total[lanes] = {0};
        for (long b = 0; b < bands; b++) {
            SHOAL_LANES
            for (int w = 0; w < lanes; w++) band_power[b][w] = 0;
        }
        for (long k = 1; k <= bins; k++) {
            long band = (k - 1) / per_band;
            if (band >= bands) band = bands - 1;
            SHOAL_LANES
            for (int w = 0; w < lanes; w++) {
                const double power = (real[k][w] * real[k][w] + imaginary[k][w] * imaginary[k][w]) / (double)window;
                band_power[band][w] += power;
                total[w] += power;
            }
        }
        for (int w = 0; w < lanes && start + w <= n - window; w++) {
            if (!(total[w] > 0)) continue;
            for (long b = 0; b < bands; b++) out[b * n + start + w + window - 1] = band_power[b][w] / total[w];
        }
    }
}

// MARK: fractal measures

SHOAL_KERNEL void shoal_hurst(const double *x, long n, long window, double *out) {
    if (window < 16 || window > 1024 || n < window) return;
    lane_t *values = malloc(sizeof(lane_t) * (size_t)window);
    if (!values) return;
    long sizes[8];
    int points = 0;
    for (long size = 8; size <= window && points < 8; size *= 2) sizes[points++] = size;
    double xs[8][lanes], ys[8][lanes];
    int valid[8][lanes];
    for (long start = 0; start + window <= n; start += lanes) {
        load_windows(x, n, window, start, values);
        int holds_nan[lanes] = {0};
        for (long j = 0; j < window; j++) {
            for (int w = 0; w < lanes; w++) holds_nan[w] |= isnan(values[j][w]);
        }
        for (int p = 0; p < points; p++) {
            const long size = sizes[p];
            double total[lanes] = {0}, used[lanes] = {0};
            for (long first = 0; first + size <= window; first += size) {
                double mean[lanes] = {0};
                for (long t = 0; t < size; t++) {
                    SHOAL_LANES
                    for (int w = 0; w < lanes; w++) mean[w] += values[first + t][w];
                }
                double cumulative[lanes] = {0}, high[lanes], low[lanes], squares[lanes] = {0};
                for (int w = 0; w < lanes; w++) {
                    mean[w] /= (double)size;
                    high[w] = -INFINITY;
                    low[w] = INFINITY;
                }
                for (long t = 0; t < size; t++) {
                    SHOAL_LANES
                    for (int w = 0; w < lanes; w++) {
                        const double deviation = values[first + t][w] - mean[w];
                        cumulative[w] += deviation;
                        high[w] = fmax(high[w], cumulative[w]);
                        low[w] = fmin(low[w], cumulative[w]);
                        squares[w] += deviation * deviation;
                    }
                }
                for (int w = 0; w < lanes; w++) {
                    const double spread = sqrt(squares[w] / (double)size);
                    if (spread > 0) {
                        total[w] += (high[w] - low[w]) / spread;
                        used[w] += 1;
                    }
                }
            }
            for (int w = 0; w < lanes; w++) {
                valid[p][w] = used[w] > 0;
                xs[p][w] = log((double)size);
                ys[p][w] = used[w] > 0 ? log(total[w] / used[w]) : 0;
            }
        }
        double slope[lanes];
        lane_slopes(points, (const double (*)[lanes])xs, (const double (*)[lanes])ys, (const int (*)[lanes])valid, slope);
        for (int w = 0; w < lanes && start + w <= n - window; w++) {
            if (!holds_nan[w] && !isnan(slope[w])) out[start + w + window - 1] = slope[w];
        }
    }
    free(values);
}

SHOAL_KERNEL void shoal_higuchi(const double *x, long n, long window, long max_delay, double *out) {
    if (max_delay < 2 || max_delay > 32 || window <= 2 * max_delay || n < window) return;
    lane_t *values = malloc(sizeof(lane_t) * (size_t)window);
    if (!values) return;
    double xs[32][lanes], ys[32][lanes];
    int valid[32][lanes];
    for (long start = 0; start + window <= n; start += lanes) {
        load_windows(x, n, window, start, values);
        int ok[lanes];
        for (int w = 0; w < lanes; w++) ok[w] = 1;
        for (long k = 1; k <= max_delay; k++) {
            double total[lanes] = {0};
            for (long m = 0; m < k; m++) {
                const long steps = (window - 1 - m) / k;
                if (steps < 1) continue;
                double length[lanes] = {0};
                for (long i = 1; i <= steps; i++) {
                    SHOAL_LANES
                    for (int w = 0; w < lanes; w++) length[w] += fabs(values[m + i * k][w] - values[m + (i - 1) * k][w]);
                }
                const double scale = (double)(window - 1) / ((double)(steps * k) * (double)k);
                SHOAL_LANES
                for (int w = 0; w < lanes; w++) total[w] += length[w] * scale;
            }
            for (int w = 0; w < lanes; w++) {
                const double average = total[w] / (double)k;
                if (!(average > 0) || !isfinite(average)) ok[w] = 0;
                valid[k - 1][w] = 1;
                xs[k - 1][w] = log(1 / (double)k);
                ys[k - 1][w] = average > 0 ? log(average) : 0;
            }
        }
        double slope[lanes];
        lane_slopes((int)max_delay, (const double (*)[lanes])xs, (const double (*)[lanes])ys, (const int (*)[lanes])valid, slope);
        for (int w = 0; w < lanes && start + w <= n - window; w++) {
            if (ok[w] && !isnan(slope[w])) out[start + w + window - 1] = slope[w];
        }
    }
    free(values);
}
