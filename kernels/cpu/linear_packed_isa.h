/* SPDX-License-Identifier: MIT */
/* Instantiates linear_packed_body.h for both weight dtypes of one ISA:
 * ssm_linear_packed_f32_<LP_ISA> and ssm_linear_packed_f16_<LP_ISA>.  The
 * includer defines LP_ISA and the ISA's primitives listed in
 * linear_packed_body.h, plus LP_LOAD_F16(p) (W halves from p as floats,
 * exact); they are #undef'd here at the end.  Internal: no include guard on
 * purpose. */

#define LP_ICAT2(a, b) a##_##b
#define LP_ICAT(a, b) LP_ICAT2(a, b)

#define LP_SUFFIX LP_ICAT(f32, LP_ISA)
#define LP_LOAD_W(w, idx) LP_LOADU((const float *)(w) + (idx))
#define LP_ELEM 4
#include "linear_packed_body.h"

#define LP_SUFFIX LP_ICAT(f16, LP_ISA)
#define LP_LOAD_W(w, idx) LP_LOAD_F16((const uint16_t *)(w) + (idx))
#define LP_ELEM 2
#include "linear_packed_body.h"

#undef LP_ICAT2
#undef LP_ICAT
#undef LP_ISA
#undef LP_LOAD_F16
#undef LP_TARGET
#undef LP_V
#undef LP_W
#undef LP_ZERO
#undef LP_SET1
#undef LP_LOADU
#undef LP_STOREU
#undef LP_FMA
#undef LP_ADD
#undef LP_MASK
#undef LP_MASK_N
#undef LP_MASKZ_LOAD
#undef LP_MASK_STORE
#undef LP_MR
#undef LP_NV
#undef LP_NV1
