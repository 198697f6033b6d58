/* SPDX-License-Identifier: MIT */
/* Bit casts between float and uint32_t, shared by the CPU kernels (exp and
 * half-precision conversions work on IEEE bit patterns).  Internal. */
#ifndef SSM_KERNELS_BITS_H
#define SSM_KERNELS_BITS_H

#include <stdint.h>
#include <string.h>

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif /* SSM_KERNELS_BITS_H */
