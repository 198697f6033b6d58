/* SPDX-License-Identifier: MIT */
/* Backend selection (ssm/model.h: SSM_BACKEND_*), on any machine: the CPU
 * backend always; CUDA loads when a device is usable and otherwise fail with
 * a line saying why; AUTO falls back to the CPU and says why; flags that need
 * CUDA are refused on the CPU.  Which branch ran is printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ssm/model.h"

static const char *g_model;

static void test_cpu_and_unknown(void **state)
{
    (void)state;
    ssm_error why = {0};
    assert_int_equal(ssm_backend_available(SSM_BACKEND_CPU, 0, &why), 1);
    assert_int_equal(ssm_backend_available(9, 0, &why), 0);
    assert_non_null(strstr(why.msg, "unknown backend 9"));
    ssm_model *m = NULL;
    ssm_model_options o = {.backend = SSM_BACKEND_CPU};
    assert_int_equal(ssm_model_load(g_model, &o, &m, NULL), SSM_OK);
    assert_string_equal(ssm_model_backend(m), "cpu");
    assert_string_equal(ssm_model_backend_note(m), "");
    ssm_runner *rn = NULL;
    ssm_error err = {0};
    assert_int_equal(ssm_runner_create(m, 1, 1, SSM_RUNNER_BF16_WEIGHTS, &rn, &err), SSM_ERR_INVALID);
    assert_non_null(strstr(err.msg, "need the cuda backend"));
    assert_int_equal(ssm_runner_create(m, 1, 1, SSM_RUNNER_NO_GRAPH, &rn, &err), SSM_ERR_INVALID);
    assert_int_equal(ssm_runner_create(m, 1, 1, 0, &rn, &err), SSM_OK);
    assert_string_not_equal(ssm_runner_isa(rn), "cuda");
    ssm_runner_destroy(rn);
    ssm_model_free(m);
    o.backend = 7;
    assert_int_equal(ssm_model_load(g_model, &o, &m, &err), SSM_ERR_BACKEND);
    assert_null(m);
    assert_non_null(strstr(err.msg, "unknown backend 7"));
}

static void test_cuda_and_auto(void **state)
{
    (void)state;
    ssm_error why = {0}, err = {0};
    int have = ssm_backend_available(SSM_BACKEND_CUDA, 0, &why);
    ssm_model *m = NULL;
    ssm_model_options o = {.backend = SSM_BACKEND_CUDA};
    int rc = ssm_model_load(g_model, &o, &m, &err);
    if (have) {
        printf("cuda available: load -> %s\n", m ? ssm_model_backend(m) : err.msg);
        assert_int_equal(rc, SSM_OK);
        assert_string_equal(ssm_model_backend(m), "cuda");
        ssm_model_free(m);
    } else {
        printf("no cuda here (%s): load -> %s\n", why.msg, err.msg);
        assert_int_equal(rc, SSM_ERR_BACKEND);
        assert_null(m);
        assert_non_null(strstr(err.msg, "backend cuda: "));
        assert_non_null(strstr(err.msg, why.msg)); /* the same reason, one line */
        assert_null(strchr(err.msg, '\n'));
    }
    o.backend = SSM_BACKEND_AUTO;
    assert_int_equal(ssm_model_load(g_model, &o, &m, &err), SSM_OK);
    printf("auto -> %s (%s)\n", ssm_model_backend(m), ssm_model_backend_note(m));
    assert_string_equal(ssm_model_backend(m), have ? "cuda" : "cpu");
    assert_non_null(strstr(ssm_model_backend_note(m), have ? "cuda: " : "running on the cpu"));
    /* an AUTO model that fell back steps like any CPU model */
    ssm_runner *rn = NULL;
    ssm_state *st = NULL;
    assert_int_equal(ssm_runner_create(m, 1, 1, 0, &rn, NULL), SSM_OK);
    assert_int_equal(ssm_state_create(m, &st), SSM_OK);
    int nf = ssm_model_n_features(m);
    float f[512] = {0};
    assert_true(nf <= 512);
    float vad = -1;
    ssm_outputs out = {.vad = (ssm_model_heads(m) & SSM_MODEL_HEAD_VAD) ? &vad : NULL};
    assert_int_equal(ssm_step(rn, &st, 1, f, NULL, &out, NULL), SSM_OK);
    if (out.vad)
        assert_true(vad > 0 && vad < 1);
    ssm_state_destroy(st);
    ssm_runner_destroy(rn);
    ssm_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_backend MODEL\n");
        return 2;
    }
    g_model = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_and_unknown),
        cmocka_unit_test(test_cuda_and_auto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
