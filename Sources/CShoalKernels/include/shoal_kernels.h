// Vectorised numeric kernels for ShoalTensor: elementwise maps, row-wise softmax and layer
// normalisation, LSTM gate steps and optimiser updates. Each kernel is compiled for AVX-512,
// AVX2+FMA and baseline x86-64 and picked for the processor when the program loads.
//
// Conventions: `n` counts elements; matrices are row-major with an explicit row stride where
// they may be views into a wider buffer; output pointers may equal input pointers only where
// a kernel says so.
#ifndef SHOAL_KERNELS_H
#define SHOAL_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: memory

/// Has malloc keep freed large blocks for reuse instead of returning them to the system: one
/// arena, mmap threshold 512 MiB, trim threshold 1 GiB. Runs when the program loads; a no-op
/// where malloc is not glibc's or `SHOAL_MALLOC=default` is set.
void shoal_keep_freed_memory(void);

/// Whether the calling thread runs inside one of ShoalTensor's parallel loops (a thread-local
/// flag), so loops nested in it run on that thread alone.
int shoal_in_parallel_region(void);
void shoal_set_parallel_region(int inside);

// MARK: elementwise

/// y = a + b (y may be a or b).
void shoal_add(const float *a, const float *b, float *y, long n);
/// y = a - b (y may be a or b).
void shoal_sub(const float *a, const float *b, float *y, long n);
/// y = a * b (y may be a or b).
void shoal_mul(const float *a, const float *b, float *y, long n);
/// y = a / b (y may be a or b).
void shoal_div(const float *a, const float *b, float *y, long n);
/// y += alpha * x.
void shoal_axpy(float alpha, const float *x, float *y, long n);
/// y = alpha * x + beta (y may be x).
void shoal_affine(const float *x, float alpha, float beta, float *y, long n);
/// y[i, j] = x[i, j] + row[j] for `rows` rows of `width` (y may be x).
void shoal_add_row(const float *x, const float *row, float *y, long rows, long width);
/// y[i, j] = x[i, j] * row[j] (y may be x).
void shoal_mul_row(const float *x, const float *row, float *y, long rows, long width);
/// y[i, j] = x[i, j] + column[i] (y may be x).
void shoal_add_column(const float *x, const float *column, float *y, long rows, long width);
/// y[i, j] = x[i, j] * column[i] (y may be x).
void shoal_mul_column(const float *x, const float *column, float *y, long rows, long width);
/// out[j] = sum over i of x[i, j], or += when `accumulate`.
void shoal_column_sums(const float *x, long rows, long width, float *out, int accumulate);
/// out[i] = sum over j of x[i, j], or += when `accumulate`.
void shoal_row_sums(const float *x, long rows, long width, float *out, int accumulate);
/// The sum of x (accumulated in double precision).
double shoal_sum(const float *x, long n);
/// The sum of x * y (accumulated in double precision).
double shoal_dot(const float *x, const float *y, long n);
/// The largest |x|.
float shoal_max_abs(const float *x, long n);

/// y = max(x, 0).
void shoal_relu(const float *x, float *y, long n);
/// dx = g where x > 0, else 0 (dx may be g).
void shoal_relu_backward(const float *g, const float *x, float *dx, long n);
/// y = exp(x) (y may be x).
void shoal_exp(const float *x, float *y, long n);
/// y = log(x) for x > 0 (y may be x).
void shoal_log(const float *x, float *y, long n);
/// y = tanh(x) (y may be x).
void shoal_tanh(const float *x, float *y, long n);
/// y = 1 / (1 + exp(-x)) (y may be x).
void shoal_sigmoid(const float *x, float *y, long n);
/// dx = g * (1 - y * y), from tanh's output y (dx may be g).
void shoal_tanh_backward(const float *g, const float *y, float *dx, long n);
/// dx = g * y * (1 - y), from the sigmoid's output y (dx may be g).
void shoal_sigmoid_backward(const float *g, const float *y, float *dx, long n);
/// y = min(max(x, low), high) (y may be x).
void shoal_clamp(const float *x, float low, float high, float *y, long n);
/// dx = g where low <= x <= high, else 0 (dx may be g).
void shoal_clamp_backward(const float *g, const float *x, float low, float high, float *dx, long n);

// MARK: rows

/// Softmax of each row of `width`, stably (y may be x).
void shoal_softmax_rows(const float *x, float *y, long rows, long width);
/// Log-softmax of each row, stably (y may be x).
void shoal_log_softmax_rows(const float *x, float *y, long rows, long width);
/// The softmax's backward pass: dx = scale * y * (g - sum(g * y)) per row (dx may be g).
void shoal_softmax_backward_rows(const float *y, const float *g, float *dx, long rows, long width, float scale);
/// The log-softmax's backward pass: dx = g - exp(y) * sum(g) per row, y the log-softmax (dx may be g).
void shoal_log_softmax_backward_rows(const float *y, const float *g, float *dx, long rows, long width);

/// Layer normalisation of each row: xhat = (x - mean) / sqrt(var + eps), y = xhat * gamma +
/// beta; keeps xhat and 1 / sqrt(var + eps) per row for the backward pass.
void shoal_layer_norm(
    const float *x, const float *gamma, const float *beta, float *y, float *xhat, float *inverse_std, long rows,
    long width, float epsilon);
/// Layer normalisation's backward pass; dgamma and dbeta are accumulated (+=).
void shoal_layer_norm_backward(
    const float *g, const float *xhat, const float *inverse_std, const float *gamma, float *dx, float *dgamma,
    float *dbeta, long rows, long width);

// MARK: recurrent

/// One LSTM step for `batch` rows, PyTorch's gate order (i, f, g, o). `gates` holds each row's
/// 4 × hidden pre-activations less `bias` (4 × hidden, added to every row) and is overwritten
/// with the activations; the new cell state goes
/// to `cell`, tanh of it to `tanh_cell`, the new hidden state to `hidden`. `previous_cell` may
/// be NULL (zero state). Strides are between consecutive rows.
void shoal_lstm_step(
    long batch, long hidden, float *gates, long gates_stride, const float *bias, const float *previous_cell,
    long previous_stride,
    float *cell, long cell_stride, float *tanh_cell, long tanh_stride, float *hidden_state, long hidden_stride);
/// The backward pass of `shoal_lstm_step`: from the activated gates, the previous cell state
/// (NULL for zero), tanh of the new cell state, the hidden state's gradient `dh` and the cell
/// state's gradient `dc` (contiguous batch × hidden, overwritten with the previous cell state's
/// gradient), writes the gates' pre-activation gradients to `dgates`.
void shoal_lstm_step_backward(
    long batch, long hidden, const float *gates, long gates_stride, const float *previous_cell, long previous_stride,
    const float *tanh_cell, long tanh_stride, const float *dh, long dh_stride, float *dc, float *dgates,
    long dgates_stride);

// MARK: optimisers

/// One Adam step over n parameters: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g²;
/// p -= lr (m / c1) / (sqrt(v / c2) + eps), after p -= lr · decay · p (AdamW) when decay > 0.
void shoal_adam(
    float *parameters, const float *gradients, float *m, float *v, long n, float learning_rate, float beta1,
    float beta2, float epsilon, float correction1, float correction2, float weight_decay);

// MARK: shared-memory collective

/// A barrier that lives in memory mapped by several processes (16 bytes, zeroed to start).
typedef struct {
    uint32_t words[4];
} shoal_shm_barrier;

/// Arrives at the barrier; the last of `parties` to arrive releases the others.
/// - Returns: the generation to pass to `shoal_barrier_await`.
uint32_t shoal_barrier_arrive(shoal_shm_barrier *barrier, uint32_t parties);

/// Waits until the barrier's generation moves past `generation`: spins `spins` times, then
/// sleeps on a futex for at most `timeout_ms`. Returns 0 once passed, 1 when the time ran out
/// (call again to go on waiting), 2 when the barrier was aborted, 3 without futexes.
int shoal_barrier_await(shoal_shm_barrier *barrier, uint32_t generation, long spins, int timeout_ms);

/// Marks the barrier aborted and wakes every waiter.
void shoal_barrier_abort(shoal_shm_barrier *barrier);

/// Whether the barrier was aborted.
int shoal_barrier_aborted(const shoal_shm_barrier *barrier);

/// out[i] = scale · Σ_k slots[k · slot_stride + offset + i] for i < n, summed in slot order.
void shoal_sum_slots(const float *slots, long slot_stride, int count, long offset, long n, float scale, float *out);

#ifdef __cplusplus
}
#endif

#endif
