/* SPDX-License-Identifier: MIT */
/* DSP_CLONES: a function compiled for AVX-512, AVX2 and the baseline, the
 * loader picking one at start-up (GNU target_clones, an ifunc).  For the
 * per-sample loops written in blocks of a fixed 16 so that gcc vectorises
 * them at -O2: each lane's operations are the same whatever the width (no
 * reduction is reassociated, no multiply-add fused: -ffp-contract=off), so
 * every clone gives the same bits.  Empty where ifuncs are not available. */
#ifndef DSP_CLONES_H
#define DSP_CLONES_H

#ifndef DSP_CLONES /* tests/dsp's baseline builds predefine it empty */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && defined(__linux__)
#define DSP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DSP_CLONES
#endif
#endif

#endif
