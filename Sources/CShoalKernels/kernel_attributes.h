// Attributes shared by the kernel files (private to CShoalKernels).
#ifndef SHOAL_KERNEL_ATTRIBUTES_H
#define SHOAL_KERNEL_ATTRIBUTES_H

// `SHOAL_KERNEL` builds a function for AVX-512, AVX2+FMA and baseline x86-64 and lets the loader
// pick (an ifunc).
#if defined(__x86_64__) && defined(__clang__) && defined(__linux__)
#define SHOAL_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SHOAL_KERNEL
#endif

// Every loop marked so reads and writes element i (or row i) only: the compiler may vectorise
// it without checking at run time whether outputs overlap inputs (they may be the same array).
#if defined(__clang__)
#define SHOAL_VECTOR _Pragma("clang loop vectorize(assume_safety) interleave(enable)")
#else
#define SHOAL_VECTOR
#endif

#endif
