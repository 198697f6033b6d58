/* SPDX-License-Identifier: MIT */
/* Flush-to-zero / denormals-are-zero for the calling thread
 * (kernels/ssm_kernels.h).  Per architecture, through the SSE intrinsics on
 * x86-64 and the FPCR system register on aarch64; elsewhere the functions
 * report that nothing was set. */
#include "kernels/ssm_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define SSM_FP_MXCSR_FTZ 0x8000u /* bit 15: flush results to zero */
#define SSM_FP_MXCSR_DAZ 0x0040u /* bit 6: denormal operands are zero */

int ssm_fp_flush_denormals(void)
{
    _mm_setcsr(_mm_getcsr() | SSM_FP_MXCSR_FTZ | SSM_FP_MXCSR_DAZ);
    return 1;
}

int ssm_fp_denormals_flushed(void)
{
    unsigned m = SSM_FP_MXCSR_FTZ | SSM_FP_MXCSR_DAZ;
    return (_mm_getcsr() & m) == m;
}

#elif defined(__aarch64__)
#include <stdint.h>
#define SSM_FP_FPCR_FZ (UINT64_C(1) << 24) /* flush subnormal inputs and results to zero */

static uint64_t fpcr_get(void)
{
    uint64_t v;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
    return v;
}

int ssm_fp_flush_denormals(void)
{
    uint64_t v = fpcr_get() | SSM_FP_FPCR_FZ;
    __asm__ __volatile__("msr fpcr, %0" : : "r"(v));
    return 1;
}

int ssm_fp_denormals_flushed(void)
{
    return (fpcr_get() & SSM_FP_FPCR_FZ) != 0;
}

#else
int ssm_fp_flush_denormals(void) { return 0; }
int ssm_fp_denormals_flushed(void) { return 0; }
#endif
