/* SPDX-License-Identifier: MIT */
/* Running a linear kernel (ssm_linear_packed_fn: packed fp32/f16, int8) with
 * strided rows and a canary around its output, for the kernel tests.
 * Include after cmocka.h and kernels/ssm_kernels.h. */
#ifndef KT_LINEAR_H
#define KT_LINEAR_H

#include <stddef.h>

#define CANARY 12345.0f

/* Runs fn over n rows with ld_x = d_in + 3, ld_out = d_out + 5; out holds
 * n + 1 rows; the padding columns and the extra row are filled with CANARY
 * and must stay so (nothing written beyond d_out columns or n rows). */
static void run(ssm_linear_packed_fn fn, float *out, const float *x, const void *wp,
                const float *bias, int n, int d_in, int d_out)
{
    size_t ldo = (size_t)d_out + 5;
    for (size_t i = 0; i < (size_t)(n + 1) * ldo; ++i)
        out[i] = CANARY;
    fn(out, ldo, x, (size_t)d_in + 3, wp, bias, n, d_in, d_out);
    for (int i = 0; i < n + 1; ++i)
        for (size_t j = (i < n ? (size_t)d_out : 0); j < ldo; ++j)
            assert_true(out[(size_t)i * ldo + j] == CANARY);
}

#endif /* KT_LINEAR_H */
