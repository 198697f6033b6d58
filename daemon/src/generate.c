/* SPDX-License-Identifier: MIT */
/* Generation from a mu-law token model (generate.h). */
#include "generate.h"
#include "ssmd/output_format.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsp/audio_file.h"
#include "dsp/mulaw.h"
#include "dsp/resample.h"
#include "errf.h"

#define GEN_VOCAB 256
#define GEN_SILENCE 128  /* mu-law code of 0.0 (μ = 255, dsp/mulaw.h) */
#define GEN_PROMPT_CHUNK 4096

struct ssmd_generator {
    const ssm_model *model;
    int n;
    ssm_runner *runner;
    ssm_state **states;
    ssm_sampler **samplers;
    int32_t *tokens;   /* {n} previous sample of each stream */
    float *logits;     /* {max(n, GEN_PROMPT_CHUNK), V} */
    int have_logits;   /* logits rows 0..n-1 hold the next distribution (after a prompt) */
    uint64_t resets;
};


int ssmd_generate_check_model(const ssm_model *model, int *sample_rate_hz, char *err, size_t cap)
{
    if (ssm_model_input(model) != SSM_MODEL_INPUT_TOKENS || !(ssm_model_heads(model) & SSM_MODEL_HEAD_LM)) {
        ssmd_errf(err, cap, "generation needs a token model with an lm head (input=tokens, heads=lm), "
                       "e.g. models/mulaw_lm.safetensors; this one has input=%s",
             ssm_model_input(model) == SSM_MODEL_INPUT_TOKENS ? "tokens and no lm head" : "features");
        return -1;
    }
    if (ssm_model_vocab_size(model) != GEN_VOCAB) {
        ssmd_errf(err, cap, "generation needs vocab_size 256 (8-bit mu-law codes), the model has %d",
             ssm_model_vocab_size(model));
        return -1;
    }
    const char *f = ssm_model_meta(model, "frontend.features");
    if (!f || strcmp(f, "mulaw") != 0) {
        ssmd_errf(err, cap, "frontend.features: generation needs \"mulaw\", the model has %s%s%s",
             f ? "\"" : "", f ? f : "none", f ? "\"" : "");
        return -1;
    }
    const char *mu = ssm_model_meta(model, "frontend.mulaw_mu");
    if (mu && strcmp(mu, "255") != 0) {
        ssmd_errf(err, cap, "frontend.mulaw_mu: ssmd decodes mu = 255, the model has %s", mu);
        return -1;
    }
    const char *sr = ssm_model_meta(model, "frontend.sample_rate_hz");
    long rate = 16000;
    if (sr) {
        char *end;
        errno = 0;
        rate = strtol(sr, &end, 10);
        if (errno || *end || rate < 1000 || rate > 384000) {
            ssmd_errf(err, cap, "frontend.sample_rate_hz: \"%s\" is not a rate in [1000, 384000]", sr);
            return -1;
        }
    }
    if (sample_rate_hz) *sample_rate_hz = (int)rate;
    return 0;
}

const ssm_runner *ssmd_generator_runner(const ssmd_generator *g)
{
    return g ? g->runner : NULL;
}

void ssmd_generator_destroy(ssmd_generator *g)
{
    if (!g) return;
    if (g->states)
        for (int i = 0; i < g->n; i++) ssm_state_destroy(g->states[i]);
    if (g->samplers)
        for (int i = 0; i < g->n; i++) ssm_sampler_destroy(g->samplers[i]);
    free(g->states);
    free(g->samplers);
    free(g->tokens);
    free(g->logits);
    ssm_runner_destroy(g->runner);
    free(g);
}

int ssmd_generator_create(const ssm_model *model, int n_streams, const ssm_sample_params *params,
                          uint64_t seed, unsigned runner_flags, ssmd_generator **out, char *err,
                          size_t cap)
{
    *out = NULL;
    if (ssmd_generate_check_model(model, NULL, err, cap) != 0) return -1;
    if (n_streams < 1 || n_streams > 65536) {
        ssmd_errf(err, cap, "generate_streams %d is outside [1, 65536]", n_streams);
        return -1;
    }
    ssm_error se = {0};
    if (ssm_sample_params_check(params, &se) != SSM_OK) {
        ssmd_errf(err, cap, "%s", se.msg);
        return -1;
    }
    ssmd_generator *g = calloc(1, sizeof *g);
    if (!g) goto nomem;
    g->model = model;
    g->n = n_streams;
    size_t rows = n_streams > GEN_PROMPT_CHUNK ? (size_t)n_streams : GEN_PROMPT_CHUNK;
    g->states = calloc((size_t)n_streams, sizeof *g->states);
    g->samplers = calloc((size_t)n_streams, sizeof *g->samplers);
    g->tokens = malloc((size_t)n_streams * sizeof *g->tokens);
    g->logits = malloc(rows * GEN_VOCAB * sizeof *g->logits);
    if (!g->states || !g->samplers || !g->tokens || !g->logits) goto nomem;
    for (int i = 0; i < n_streams; i++) {
        if (ssm_state_create(model, &g->states[i]) != SSM_OK) goto nomem;
        if (ssm_sampler_create(GEN_VOCAB, params, seed + (uint64_t)i, &g->samplers[i], &se) != SSM_OK) {
            ssmd_errf(err, cap, "%s", se.msg);
            ssmd_generator_destroy(g);
            return -1;
        }
        g->tokens[i] = GEN_SILENCE;
    }
    if (ssm_runner_create(model, n_streams, GEN_PROMPT_CHUNK, runner_flags, &g->runner, &se) != SSM_OK) {
        ssmd_errf(err, cap, "%s", se.msg);
        ssmd_generator_destroy(g);
        return -1;
    }
    *out = g;
    return 0;
nomem:
    ssmd_generator_destroy(g);
    ssmd_errf(err, cap, "out of memory for %d generation streams", n_streams);
    return -1;
}

int ssmd_generator_n_streams(const ssmd_generator *g) { return g->n; }
uint64_t ssmd_generator_resets(const ssmd_generator *g) { return g->resets; }

ssm_state *ssmd_generator_state(ssmd_generator *g, int i)
{
    return i >= 0 && i < g->n ? g->states[i] : NULL;
}

int ssmd_generator_set_threads(ssmd_generator *g, int n_threads, char *err, size_t cap)
{
    ssm_error se = {0};
    if (ssm_runner_set_threads(g->runner, n_threads, 16, &se) != SSM_OK) {
        ssmd_errf(err, cap, "threads: %s", se.msg);
        return -1;
    }
    return 0;
}

int ssmd_generator_prompt(ssmd_generator *g, const uint8_t *codes, size_t n,
                          const volatile sig_atomic_t *stop, char *err, size_t cap)
{
    if (n == 0) {
        ssmd_errf(err, cap, "prompt is empty");
        return -1;
    }
    int32_t tok[GEN_PROMPT_CHUNK];
    ssm_outputs o = { .logits = g->logits };
    size_t last_rows = 0;
    for (size_t at = 0; at < n; at += GEN_PROMPT_CHUNK) {
        if (stop && *stop) {
            ssmd_errf(err, cap, "prompt: stopped after %zu of %zu samples (nothing written)", at, n);
            return -2;
        }
        size_t m = n - at < GEN_PROMPT_CHUNK ? n - at : GEN_PROMPT_CHUNK;
        for (size_t i = 0; i < m; i++) tok[i] = codes[at + i];
        int rc = ssm_forward(g->runner, g->states[0], (int)m, NULL, tok, &o, NULL);
        if (rc == SSM_ERR_NONFINITE) g->resets++;
        else if (rc != SSM_OK) {
            ssmd_errf(err, cap, "prompt: model forward failed: %s", ssm_strerror(rc));
            return -1;
        }
        last_rows = m;
    }
    /* the last row predicts the first generated sample of every stream */
    memmove(g->logits, g->logits + (last_rows - 1) * GEN_VOCAB, GEN_VOCAB * sizeof *g->logits);
    for (int i = 1; i < g->n; i++)
        memcpy(g->logits + (size_t)i * GEN_VOCAB, g->logits, GEN_VOCAB * sizeof *g->logits);
    if (g->n > 1) {
        size_t bytes = ssm_state_bytes(g->model);
        void *buf = malloc(bytes);
        if (!buf) {
            ssmd_errf(err, cap, "prompt: out of memory");
            return -1;
        }
        int rc = ssm_state_snapshot(g->states[0], buf, bytes, NULL);
        for (int i = 1; i < g->n && rc == SSM_OK; i++) rc = ssm_state_restore(g->states[i], buf, bytes);
        free(buf);
        if (rc != SSM_OK) {
            ssmd_errf(err, cap, "prompt: copying the state failed: %s", ssm_strerror(rc));
            return -1;
        }
    }
    for (int i = 0; i < g->n; i++) g->tokens[i] = codes[n - 1];
    g->have_logits = 1;
    return 0;
}

int ssmd_generator_step(ssmd_generator *g, uint8_t *codes_out)
{
    if (!g->have_logits) {
        ssm_outputs o = { .logits = g->logits };
        int rc = ssm_step(g->runner, g->states, g->n, NULL, g->tokens, &o, NULL);
        if (rc == SSM_ERR_NONFINITE) g->resets++;
        else if (rc != SSM_OK) return -1;
    }
    g->have_logits = 0;
    for (int i = 0; i < g->n; i++) {
        int32_t t;
        if (ssm_sample(g->samplers[i], g->logits + (size_t)i * GEN_VOCAB, &t) != SSM_OK) g->resets++;
        g->tokens[i] = t;
        codes_out[i] = (uint8_t)t;
    }
    return 0;
}

/* A float option given as text: finite, whole string. */
static int parse_float(const char *key, const char *v, float *out, char *err, size_t cap)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d)) {
        ssmd_errf(err, cap, "%s: expected a number, got '%s'", key, v);
        return -1;
    }
    *out = (float)d;
    return 0;
}

int ssmd_generate_params_from_config(const ssmd_config *cfg, ssm_sample_params *p, char *err, size_t cap)
{
    ssm_sample_params_default(p);
    if (parse_float("temperature", cfg->temperature, &p->temperature, err, cap) ||
        parse_float("top_p", cfg->top_p, &p->top_p, err, cap) ||
        parse_float("min_prob", cfg->min_prob, &p->min_prob, err, cap))
        return -1;
    p->top_k = (int)cfg->top_k;
    ssm_error se = {0};
    if (ssm_sample_params_check(p, &se) != SSM_OK) {
        ssmd_errf(err, cap, "%s", se.msg);
        return -1;
    }
    return 0;
}

/* Resamples x {n} from in_hz to out_hz (whole signal, flushed) into a new
 * buffer *y {*m}.  Returns 0, or -1 with a line in err. */
static int resample_all(const float *x, size_t n, int in_hz, int out_hz, dsp_resample_quality q,
                        float **y, size_t *m, char *err, size_t cap)
{
    dsp_resampler *rs = NULL;
    dsp_error de = {0};
    *y = NULL;
    *m = 0;
    if (dsp_resampler_create(&rs, in_hz, out_hz, 1, q, &de) != DSP_OK) {
        ssmd_errf(err, cap, "prompt: cannot resample %d Hz to %d Hz: %s", in_hz, out_hz, de.msg);
        return -1;
    }
    size_t capn = dsp_resampler_max_out_frames(rs, n) + 8192, at = 0, used = 0, got = 0;
    float *o = malloc(capn * sizeof *o);
    int rc = -1;
    if (!o) {
        ssmd_errf(err, cap, "prompt: out of memory");
        goto done;
    }
    while (used < n) {
        size_t u = 0;
        if (dsp_resampler_process(rs, x + used, n - used, &u, o + at, capn - at, &got) != DSP_OK ||
            (u == 0 && got == 0)) {
            ssmd_errf(err, cap, "prompt: resampling failed");
            goto done;
        }
        used += u;
        at += got;
    }
    do {
        if (dsp_resampler_flush(rs, o + at, capn - at, &got) != DSP_OK) {
            ssmd_errf(err, cap, "prompt: resampling failed");
            goto done;
        }
        at += got;
    } while (got > 0 && at < capn);
    rc = 0;
done:
    dsp_resampler_destroy(rs);
    if (rc) free(o);
    else {
        *y = o;
        *m = at;
    }
    return rc;
}

/* Reads the whole prompt file, downmixed to mono, resampled to rate_hz
 * (libsoxr at quality q) and mu-law encoded. */
static int read_prompt(const char *path, int rate_hz, dsp_resample_quality q, uint8_t **codes, size_t *n,
                       char *err, size_t cap)
{
    dsp_audio_reader *r = NULL;
    dsp_error de = {0};
    *codes = NULL;
    *n = 0;
    if (dsp_audio_reader_open(&r, path, NULL, &de) != DSP_OK) {
        ssmd_errf(err, cap, "prompt: %s", de.msg);
        return -1;
    }
    const dsp_audio_info *in = dsp_audio_reader_info(r);
    const int ch = in->channels, in_hz = in->sample_rate_hz;
    size_t capn = 0, len = 0;
    float *mono = NULL, *res = NULL;
    float *buf = malloc((size_t)4096 * (size_t)ch * sizeof *buf);
    int rc = -1;
    if (!buf) {
        ssmd_errf(err, cap, "prompt: out of memory");
        goto done;
    }
    for (;;) {
        size_t got = 0;
        if (dsp_audio_reader_read(r, buf, 4096, &got, &de) != DSP_OK) {
            ssmd_errf(err, cap, "prompt: %s", de.msg);
            goto done;
        }
        if (got == 0) break;
        if (len + got > (size_t)in_hz * 3600) {
            ssmd_errf(err, cap, "prompt: %s is longer than one hour", path);
            goto done;
        }
        if (len + got > capn) {
            size_t nc = capn ? capn * 2 : 65536;
            while (nc < len + got) nc *= 2;
            float *t = realloc(mono, nc * sizeof *t);
            if (!t) {
                ssmd_errf(err, cap, "prompt: out of memory");
                goto done;
            }
            mono = t;
            capn = nc;
        }
        for (size_t i = 0; i < got; i++) {
            float s = 0;
            for (int k = 0; k < ch; k++) s += buf[i * (size_t)ch + (size_t)k];
            mono[len + i] = s / (float)ch;
        }
        len += got;
    }
    if (len == 0) {
        ssmd_errf(err, cap, "prompt: %s holds no samples", path);
        goto done;
    }
    const float *x = mono;
    if (in_hz != rate_hz) {
        if (resample_all(mono, len, in_hz, rate_hz, q, &res, &len, err, cap) != 0) goto done;
        x = res;
        if (len == 0) {
            ssmd_errf(err, cap, "prompt: %s is too short to resample", path);
            goto done;
        }
    }
    *codes = malloc(len);
    if (!*codes) {
        ssmd_errf(err, cap, "prompt: out of memory");
        goto done;
    }
    dsp_mulaw_encode(*codes, x, len);
    *n = len;
    rc = 0;
done:
    free(buf);
    free(mono);
    free(res);
    dsp_audio_reader_close(r);
    return rc;
}

/* ---- the generation job ---------------------------------------------- */

struct ssmd_genjob {
    ssmd_generator *g;
    dsp_audio_writer *w;
    int n, rate_hz;
    size_t block;        /* samples per stream of a full block */
    uint64_t total;      /* samples per stream to generate */
    uint64_t released;   /* samples per stream handed out (ssmd_genjob_next) */
    size_t fill;         /* samples per stream of the pending block generated so far */
    uint8_t *codes;      /* {n} */
    float *x;            /* {block, n} the pending block, interleaved */
};

int ssmd_generate_check_config(const ssmd_config *cfg, char *err, size_t cap)
{
    if (!cfg->output[0] && !cfg->generate_publish) {
        ssmd_errf(err, cap, "generate_s: generation needs --output FILE and/or --generate-publish");
        return -1;
    }
    if (strcmp(cfg->input, "none") != 0) {
        ssmd_errf(err, cap, "generate_s: generation takes no --input ('%s'); use --prompt FILE to "
                            "start from audio", cfg->input);
        return -1;
    }
    if (cfg->generate_publish && strcmp(cfg->serve, "no") == 0) {
        ssmd_errf(err, cap, "generate_publish: needs the sockets; --serve no contradicts it");
        return -1;
    }
    return 0;
}

void ssmd_genjob_destroy(ssmd_genjob *j)
{
    if (!j) return;
    dsp_audio_writer_abort(j->w);
    ssmd_generator_destroy(j->g);
    free(j->codes);
    free(j->x);
    free(j);
}

int ssmd_genjob_open(const ssmd_config *cfg, const ssm_model *model, const char *model_path,
                     size_t block_samples, const volatile sig_atomic_t *stop, ssmd_genjob **out,
                     char *err, size_t cap)
{
    *out = NULL;
    ssm_sample_params sp;
    int rate = 16000, nst = (int)cfg->generate_streams;
    if (ssmd_generate_check_config(cfg, err, cap) != 0 ||
        ssmd_generate_params_from_config(cfg, &sp, err, cap) != 0)
        return 2;
    char why[900];
    if (ssmd_generate_check_model(model, &rate, why, sizeof why) != 0) {
        ssmd_errf(err, cap, "%s: %s", model_path, why);
        return 2;
    }
    if (block_samples < 1 || block_samples > (size_t)1 << 20) {
        ssmd_errf(err, cap, "generation block of %zu samples is outside [1, 2^20]", block_samples);
        return 2;
    }
    dsp_resample_quality q = strcmp(cfg->resample_quality, "fast") == 0     ? DSP_RESAMPLE_FASTEST
                             : strcmp(cfg->resample_quality, "medium") == 0 ? DSP_RESAMPLE_MEDIUM
                                                                            : DSP_RESAMPLE_BEST;
    uint8_t *prompt = NULL;
    size_t n_prompt = 0;
    if (cfg->prompt[0] && read_prompt(cfg->prompt, rate, q, &prompt, &n_prompt, err, cap) != 0) return 2;
    ssmd_genjob *j = calloc(1, sizeof *j);
    int rc = 1;
    if (!j) {
        ssmd_errf(err, cap, "out of memory");
        goto fail;
    }
    j->n = nst;
    j->rate_hz = rate;
    j->block = block_samples;
    j->total = (uint64_t)cfg->generate_s * (uint64_t)rate;
    j->codes = malloc((size_t)nst);
    j->x = malloc(block_samples * (size_t)nst * sizeof *j->x);
    if (!j->codes || !j->x) {
        ssmd_errf(err, cap, "out of memory for %d generation streams", nst);
        goto fail;
    }
    unsigned rflags = 0;
    int wrc = ssmd_config_runner_flags(cfg, model, &rflags, err, cap);
    if (wrc < 0) { /* a bad option, as in the processing modes: exit 2 */
        rc = 2;
        goto fail;
    }
    if (wrc > 0) fprintf(stderr, "ssmd: %s\n", err);
    if (ssmd_generator_create(model, nst, &sp, (uint64_t)cfg->seed, rflags, &j->g, err, cap) != 0) goto fail;
    if (cfg->threads > 1 && ssmd_generator_set_threads(j->g, (int)cfg->threads, err, cap) != 0) goto fail;
    if (prompt) {
        int prc = ssmd_generator_prompt(j->g, prompt, n_prompt, stop, err, cap);
        if (prc == -2)
            rc = -1; /* stopped by a signal: not a failure */
        if (prc != 0)
            goto fail;
    }
    free(prompt);
    *out = j;
    return 0;
fail:
    free(prompt);
    ssmd_genjob_destroy(j);
    return rc;
}

int ssmd_genjob_open_output(ssmd_genjob *j, const ssmd_config *cfg, char *err, size_t cap)
{
    if (!cfg->output[0])
        return 0;
    struct stat p_st, o_st;
    if (cfg->prompt[0] && stat(cfg->prompt, &p_st) == 0 && stat(cfg->output, &o_st) == 0 &&
        p_st.st_dev == o_st.st_dev && p_st.st_ino == o_st.st_ino) {
        ssmd_errf(err, cap, "output: %s is the prompt file %s; writing it would destroy the prompt",
                  cfg->output, cfg->prompt);
        return 2;
    }
    ssmd_output_format of = SSMD_OUTPUT_FORMAT_DEFAULT;
    if (cfg->output_format && cfg->output_format[0] && ssmd_output_format_parse(cfg->output_format, &of) != 0) {
        ssmd_errf(err, cap, "--output-format: expected one of " SSMD_OUTPUT_FORMAT_CHOICES ", got '%s'",
                  cfg->output_format);
        return 2;
    }
    dsp_audio_write_format fmt = { .sample_rate_hz = j->rate_hz, .channels = j->n,
                                   .subtype = ssmd_output_format_subtype(of, dsp_audio_container_from_path(cfg->output)) };
    dsp_error de = {0};
    if (dsp_audio_writer_open(&j->w, cfg->output, &fmt, &de) != DSP_OK) {
        ssmd_errf(err, cap, "%s", de.msg);
        return 2;
    }
    return 0;
}

int ssmd_genjob_n_streams(const ssmd_genjob *j) { return j->n; }
int ssmd_genjob_rate_hz(const ssmd_genjob *j) { return j->rate_hz; }
size_t ssmd_genjob_block_samples(const ssmd_genjob *j) { return j->block; }
uint64_t ssmd_genjob_released(const ssmd_genjob *j) { return j->released; }
bool ssmd_genjob_finished(const ssmd_genjob *j) { return j->released >= j->total; }
ssmd_generator *ssmd_genjob_generator(ssmd_genjob *j) { return j->g; }

/* Samples per stream of the pending block: a full block, or the tail. */
static size_t block_len(const ssmd_genjob *j)
{
    uint64_t left = j->total - j->released;
    return left < j->block ? (size_t)left : j->block;
}

int ssmd_genjob_step(ssmd_genjob *j, int max_steps)
{
    if (ssmd_genjob_finished(j)) return 0;
    size_t want = block_len(j);
    int done = 0;
    while (j->fill < want && done < max_steps) {
        if (ssmd_generator_step(j->g, j->codes) != 0) return -1;
        dsp_mulaw_decode(j->x + j->fill * (size_t)j->n, j->codes, (size_t)j->n);
        j->fill++;
        done++;
    }
    return done;
}

size_t ssmd_genjob_block(const ssmd_genjob *j, const float **x)
{
    if (ssmd_genjob_finished(j) || j->fill < block_len(j)) return 0;
    if (x) *x = j->x;
    return j->fill;
}

int ssmd_genjob_next(ssmd_genjob *j, char *err, size_t cap)
{
    size_t m = ssmd_genjob_block(j, NULL);
    if (m == 0) return 0;
    dsp_error de = {0};
    if (j->w && dsp_audio_writer_write(j->w, j->x, m, &de) != DSP_OK) {
        ssmd_errf(err, cap, "%s", de.msg);
        return -1;
    }
    j->released += m;
    j->fill = 0;
    return 0;
}

int ssmd_genjob_close(ssmd_genjob *j, char *err, size_t cap)
{
    dsp_error de = {0};
    dsp_audio_writer *w = j->w;
    j->w = NULL;
    if (w && dsp_audio_writer_close(w, &de) != DSP_OK) {
        ssmd_errf(err, cap, "%s", de.msg);
        return -1;
    }
    return 0;
}
