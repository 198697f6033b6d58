/* Generation from a mu-law token model (generate.h). */
#include "generate.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "dsp/audio_file.h"
#include "dsp/mulaw.h"
#include "dsp/resample.h"
#include "ssmd/protocol.h"
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
                          uint64_t seed, ssmd_generator **out, char *err, size_t cap)
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
    if (ssm_runner_create(model, n_streams, GEN_PROMPT_CHUNK, 0, &g->runner, &se) != SSM_OK) {
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

int ssmd_generator_prompt(ssmd_generator *g, const uint8_t *codes, size_t n, char *err, size_t cap)
{
    if (n == 0) {
        ssmd_errf(err, cap, "prompt is empty");
        return -1;
    }
    int32_t tok[GEN_PROMPT_CHUNK];
    ssm_outputs o = { .logits = g->logits };
    size_t last_rows = 0;
    for (size_t at = 0; at < n; at += GEN_PROMPT_CHUNK) {
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
 * (libsamplerate at quality q) and mu-law encoded. */
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

/* ---- publishing (generate_publish) ------------------------------------- */

typedef struct gen_pub {
    void *ctx, *sock;
    uint64_t epoch, *seq;   /* seq {n} per stream */
    uint64_t published, dropped;
} gen_pub;

/* Generation binds without CURVE, so only endpoints no other host can reach. */
static int endpoint_local(const char *ep)
{
    return strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0 ||
           strncmp(ep, "tcp://127.0.0.1:", 16) == 0 || strncmp(ep, "tcp://localhost:", 16) == 0 ||
           strncmp(ep, "tcp://[::1]:", 12) == 0;
}

static void pub_close(gen_pub *p)
{
    if (p->sock) zmq_close(p->sock);
    if (p->ctx) zmq_ctx_term(p->ctx);
    free(p->seq);
    memset(p, 0, sizeof *p);
}

static int pub_open(gen_pub *p, const ssmd_config *cfg, int n, char *err, size_t cap)
{
    memset(p, 0, sizeof *p);
    if (!endpoint_local(cfg->pub)) {
        ssmd_errf(err, cap, "generate_publish: pub endpoint '%s' is not loopback or ipc (generation "
                       "publishes without CURVE)", cfg->pub);
        return -1;
    }
    int hwm = (int)cfg->pub_hwm, linger = 1000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->epoch = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    p->seq = calloc((size_t)n, sizeof *p->seq);
    p->ctx = zmq_ctx_new();
    p->sock = p->ctx ? zmq_socket(p->ctx, ZMQ_XPUB) : NULL; /* XPUB: sees subscriptions */
    if (!p->seq || !p->sock || zmq_setsockopt(p->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 || zmq_bind(p->sock, cfg->pub) != 0) {
        ssmd_errf(err, cap, "generate_publish: cannot bind %s: %s", cfg->pub, zmq_strerror(zmq_errno()));
        pub_close(p);
        return -1;
    }
    return 0;
}

/* Waits until n subscriptions have arrived (wait_subscribers), or *stop. */
static void pub_wait(gen_pub *p, long n, volatile sig_atomic_t *stop)
{
    long seen = 0;
    while (seen < n && !(stop && *stop)) {
        zmq_pollitem_t it = { p->sock, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 100) <= 0) continue;
        uint8_t b[256];
        int r = zmq_recv(p->sock, b, sizeof b, ZMQ_DONTWAIT);
        if (r >= 1 && b[0] == 1) seen++;
    }
}

/* Publishes m samples of every stream (x {m, n} interleaved) as topic
 * gen<i>/audio/, float32 {m, 1}. */
static void pub_block(gen_pub *p, const float *x, size_t m, int n, int rate, uint64_t first, uint32_t flags,
                      float *scratch)
{
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < m; k++) scratch[k] = x[k * (size_t)n + (size_t)i];
        char name[32], topic[SSMD_STREAM_NAME_MAX + 16];
        snprintf(name, sizeof name, "gen%d", i);
        ssmd_topic_format(topic, sizeof topic, name, SSMD_KIND_AUDIO);
        ssmd_header h = { .kind = SSMD_KIND_AUDIO, .dtype = SSMD_DTYPE_F32, .flags = flags,
                          .sample_rate_hz = (uint32_t)rate, .rows = (uint32_t)m, .cols = 1,
                          .hop_samples = 1, .seq = p->seq[i]++, .first_sample = first,
                          .epoch = p->epoch };
        uint8_t hb[SSMD_HEADER_BYTES];
        ssmd_header_encode(hb, &h);
        if (zmq_send(p->sock, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_send(p->sock, hb, sizeof hb, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_send(p->sock, scratch, m * sizeof *scratch, ZMQ_DONTWAIT) < 0)
            p->dropped++;
        else
            p->published++;
    }
}

/* Sleeps until t0 + seconds (CLOCK_MONOTONIC) or *stop. */
static void pace_until(const struct timespec *t0, double seconds, volatile sig_atomic_t *stop)
{
    for (;;) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        double el = (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
        double wait = seconds - el;
        if (wait <= 0 || (stop && *stop)) return;
        if (wait > 0.05) wait = 0.05;
        struct timespec d = { 0, (long)(wait * 1e9) };
        nanosleep(&d, NULL);
    }
}

int ssmd_generate_run(const ssmd_config *cfg, const char *model_path, volatile sig_atomic_t *stop)
{
    char err[1024];
    ssm_sample_params sp;
    if (ssmd_generate_params_from_config(cfg, &sp, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        return 2;
    }
    if (!cfg->output[0] && !cfg->generate_publish) {
        fprintf(stderr, "ssmd: generate_s: generation needs --output FILE and/or --generate-publish\n");
        return 2;
    }
    if (strcmp(cfg->input, "none") != 0) {
        fprintf(stderr, "ssmd: generate_s: generation takes no --input ('%s'); use --prompt FILE to "
                        "start from audio\n", cfg->input);
        return 2;
    }
    ssm_model *model = NULL;
    ssm_error se = {0};
    ssm_model_options mo;
    ssmd_config_model_options(cfg, &mo);
    if (ssm_model_load(model_path, &mo, &model, &se) != SSM_OK) {
        fprintf(stderr, "ssmd: %s\n", se.msg);
        return 2;
    }
    if (ssm_model_backend_note(model)[0])
        fprintf(stderr, "ssmd: backend %s: %s\n", ssm_model_backend(model),
                ssm_model_backend_note(model));
    int rate = 16000, rc = 1, nst = (int)cfg->generate_streams;
    ssmd_generator *g = NULL;
    uint8_t *prompt = NULL, *codes = NULL;
    float *x = NULL;
    size_t n_prompt = 0;
    dsp_audio_writer *w = NULL;
    gen_pub pub = {0};
    float *scratch = NULL;
    if (ssmd_generate_check_model(model, &rate, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s: %s\n", model_path, err);
        rc = 2;
        goto out;
    }
    dsp_resample_quality q = strcmp(cfg->resample_quality, "fast") == 0     ? DSP_RESAMPLE_FASTEST
                             : strcmp(cfg->resample_quality, "medium") == 0 ? DSP_RESAMPLE_MEDIUM
                                                                            : DSP_RESAMPLE_BEST;
    if (cfg->prompt[0] && read_prompt(cfg->prompt, rate, q, &prompt, &n_prompt, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        rc = 2;
        goto out;
    }
    if (ssmd_generator_create(model, nst, &sp, (uint64_t)cfg->seed, &g, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        goto out;
    }
    if (prompt && ssmd_generator_prompt(g, prompt, n_prompt, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        goto out;
    }
    /* 20 ms blocks when publishing (paced at real time), larger for files */
    const size_t BLOCK = cfg->generate_publish ? (size_t)rate / 50 : 1024;
    codes = malloc((size_t)nst);
    x = malloc(BLOCK * (size_t)nst * sizeof *x);
    scratch = malloc(BLOCK * sizeof *scratch);
    if (!codes || !x || !scratch) {
        fprintf(stderr, "ssmd: out of memory\n");
        goto out;
    }
    dsp_audio_write_format fmt = { .sample_rate_hz = rate, .channels = nst };
    dsp_error de = {0};
    if (cfg->output[0] && dsp_audio_writer_open(&w, cfg->output, &fmt, &de) != DSP_OK) {
        fprintf(stderr, "ssmd: %s\n", de.msg);
        rc = 2;
        goto out;
    }
    if (cfg->generate_publish && pub_open(&pub, cfg, nst, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s\n", err);
        rc = 2;
        goto out;
    }
    if (pub.sock && cfg->wait_subscribers > 0) {
        fprintf(stderr, "ssmd: waiting for %ld subscription%s on %s\n", cfg->wait_subscribers,
                cfg->wait_subscribers == 1 ? "" : "s", cfg->pub);
        pub_wait(&pub, cfg->wait_subscribers, stop);
    }
    uint64_t total = (uint64_t)cfg->generate_s * (uint64_t)rate, done = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (done < total && !(stop && *stop)) {
        size_t m = total - done < BLOCK ? (size_t)(total - done) : BLOCK;
        for (size_t i = 0; i < m; i++) {
            if (ssmd_generator_step(g, codes) != 0) {
                fprintf(stderr, "ssmd: generation: model step failed\n");
                dsp_audio_writer_abort(w);
                w = NULL;
                goto out;
            }
            dsp_mulaw_decode(x + i * (size_t)nst, codes, (size_t)nst);
        }
        if (pub.sock) {
            pace_until(&t0, (double)(done + m) / rate, stop); /* released when its last sample is due, as live audio */
            pub_block(&pub, x, m, nst, rate, done, done + m >= total ? SSMD_FLAG_END_OF_STREAM : 0, scratch);
        }
        if (w && dsp_audio_writer_write(w, x, m, &de) != DSP_OK) {
            fprintf(stderr, "ssmd: %s\n", de.msg);
            dsp_audio_writer_abort(w);
            w = NULL;
            goto out;
        }
        done += m;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (w && dsp_audio_writer_close(w, &de) != DSP_OK) {
        w = NULL;
        fprintf(stderr, "ssmd: %s\n", de.msg);
        goto out;
    }
    w = NULL;
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char where[4200];
    snprintf(where, sizeof where, "%s%s%s", cfg->output, cfg->output[0] && pub.sock ? " and " : "",
             pub.sock ? cfg->pub : "");
    fprintf(stderr, "ssmd: generated %.2f s x %d stream%s in %.2f s (%.2fx real time%s), resets %llu -> %s",
            (double)done / rate, nst, nst == 1 ? "" : "s", sec,
            sec > 0 ? (double)done / rate / sec : 0.0, stop && *stop ? ", stopped" : "",
            (unsigned long long)ssmd_generator_resets(g), where);
    if (pub.sock)
        fprintf(stderr, " (%llu messages published, %llu dropped)", (unsigned long long)pub.published,
                (unsigned long long)pub.dropped);
    fputc('\n', stderr);
    rc = 0;
out:
    dsp_audio_writer_abort(w);
    pub_close(&pub);
    free(scratch);
    free(codes);
    free(x);
    free(prompt);
    ssmd_generator_destroy(g);
    ssm_model_free(model);
    return rc;
}
