/* SPDX-License-Identifier: MIT */
/* Test helper for tests/ref/mamba_ref.py: loads a model, reads raw inputs,
 * runs them through ssm_step (a batch of B streams) or ssm_forward (one
 * stream in chunks) and writes the raw outputs.
 *
 *   model_run MODEL step    B     T IN OUT [blas] [ref]
 *   model_run MODEL forward CHUNK T IN OUT [ref]
 * (blas: SSM_RUNNER_BLAS_STEP; ref: SSM_RUNNER_REFERENCE; f16:
 * SSM_RUNNER_F16_WEIGHTS; avx2 / scalar: SSM_RUNNER_ISA_AVX2 / _SCALAR;
 * ssd: SSM_RUNNER_SSD_FORWARD; snap=K: before frame K, every state is
 * snapshotted, destroyed, and a new state restored from the snapshot)
 *
 * IN: int32 tokens {T, B} or float32 features {T, B, n_features} (B = 1 for
 * forward).  OUT: float32 {T, B, n_out}, each row the heads present in the
 * order embedding {d_model}, mask {n_mask}, vad {1}, logits {vocab_size}.
 * Prints one line: n_out, resets and non-finite inputs counted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssm/model.h"

static int fail(const char *msg)
{
    fprintf(stderr, "model_run: %s\n", msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 7)
        return fail("usage: model_run MODEL step|forward B|CHUNK T IN OUT [blas]");
    const char *mode = argv[2];
    int arg = atoi(argv[3]), T = atoi(argv[4]);
    int is_step = strcmp(mode, "step") == 0;
    if ((!is_step && strcmp(mode, "forward") != 0) || arg < 1 || T < 1)
        return fail("bad mode, B/CHUNK or T");
    ssm_error err = {0};
    ssm_model *m = NULL;
    if (ssm_model_load(argv[1], NULL, &m, &err) < 0) {
        fprintf(stderr, "model_run: %s\n", err.msg);
        return 1;
    }
    int B = is_step ? arg : 1;
    int chunk = is_step ? 1 : arg;
    int tokens_in = ssm_model_input(m) == SSM_MODEL_INPUT_TOKENS;
    size_t n_in = tokens_in ? 1 : (size_t)ssm_model_n_features(m);
    unsigned heads = ssm_model_heads(m);
    int dm = ssm_model_d_model(m), nm = ssm_model_n_mask(m), nv = ssm_model_vocab_size(m);
    int has_mask = (heads & SSM_MODEL_HEAD_MASK) != 0, has_vad = (heads & SSM_MODEL_HEAD_VAD) != 0;
    int has_lm = (heads & SSM_MODEL_HEAD_LM) != 0;
    size_t n_out = (size_t)dm + (has_mask ? nm : 0) + (has_vad ? 1 : 0) + (has_lm ? nv : 0);
    size_t rows = (size_t)T * B;

    void *in = malloc(rows * n_in * 4);
    float *res = malloc(rows * n_out * 4);
    FILE *f = fopen(argv[5], "rb");
    if (!in || !res || !f || fread(in, 4, rows * n_in, f) != rows * n_in)
        return fail("cannot read the input file");
    fclose(f);

    int rb = is_step ? B : chunk;
    float *emb = malloc((size_t)rb * dm * 4), *mask = malloc((size_t)rb * (nm + 1) * 4);
    float *vad = malloc((size_t)rb * 4), *logits = malloc((size_t)rb * (nv + 1) * 4);
    ssm_outputs out = {has_mask ? mask : NULL, has_vad ? vad : NULL, has_lm ? logits : NULL, emb};
    ssm_state **st = calloc((size_t)B, sizeof *st);
    unsigned *flags = calloc((size_t)B, sizeof *flags);
    ssm_runner *rn = NULL;
    unsigned rflags = 0;
    for (int i = 7; i < argc; ++i)
        rflags |= strcmp(argv[i], "blas") == 0 ? SSM_RUNNER_BLAS_STEP
                  : strcmp(argv[i], "ref") == 0 ? SSM_RUNNER_REFERENCE
                  : strcmp(argv[i], "f16") == 0 ? SSM_RUNNER_F16_WEIGHTS
                  : strcmp(argv[i], "avx2") == 0 ? SSM_RUNNER_ISA_AVX2
                  : strcmp(argv[i], "scalar") == 0 ? SSM_RUNNER_ISA_SCALAR
                  : strcmp(argv[i], "ssd") == 0 ? SSM_RUNNER_SSD_FORWARD : 0u;
    if (ssm_runner_create(m, B, chunk, rflags, &rn, &err) < 0)
        return fail(err.msg);
    for (int b = 0; b < B; ++b)
        if (ssm_state_create(m, &st[b]) < 0)
            return fail("state");
    int resets = 0, snap_at = -1;
    for (int i = 7; i < argc; ++i)
        if (strncmp(argv[i], "snap=", 5) == 0)
            snap_at = atoi(argv[i] + 5);
    for (int t = 0; t < T;) {
        if (t == snap_at) { /* forward: K a multiple of CHUNK */
            size_t nb = ssm_state_bytes(m);
            void *buf = malloc(nb);
            for (int b = 0; b < B; ++b) {
                size_t wr = 0;
                if (!buf || ssm_state_snapshot(st[b], buf, nb, &wr) < 0 || wr != nb)
                    return fail("snapshot");
                ssm_state_destroy(st[b]);
                if (ssm_state_create(m, &st[b]) < 0 || ssm_state_restore(st[b], buf, nb) < 0)
                    return fail("restore");
            }
            free(buf);
            snap_at = -1;
        }
        int n = is_step ? 1 : (T - t < chunk ? T - t : chunk);
        const float *fin = tokens_in ? NULL : (const float *)in + (size_t)t * B * n_in;
        const int32_t *tin = tokens_in ? (const int32_t *)in + (size_t)t * B : NULL;
        int rc = is_step ? ssm_step(rn, st, B, fin, tin, &out, flags)
                         : ssm_forward(rn, st[0], n, fin, tin, &out, flags);
        if (rc == SSM_ERR_NONFINITE)
            ++resets;
        else if (rc < 0) {
            fprintf(stderr, "model_run: step %d: %s\n", t, ssm_strerror(rc));
            return 1;
        }
        int nrows = is_step ? B : n;
        for (int i = 0; i < nrows; ++i) {
            float *o = res + ((size_t)t * B + i) * n_out;
            memcpy(o, emb + (size_t)i * dm, (size_t)dm * 4);
            o += dm;
            if (has_mask) {
                memcpy(o, mask + (size_t)i * nm, (size_t)nm * 4);
                o += nm;
            }
            if (has_vad)
                *o++ = vad[i];
            if (has_lm)
                memcpy(o, logits + (size_t)i * nv, (size_t)nv * 4);
        }
        t += n;
    }
    ssm_state_stats ss;
    ssm_state_stats_get(st[0], &ss);
    f = fopen(argv[6], "wb");
    if (!f || fwrite(res, 4, rows * n_out, f) != rows * n_out || fclose(f) != 0)
        return fail("cannot write the output file");
    printf("n_out=%zu resets=%d nonfinite_inputs=%llu frames=%llu state_bytes=%zu\n", n_out, resets,
           (unsigned long long)ss.n_nonfinite_inputs, (unsigned long long)ss.n_frames,
           ssm_state_bytes(m));
    for (int b = 0; b < B; ++b)
        ssm_state_destroy(st[b]);
    ssm_runner_destroy(rn);
    ssm_model_free(m);
    free(in); free(res); free(emb); free(mask); free(vad); free(logits); free(st); free(flags);
    return 0;
}
