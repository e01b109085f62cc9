// Vectorised kernels for ShoalTensor (see include/shoal_kernels.h).
//
// The loops are written so that the compiler vectorises them; `SHOAL_KERNEL` builds each one
// for AVX-512, AVX2+FMA and baseline x86-64 and lets the loader pick (an ifunc). Reductions
// allow reassociation so that they vectorise too. exp, log and tanh are Cephes-style
// polynomial approximations, within a few units in the last place of libm's.
#include "shoal_kernels.h"
#include "kernel_attributes.h"

#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif



static inline int32_t bits_of(float x) {
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}

static inline float float_of(int32_t bits) {
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/// exp(x): x = n ln 2 + r with |r| <= ln 2 / 2, exp(r) by a degree-6 polynomial, 2^n by the exponent bits.
static inline float exp_approx(float x) {
    x = fminf(fmaxf(x, -87.33654f), 88.37626f);
    const float magic = 12582912.0f;  // 1.5 × 2^23: adding it rounds to an integer in the low bits
    float shifted = x * 1.44269504088896341f + magic;
    float n = shifted - magic;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t exponent = bits_of(shifted) - 0x4B400000;
    return y * float_of((exponent + 127) << 23);
}

/// log(x) for normal x > 0; 0 gives -inf, negative values NaN, +inf itself.
static inline float log_approx(float x) {
    int32_t bits = bits_of(x);
    int32_t e = ((bits >> 23) & 0xff) - 126;
    float m = float_of((bits & 0x007fffff) | 0x3f000000);  // x = m 2^e, m in [0.5, 1)
    int below = m < 0.707106781186547524f;
    e = below ? e - 1 : e;
    m = below ? m + m - 1.0f : m - 1.0f;
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    float fe = (float)e;
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    float r = m + y + 0.693359375f * fe;
    r = x == INFINITY ? x : r;
    r = x == 0.0f ? -INFINITY : r;
    return x < 0.0f ? NAN : r;
}

static inline float tanh_approx(float x) {
    float a = fabsf(x);
    float e = exp_approx(2.0f * fminf(a, 9.0f));
    float large = 1.0f - 2.0f / (e + 1.0f);
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * a + a;
    return copysignf(a < 0.625f ? small : large, x);
}

/// sqrt without errno, so that loops around it vectorise.
static inline float square_root(float x) {
#if defined(__clang__)
    return __builtin_elementwise_sqrt(x);
#else
    return __builtin_sqrtf(x);
#endif
}

static inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// MARK: memory

void shoal_keep_freed_memory(void) {
#if defined(__GLIBC__)
    const char *setting = getenv("SHOAL_MALLOC");
    if (setting && strcmp(setting, "default") == 0) return;
    // One arena: threads of Swift's pool would otherwise each get an arena of 64 MiB heaps,
    // which map fresh pages for large blocks and unmap them when empty, whatever the thresholds.
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

// Before main, so that no thread has an arena of its own yet.
__attribute__((constructor)) static void shoal_configure_memory(void) { shoal_keep_freed_memory(); }

static _Thread_local int parallel_region;
int shoal_in_parallel_region(void) { return parallel_region; }
void shoal_set_parallel_region(int inside) { parallel_region = inside; }

// MARK: elementwise

SHOAL_KERNEL void shoal_add(const float *a, const float *b, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}

SHOAL_KERNEL void shoal_sub(const float *a, const float *b, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = a[i] - b[i];
}

SHOAL_KERNEL void shoal_mul(const float *a, const float *b, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = a[i] * b[i];
}

SHOAL_KERNEL void shoal_div(const float *a, const float *b, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = a[i] / b[i];
}

SHOAL_KERNEL void shoal_axpy(float alpha, const float *restrict x, float *restrict y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] += alpha * x[i];
}

SHOAL_KERNEL void shoal_affine(const float *x, float alpha, float beta, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = alpha * x[i] + beta;
}

SHOAL_KERNEL void shoal_add_row(const float *x, const float *restrict row, float *y, long rows, long width) {
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * width;
        float *out = y + r * width;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] = in[j] + row[j];
    }
}

SHOAL_KERNEL void shoal_mul_row(const float *x, const float *restrict row, float *y, long rows, long width) {
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * width;
        float *out = y + r * width;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] = in[j] * row[j];
    }
}

SHOAL_KERNEL void shoal_add_column(const float *x, const float *restrict column, float *y, long rows, long width) {
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * width;
        float *out = y + r * width;
        const float value = column[r];
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] = in[j] + value;
    }
}

SHOAL_KERNEL void shoal_mul_column(const float *x, const float *restrict column, float *y, long rows, long width) {
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * width;
        float *out = y + r * width;
        const float value = column[r];
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] = in[j] * value;
    }
}

SHOAL_KERNEL void shoal_column_sums(const float *restrict x, long rows, long width, float *restrict out, int accumulate) {
    if (!accumulate) memset(out, 0, (size_t)width * sizeof(float));
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * width;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] += in[j];
    }
}

SHOAL_KERNEL void shoal_row_sums(const float *restrict x, long rows, long width, float *restrict out, int accumulate) {
#pragma clang fp reassociate(on)
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * width;
        float total = 0;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) total += in[j];
        out[r] = accumulate ? out[r] + total : total;
    }
}

SHOAL_KERNEL double shoal_sum(const float *x, long n) {
#pragma clang fp reassociate(on)
    double total = 0;
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) total += (double)x[i];
    return total;
}

SHOAL_KERNEL double shoal_dot(const float *x, const float *y, long n) {
#pragma clang fp reassociate(on)
    double total = 0;
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) total += (double)x[i] * (double)y[i];
    return total;
}

SHOAL_KERNEL float shoal_max_abs(const float *x, long n) {
    float largest = 0;
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) largest = fmaxf(largest, fabsf(x[i]));
    return largest;
}

SHOAL_KERNEL void shoal_relu(const float *x, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

SHOAL_KERNEL void shoal_relu_backward(const float *g, const float *x, float *dx, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? g[i] : 0.0f;
}

SHOAL_KERNEL void shoal_exp(const float *x, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = exp_approx(x[i]);
}

SHOAL_KERNEL void shoal_log(const float *x, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = log_approx(x[i]);
}

SHOAL_KERNEL void shoal_tanh(const float *x, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = tanh_approx(x[i]);
}

SHOAL_KERNEL void shoal_sigmoid(const float *x, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = sigmoid_approx(x[i]);
}

SHOAL_KERNEL void shoal_tanh_backward(const float *g, const float *y, float *dx, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) dx[i] = g[i] * (1.0f - y[i] * y[i]);
}

SHOAL_KERNEL void shoal_sigmoid_backward(const float *g, const float *y, float *dx, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) dx[i] = g[i] * y[i] * (1.0f - y[i]);
}

SHOAL_KERNEL void shoal_clamp(const float *x, float low, float high, float *y, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) y[i] = fminf(fmaxf(x[i], low), high);
}

SHOAL_KERNEL void shoal_clamp_backward(const float *g, const float *x, float low, float high, float *dx, long n) {
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) dx[i] = (x[i] >= low && x[i] <= high) ? g[i] : 0.0f;
}

// MARK: rows

SHOAL_KERNEL void shoal_softmax_rows(const float *x, float *y, long rows, long width) {
#pragma clang fp reassociate(on)
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * width;
        float *out = y + r * width;
        float largest = -INFINITY;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) largest = fmaxf(largest, in[j]);
        float total = 0;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) {
            float e = exp_approx(in[j] - largest);
            out[j] = e;
            total += e;
        }
        const float inverse = 1.0f / total;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] *= inverse;
    }
}

SHOAL_KERNEL void shoal_log_softmax_rows(const float *x, float *y, long rows, long width) {
#pragma clang fp reassociate(on)
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * width;
        float *out = y + r * width;
        float largest = -INFINITY;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) largest = fmaxf(largest, in[j]);
        float total = 0;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) total += exp_approx(in[j] - largest);
        const float shift = largest + logf(total);
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] = in[j] - shift;
    }
}

SHOAL_KERNEL void shoal_softmax_backward_rows(const float *y, const float *g, float *dx, long rows, long width, float scale) {
#pragma clang fp reassociate(on)
    for (long r = 0; r < rows; r++) {
        const float *p = y + r * width;
        const float *gradient = g + r * width;
        float *out = dx + r * width;
        float dot = 0;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) dot += gradient[j] * p[j];
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] = scale * p[j] * (gradient[j] - dot);
    }
}

SHOAL_KERNEL void shoal_log_softmax_backward_rows(const float *y, const float *g, float *dx, long rows, long width) {
#pragma clang fp reassociate(on)
    for (long r = 0; r < rows; r++) {
        const float *logp = y + r * width;
        const float *gradient = g + r * width;
        float *out = dx + r * width;
        float total = 0;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) total += gradient[j];
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] = gradient[j] - exp_approx(logp[j]) * total;
    }
}

SHOAL_KERNEL void shoal_layer_norm(
    const float *restrict x, const float *restrict gamma, const float *restrict beta, float *restrict y,
    float *restrict xhat, float *restrict inverse_std, long rows, long width, float epsilon) {
#pragma clang fp reassociate(on)
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * width;
        float *normal = xhat + r * width;
        float *out = y + r * width;
        float mean = 0;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) mean += in[j];
        mean /= (float)width;
        float variance = 0;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) variance += (in[j] - mean) * (in[j] - mean);
        variance /= (float)width;
        const float inverse = 1.0f / sqrtf(variance + epsilon);
        inverse_std[r] = inverse;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) {
            const float hat = (in[j] - mean) * inverse;
            normal[j] = hat;
            out[j] = hat * gamma[j] + beta[j];
        }
    }
}

SHOAL_KERNEL void shoal_layer_norm_backward(
    const float *restrict g, const float *restrict xhat, const float *restrict inverse_std, const float *restrict gamma,
    float *restrict dx, float *restrict dgamma, float *restrict dbeta, long rows, long width) {
#pragma clang fp reassociate(on)
    for (long r = 0; r < rows; r++) {
        const float *gradient = g + r * width;
        const float *normal = xhat + r * width;
        float *out = dx + r * width;
        float mean_g = 0, mean_gx = 0;
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) {
            const float scaled = gradient[j] * gamma[j];
            mean_g += scaled;
            mean_gx += scaled * normal[j];
            dgamma[j] += gradient[j] * normal[j];
            dbeta[j] += gradient[j];
        }
        mean_g /= (float)width;
        mean_gx /= (float)width;
        const float inverse = inverse_std[r];
        SHOAL_VECTOR
        for (long j = 0; j < width; j++) out[j] = inverse * (gradient[j] * gamma[j] - mean_g - normal[j] * mean_gx);
    }
}

// MARK: recurrent

SHOAL_KERNEL void shoal_lstm_step(
    long batch, long hidden, float *gates, long gates_stride, const float *bias, const float *previous_cell,
    long previous_stride,
    float *cell, long cell_stride, float *tanh_cell, long tanh_stride, float *hidden_state, long hidden_stride) {
    const int has_previous = previous_cell != 0;
    for (long b = 0; b < batch; b++) {
        float *restrict z = gates + b * gates_stride;
        const float *restrict before = has_previous ? previous_cell + b * previous_stride : 0;
        float *restrict c = cell + b * cell_stride;
        float *restrict tc = tanh_cell + b * tanh_stride;
        float *restrict h = hidden_state + b * hidden_stride;
        SHOAL_VECTOR
        for (long j = 0; j < hidden; j++) {
            const float i = sigmoid_approx(z[j] + bias[j]);
            const float f = sigmoid_approx(z[hidden + j] + bias[hidden + j]);
            const float candidate = tanh_approx(z[2 * hidden + j] + bias[2 * hidden + j]);
            const float o = sigmoid_approx(z[3 * hidden + j] + bias[3 * hidden + j]);
            const float value = (has_previous ? f * before[j] : 0.0f) + i * candidate;
            const float squashed = tanh_approx(value);
            z[j] = i;
            z[hidden + j] = f;
            z[2 * hidden + j] = candidate;
            z[3 * hidden + j] = o;
            c[j] = value;
            tc[j] = squashed;
            h[j] = o * squashed;
        }
    }
}

SHOAL_KERNEL void shoal_lstm_step_backward(
    long batch, long hidden, const float *gates, long gates_stride, const float *previous_cell, long previous_stride,
    const float *tanh_cell, long tanh_stride, const float *dh, long dh_stride, float *dc, float *dgates,
    long dgates_stride) {
    const int has_previous = previous_cell != 0;
    for (long b = 0; b < batch; b++) {
        const float *restrict a = gates + b * gates_stride;
        const float *restrict before = has_previous ? previous_cell + b * previous_stride : 0;
        const float *restrict tc = tanh_cell + b * tanh_stride;
        const float *restrict gh = dh + b * dh_stride;
        float *restrict gc = dc + b * hidden;
        float *restrict out = dgates + b * dgates_stride;
        SHOAL_VECTOR
        for (long j = 0; j < hidden; j++) {
            const float i = a[j], f = a[hidden + j], candidate = a[2 * hidden + j], o = a[3 * hidden + j];
            const float squashed = tc[j];
            const float total = gc[j] + gh[j] * o * (1.0f - squashed * squashed);
            const float previous = has_previous ? before[j] : 0.0f;
            out[j] = total * candidate * i * (1.0f - i);
            out[hidden + j] = total * previous * f * (1.0f - f);
            out[2 * hidden + j] = total * i * (1.0f - candidate * candidate);
            out[3 * hidden + j] = gh[j] * squashed * o * (1.0f - o);
            gc[j] = total * f;
        }
    }
}

// MARK: optimisers

SHOAL_KERNEL void shoal_adam(
    float *restrict parameters, const float *restrict gradients, float *restrict m, float *restrict v, long n,
    float learning_rate, float beta1, float beta2, float epsilon, float correction1, float correction2,
    float weight_decay) {
    const float decay = 1.0f - learning_rate * weight_decay;
    const float step = learning_rate / correction1;
    const float root = 1.0f / sqrtf(correction2);
    SHOAL_VECTOR
    for (long i = 0; i < n; i++) {
        const float g = gradients[i];
        const float first = beta1 * m[i] + (1.0f - beta1) * g;
        const float second = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = first;
        v[i] = second;
        parameters[i] = parameters[i] * decay - step * first / (square_root(second) * root + epsilon);
    }
}
