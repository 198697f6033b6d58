/* SPDX-License-Identifier: MIT */
/* One body of the element-wise row kernels of ssm_kernels_packed.c
 * (softplus with bias, y ⊙ SiLU(z), sigmoid in place), included once per
 * ISA with its primitives, like linear_packed_body.h: full vectors, then
 * the tail through a lane mask.  Internal: no include guard on purpose.
 *
 * The includer defines E_SUFFIX (avx512 gives softplus_avx512, …),
 * E_TARGET, E_V, E_W, E_MASK, E_TAIL(n) (lanes 0 … n−1, 1 ≤ n < E_W),
 * E_LOADU(p), E_STOREU(p, v), E_MASKZ_LOAD(m, p), E_MASK_STORE(p, m, v),
 * E_SET1(f), E_ADD, E_MUL, E_DIV, E_NEG(v) (sign flipped), E_EXP(v) (the
 * ISA's vexp_fma), E_SOFTPLUS(v) and E_SILU(v); this file #undef's them all
 * at its end. */

#define E_CAT2(a, b) a##b
#define E_CAT(a, b) E_CAT2(a, b)
#define E_NAME(prefix) E_CAT(prefix, E_SUFFIX)

/* out = softplus(x + bias) (bias may be NULL), row by row */
__attribute__((target(E_TARGET))) static void
E_NAME(softplus_)(float *out, size_t ld_out, const float *x, size_t ld_x, const float *bias,
                  int n_rows, int dim)
{
    for (int i = 0; i < n_rows; ++i) {
        const float *xi = x + (size_t)i * ld_x;
        float *oi = out + (size_t)i * ld_out;
        int k = 0;
        for (; k + E_W <= dim; k += E_W) {
            E_V v = E_LOADU(xi + k);
            if (bias)
                v = E_ADD(v, E_LOADU(bias + k));
            E_STOREU(oi + k, E_SOFTPLUS(v));
        }
        if (k < dim) {
            E_MASK m = E_TAIL(dim - k);
            E_V v = E_MASKZ_LOAD(m, xi + k);
            if (bias)
                v = E_ADD(v, E_MASKZ_LOAD(m, bias + k));
            E_MASK_STORE(oi + k, m, E_SOFTPLUS(v));
        }
    }
}

/* y ← y ⊙ SiLU(z), row by row */
__attribute__((target(E_TARGET))) static void
E_NAME(gate_silu_)(float *y, size_t ld_y, const float *z, size_t ld_z, int n_rows, int dim)
{
    for (int i = 0; i < n_rows; ++i) {
        float *yi = y + (size_t)i * ld_y;
        const float *zi = z + (size_t)i * ld_z;
        int k = 0;
        for (; k + E_W <= dim; k += E_W)
            E_STOREU(yi + k, E_MUL(E_LOADU(yi + k), E_SILU(E_LOADU(zi + k))));
        if (k < dim) {
            E_MASK m = E_TAIL(dim - k);
            E_V g = E_SILU(E_MASKZ_LOAD(m, zi + k));
            E_MASK_STORE(yi + k, m, E_MUL(E_MASKZ_LOAD(m, yi + k), g));
        }
    }
}

/* 1 / (1 + exp(−v)) in place */
__attribute__((target(E_TARGET))) static void
E_NAME(sigmoid_)(float *v, size_t ld, int n_rows, int dim)
{
    const E_V one = E_SET1(1.0f);
    for (int i = 0; i < n_rows; ++i) {
        float *vi = v + (size_t)i * ld;
        int k = 0;
        for (; k + E_W <= dim; k += E_W) {
            E_V e = E_EXP(E_NEG(E_LOADU(vi + k)));
            E_STOREU(vi + k, E_DIV(one, E_ADD(one, e)));
        }
        if (k < dim) {
            E_MASK m = E_TAIL(dim - k);
            E_V e = E_EXP(E_NEG(E_MASKZ_LOAD(m, vi + k)));
            E_MASK_STORE(vi + k, m, E_DIV(one, E_ADD(one, e)));
        }
    }
}

#undef E_CAT2
#undef E_CAT
#undef E_NAME
#undef E_SUFFIX
#undef E_TARGET
#undef E_V
#undef E_W
#undef E_MASK
#undef E_TAIL
#undef E_LOADU
#undef E_STOREU
#undef E_MASKZ_LOAD
#undef E_MASK_STORE
#undef E_SET1
#undef E_ADD
#undef E_MUL
#undef E_DIV
#undef E_NEG
#undef E_EXP
#undef E_SOFTPLUS
#undef E_SILU
