/* SPDX-License-Identifier: MIT */
/* Mamba-1 compute on top of the loaded weights (weights.h) and kernels/.
 *
 * Design notes.
 *  - A state is one block: a 64-byte header (owner model, counters) then the
 *    fp32 payload, per layer conv_state {d_inner, d_conv} followed by
 *    ssm_state {d_inner, d_state}.  Snapshots are a separate 64-byte header
 *    (magic, version, model hash, geometry, checksum) plus the same payload.
 *  - ssm_step runs every projection of the batch through the packed
 *    kernels (ssm_kernels.h: weights transposed into fp32, f16 or int8
 *    panels by the first runner that reads that precision, one FMA chain
 *    per output element, AVX-512 / AVX2+FMA / scalar
 *    chosen once per runner from the CPU's flags, same bits on each), whose
 *    per-element summation order does not depend on the batch, so a
 *    stream's bits do not depend on which streams share its batch; with
 *    SSM_RUNNER_BLAS_STEP the projections go to sgemm instead, with
 *    SSM_RUNNER_REFERENCE to the plain-C ssm_linear_f32.
 *  - The conv, softplus, scan, gate and the heads' sigmoid run the variants
 *    the ssm_*_get functions pick for the runner's ISA (explicit AVX-512 /
 *    AVX2+FMA, or the portable _vec code: own exp/log1p polynomials, the same
 *    bits on each) unless SSM_RUNNER_REFERENCE selects the plain reference.
 *  - ssm_forward processes a chunk layer by layer: the projections of all T
 *    frames are one call of the step's projection kernel each (T rows),
 *    only the conv and the scan walk the frames; they are the same kernels as
 *    the step, called with one row at a time, so a chunk gives the bits of
 *    its frames stepped one by one.
 *  - Non-finite states are detected on the residual after the last layer:
 *    NaN/Inf in any conv or SSM state reaches r through y and out_proj
 *    (x·0 of an Inf is still NaN), so one pass over d_model values per stream
 *    replaces a pass over the whole state.
 */
#include "ssm/model.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ssm_kernels.h"
#include "model_cuda.h"
#include "model_internal.h"
#include "weights.h"

_Static_assert(SSM_MODEL_INPUT_TOKENS == (int)SSM_INPUT_TOKENS, "input kinds");
_Static_assert(SSM_MODEL_INPUT_FEATURES == (int)SSM_INPUT_FEATURES, "input kinds");
_Static_assert((unsigned)SSM_MODEL_HEAD_MASK == (unsigned)SSM_HEAD_MASK && (unsigned)SSM_MODEL_HEAD_VAD == (unsigned)SSM_HEAD_VAD &&
               (unsigned)SSM_MODEL_HEAD_LM == (unsigned)SSM_HEAD_LM && (unsigned)SSM_MODEL_HEAD_EMBEDDING == (unsigned)SSM_HEAD_EMBEDDING,
               "head bits");

#define ALIGN 64u
#define STATE_HEADER 64u
#define SNAP_HEADER 64u
#define SNAP_VERSION 1u
static const char k_snap_magic[8] = {'S', 'S', 'M', 'D', 'S', 'T', 'A', 'T'};

/* One linear layer: nn.Linear weight {d_out, d_in} as loaded, and its packed
 * panels for the packed kernels (ssm_kernels.h): fp32, binary16 and int8,
 * each NULL until a runner needs that precision (model_pack). */
typedef struct lin_w {
    const float *w;
    const float *p32;
    const unsigned short *p16;
    const void *q8; /* int8 panel (ssm_pack_q8); never made when d_in > SSM_Q8_MAX_D_IN */
    int d_in, d_out;
} lin_w;

enum { LIN_IN, LIN_X, LIN_DT, LIN_OUT, LIN_FC1, LIN_FC2, LIN_PER_LAYER };

/* Panel precisions, the runners' wtype: 0 fp32, 1 f16, 2 int8. */
enum { PACK_F32, PACK_F16, PACK_INT8, PACK_KINDS };

struct ssm_model {
    ssm_weights *w;
    ssm_config cfg;
    size_t state_floats; /* Σ over layers of conv_dim·d_conv + d_inner·d_state
                            (attention layers: ssm_attn_state_floats, the KV ring) */
    size_t *layer_off;   /* {n_layer}: each layer's conv state (floats into the payload) */
    int max_in, max_inner, max_conv_dim; /* largest d_in_proj, d_inner, conv_dim of a layer */
    lin_w *layer_lin;    /* {n_layer, LIN_PER_LAYER} */
    lin_w frontend, mask, vad, lm;
    /* The packed panels of one precision are made the first time a runner
     * needs them (ssm_runner_create), in one allocation per precision, and
     * kept until ssm_model_free: a model stepped in one precision holds only
     * that precision's copy.  pack_mu serialises the packing of runners
     * created concurrently on the shared (const) model; a panel pointer is
     * written once, under the lock, before any runner that reads it exists. */
    pthread_mutex_t pack_mu;
    void *pack_mem[PACK_KINDS];
    size_t pack_bytes[PACK_KINDS];
    ssm_cuda_model *cuda; /* non-NULL: the CUDA backend (model_cuda.c) */
    char note[320];       /* ssm_model_backend_note */
};

/* Bytes of L's panel of precision kind (64-byte multiple); 0 without
 * weights or for int8 beyond SSM_Q8_MAX_D_IN. */
static size_t lin_pack_bytes(const lin_w *L, int kind)
{
    if (!L->w)
        return 0;
    size_t ne = ssm_pack_elems(L->d_in, L->d_out);
    switch (kind) {
    case PACK_F32: return (ne * sizeof(float) + 63) / 64 * 64;
    case PACK_F16: return (ne * 2 + 63) / 64 * 64;
    default: return L->d_in <= SSM_Q8_MAX_D_IN ? ssm_pack_q8_bytes(L->d_in, L->d_out) : 0;
    }
}

/* Adds L's panel of precision kind to *total (mem NULL) or packs it at
 * mem + *total. */
static void lin_pack(lin_w *L, int kind, unsigned char *mem, size_t *total)
{
    size_t b = lin_pack_bytes(L, kind);
    if (mem && b) {
        void *p = mem + *total;
        if (kind == PACK_F32) {
            ssm_pack_f32(p, L->w, L->d_in, L->d_out);
            L->p32 = p;
        } else if (kind == PACK_F16) {
            ssm_pack_f16(p, L->w, L->d_in, L->d_out);
            L->p16 = p;
        } else if (ssm_pack_q8(p, L->w, L->d_in, L->d_out) == 0) {
            L->q8 = p; /* weights are finite (checked at load): always */
        }
    }
    *total += b;
}

/* Linear layer i of m, 0 <= i < lin_count(m): the layers' four, then the
 * heads (frontend, mask, vad, lm). */
static lin_w *lin_at(ssm_model *m, int i)
{
    int nl = m->cfg.n_layer * LIN_PER_LAYER;
    lin_w *heads_[] = {&m->frontend, &m->mask, &m->vad, &m->lm};
    return i < nl ? &m->layer_lin[i] : heads_[i - nl];
}

static int lin_count(const ssm_model *m)
{
    return m->cfg.n_layer * LIN_PER_LAYER + 4;
}

/* Shapes of every linear layer (no panel yet). */
static void lin_shapes(ssm_model *m)
{
    const ssm_config *c = &m->cfg;
    const ssm_weights *w = m->w;
    int ndbc = c->dt_rank + 2 * c->d_state;
    for (int l = 0; l < c->n_layer; ++l) {
        const ssm_layer_weights *L = &w->layers[l];
        lin_w *P = m->layer_lin + (size_t)l * LIN_PER_LAYER;
        /* Mamba-2 layers have no x_proj / dt_proj (w NULL: nothing packed) */
        P[LIN_IN] = (lin_w){.w = L->in_proj, .d_in = c->d_model, .d_out = L->d_in_proj};
        P[LIN_X] = (lin_w){.w = L->x_proj, .d_in = c->d_inner, .d_out = ndbc};
        P[LIN_DT] = (lin_w){.w = L->dt_proj, .d_in = c->dt_rank, .d_out = c->d_inner};
        P[LIN_OUT] = (lin_w){.w = L->out_proj, .d_in = L->d_inner, .d_out = c->d_model};
        /* the gated MLP (NULL without d_intermediate) */
        int dh = c->d_intermediate > 0 ? c->d_intermediate : 1;
        P[LIN_FC1] = (lin_w){.w = L->mlp_fc1, .d_in = c->d_model, .d_out = 2 * dh};
        P[LIN_FC2] = (lin_w){.w = L->mlp_fc2, .d_in = dh, .d_out = c->d_model};
    }
    m->frontend = (lin_w){.w = w->frontend_proj,
                          .d_in = c->input == SSM_INPUT_FEATURES ? c->n_features : 1,
                          .d_out = c->d_model};
    m->mask = (lin_w){.w = w->mask_w, .d_in = c->d_model,
                      .d_out = c->n_mask_bands > 0 ? c->n_mask_bands : c->n_mask > 0 ? c->n_mask : 1};
    m->vad = (lin_w){.w = w->vad_w, .d_in = c->d_model, .d_out = 1};
    m->lm = (lin_w){.w = w->lm_head, .d_in = c->d_model,
                    .d_out = c->vocab_size > 0 ? c->vocab_size : 1};
}

/* Layer L's attention geometry (kernels unset: ssm_attn_set_isa / _reference). */
static ssm_attn attn_geometry(const ssm_config *c, const ssm_layer_weights *L)
{
    return (ssm_attn){
        .n_heads = c->at_n_heads, .n_heads_kv = c->at_n_heads_kv, .head_dim = c->at_head_dim,
        .window = c->at_window, .rot_dim = c->at_rot_dim,
        .rot_interleaved = c->at_rot_interleaved, .inv_freq = L->rope_inv_freq,
        .scale = c->at_scale, .mlp_dim = c->at_mlp_dim,
    };
}

/* Makes the panels of precision kind for every layer of m unless they exist
 * (the model is shared and const to runners; only this function, under
 * pack_mu, writes its panel fields).  SSM_OK or SSM_ERR_NOMEM with a line. */
static int model_pack(const ssm_model *cm, int kind, ssm_error *err)
{
    ssm_model *m = (ssm_model *)cm;
    int rc = SSM_OK;
    pthread_mutex_lock(&m->pack_mu);
    if (!m->pack_mem[kind]) {
        size_t total = 0;
        for (int i = 0; i < lin_count(m); ++i)
            lin_pack(lin_at(m, i), kind, NULL, &total);
        unsigned char *mem = aligned_alloc(ALIGN, total ? total : ALIGN);
        if (!mem) {
            rc = ssm_error_set(err, SSM_ERR_NOMEM,
                               "ssm_runner_create: cannot allocate %zu bytes of %s panels", total,
                               kind == PACK_F32 ? "fp32" : kind == PACK_F16 ? "f16" : "int8");
        } else {
            total = 0;
            for (int i = 0; i < lin_count(m); ++i)
                lin_pack(lin_at(m, i), kind, mem, &total);
            m->pack_mem[kind] = mem;
            m->pack_bytes[kind] = total;
        }
    }
    pthread_mutex_unlock(&m->pack_mu);
    return rc;
}

struct ssm_state {
    alignas(64) const ssm_model *model;
    uint32_t owned; /* 1 when from ssm_state_create */
    uint32_t pad_;
    ssm_state_stats stats;
    float *dev;     /* CUDA backend: the payload on the device, else NULL */
    unsigned char reserved[STATE_HEADER - 2 * sizeof(void *) - 8 - sizeof(ssm_state_stats)];
};
_Static_assert(sizeof(struct ssm_state) == STATE_HEADER, "state header size");

typedef struct snap_header {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint64_t model_hash;
    uint32_t n_layer, d_inner, d_conv, d_state;
    uint64_t payload_bytes;
    uint64_t checksum; /* FNV-1a 64 of the payload */
    unsigned char reserved[SNAP_HEADER - 56];
} snap_header;
_Static_assert(sizeof(snap_header) == SNAP_HEADER, "snapshot header size");

static float *state_data(ssm_state *s)
{
    return (float *)((unsigned char *)s + STATE_HEADER);
}

static const float *state_cdata(const ssm_state *s)
{
    return (const float *)((const unsigned char *)s + STATE_HEADER);
}

float *ssm_state_payload_(ssm_state *s, size_t *n_floats)
{
    if (s->dev) { /* on the device: not reachable from the host */
        if (n_floats)
            *n_floats = 0;
        return NULL;
    }
    if (n_floats)
        *n_floats = s->model->state_floats;
    return state_data(s);
}

/* ---- model ------------------------------------------------------------ */

int ssm_model_load(const char *path, const ssm_model_options *opts,
                   ssm_model **out, ssm_error *err)
{
    if (!out)
        return ssm_error_set(err, SSM_ERR_INVALID, "ssm_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return ssm_error_set(err, SSM_ERR_INVALID, "ssm_model_load: path is NULL");
    int backend = opts ? opts->backend : SSM_BACKEND_CPU;
    int device = opts ? opts->cuda_device : 0;
    if (backend != SSM_BACKEND_CPU && backend != SSM_BACKEND_CUDA && backend != SSM_BACKEND_AUTO)
        return ssm_error_set(err, SSM_ERR_BACKEND,
                             "%s: unknown backend %d (0 = cpu, 1 = cuda, 2 = auto)", path, backend);
    char why[240] = "";
    if (backend != SSM_BACKEND_CPU) {
        int ok = ssm_cuda_probe(device, why, sizeof why);
        if (!ok && backend == SSM_BACKEND_CUDA)
            return ssm_error_set(err, SSM_ERR_BACKEND, "%s: backend cuda: %s", path, why);
        backend = ok ? SSM_BACKEND_CUDA : SSM_BACKEND_CPU;
    }
    int auto_pick = opts && opts->backend == SSM_BACKEND_AUTO;
    ssm_weights *w = NULL;
    int rc = ssm_weights_load(path, &w, err);
    if (rc < 0)
        return rc;
    ssm_model *m = calloc(1, sizeof *m);
    if (!m) {
        ssm_weights_free(w);
        return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory", path);
    }
    pthread_mutex_init(&m->pack_mu, NULL);
    m->w = w;
    m->cfg = w->cfg;
    const ssm_config *c = &m->cfg;
    /* The loader validated sizes (each below 2^31 elements); lay the
     * layers' states out one after the other, each conv {conv_dim, d_conv}
     * then ssm {d_inner, d_state} ({n_heads, head_dim, d_state}). */
    m->layer_off = calloc((size_t)c->n_layer, sizeof *m->layer_off);
    if (!m->layer_off) {
        ssm_model_free(m);
        return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t total_floats = 0;
    for (int l = 0; l < c->n_layer; ++l) {
        const ssm_layer_weights *L = &w->layers[l];
        size_t per = (size_t)L->conv_dim * (size_t)L->d_conv + (size_t)L->d_inner * (size_t)L->d_state;
        if (L->kind == SSM_LAYER_ATTENTION) {
            ssm_attn ag = attn_geometry(c, L);
            per = ssm_attn_state_floats(&ag);
        }
        if (per > SIZE_MAX / 8 - total_floats) {
            ssm_model_free(m);
            return ssm_error_set(err, SSM_ERR_MODEL, "%s: state size overflows", path);
        }
        m->layer_off[l] = total_floats;
        total_floats += per;
        if (L->d_in_proj > m->max_in)
            m->max_in = L->d_in_proj;
        if (L->d_inner > m->max_inner)
            m->max_inner = L->d_inner;
        if (L->conv_dim > m->max_conv_dim)
            m->max_conv_dim = L->conv_dim;
        if (2 * c->d_intermediate > m->max_in) /* the MLP's fc1 output and gated hidden */
            m->max_in = 2 * c->d_intermediate;
        if (c->d_intermediate > m->max_inner)
            m->max_inner = c->d_intermediate;
    }
    m->state_floats = total_floats;
    /* Mamba-2, attention and MLP layers run on the CUDA backend when asked
     * for by name (kernels/cuda/ssm_kernels_hybrid.cu: compiled, but not yet
     * run on a GPU, docs/gpu/README.md); `auto` keeps them on the cpu until
     * tests/gpu has passed on a device.  What the kernels cannot take
     * (d_conv, d_state, head_dim above their limits) ssm_cuda_model_create
     * refuses by name. */
    if (backend != SSM_BACKEND_CPU && auto_pick &&
        (c->n_mamba2 || c->n_attn || c->d_intermediate)) {
        const char *what = c->n_mamba2 ? "Mamba-2 layers" : c->n_attn ? "attention layers"
                                                                         : "MLP blocks";
        snprintf(why, sizeof why, "cuda not used (its kernels for %s have not yet run on a GPU; "
                 "--backend cuda uses them)", what);
        backend = SSM_BACKEND_CPU;
    }
    if (backend == SSM_BACKEND_CUDA) {
        rc = ssm_cuda_model_create(w, device, &m->cuda, err);
        if (rc < 0 && auto_pick) { /* e.g. a d_state the kernels do not take */
            snprintf(m->note, sizeof m->note, "cuda not used (%.240s); running on the cpu",
                     err ? err->msg : "model not supported");
        } else if (rc < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
            ssm_model_free(m);
            return ssm_error_set(err, rc, "%s: %s", path, msg);
        } else {
            snprintf(m->note, sizeof m->note, "cuda: %.240s", ssm_cuda_model_device(m->cuda));
            *out = m; /* no CPU panels: every runner of this model is a CUDA one */
            return SSM_OK;
        }
    } else if (auto_pick) {
        snprintf(m->note, sizeof m->note, "%.240s; running on the cpu", why);
    }
    /* the layers' shapes; their packed panels are made by the first runner
     * that needs each precision (model_pack) */
    m->layer_lin = calloc((size_t)c->n_layer * LIN_PER_LAYER, sizeof *m->layer_lin);
    if (!m->layer_lin) {
        ssm_model_free(m);
        return ssm_error_set(err, SSM_ERR_NOMEM, "%s: out of memory", path);
    }
    lin_shapes(m);
    *out = m;
    return SSM_OK;
}

void ssm_model_free(ssm_model *model)
{
    if (!model)
        return;
    ssm_cuda_model_free(model->cuda);
    ssm_weights_free(model->w);
    free(model->layer_lin);
    free(model->layer_off);
    for (int k = 0; k < PACK_KINDS; ++k)
        free(model->pack_mem[k]);
    pthread_mutex_destroy(&model->pack_mu);
    free(model);
}

int ssm_model_d_model(const ssm_model *m) { return m->cfg.d_model; }
int ssm_model_n_layer(const ssm_model *m) { return m->cfg.n_layer; }
int ssm_model_d_inner(const ssm_model *m) { return m->cfg.d_inner; }
int ssm_model_d_state(const ssm_model *m) { return m->cfg.d_state; }
int ssm_model_d_conv(const ssm_model *m) { return m->cfg.d_conv; }
int ssm_model_dt_rank(const ssm_model *m) { return m->cfg.dt_rank; }
int ssm_model_layer_kind(const ssm_model *m, int layer)
{
    if (!m || layer < 0 || layer >= m->cfg.n_layer)
        return SSM_ERR_INVALID;
    switch (m->w->layers[layer].kind) {
    case SSM_LAYER_MAMBA2: return SSM_MODEL_LAYER_MAMBA2;
    case SSM_LAYER_ATTENTION: return SSM_MODEL_LAYER_ATTENTION;
    default: return SSM_MODEL_LAYER_MAMBA1;
    }
}
int ssm_model_input(const ssm_model *m) { return (int)m->cfg.input; }
int ssm_model_n_features(const ssm_model *m)
{
    return m->cfg.input == SSM_INPUT_FEATURES ? m->cfg.n_features : 0;
}
int ssm_model_vocab_size(const ssm_model *m) { return m->cfg.vocab_size; }
unsigned ssm_model_heads(const ssm_model *m) { return m->cfg.heads | SSM_HEAD_EMBEDDING; }
int ssm_model_n_mask(const ssm_model *m) { return m->cfg.n_mask; }
const char *ssm_model_meta(const ssm_model *m, const char *key)
{
    return m && key ? ssm_weights_meta(m->w, key) : NULL;
}
int ssm_model_meta_count(const ssm_model *m) { return ssm_weights_meta_count(m->w); }
int ssm_model_meta_at(const ssm_model *m, int i, const char **key, const char **value)
{
    if (!m || i < 0 || i >= ssm_weights_meta_count(m->w))
        return SSM_ERR_INVALID;
    return ssm_weights_meta_at(m->w, i, key, value) < 0 ? SSM_ERR_INVALID : SSM_OK;
}
uint64_t ssm_model_hash(const ssm_model *m) { return m->w->hash; }

int ssm_backend_available(int backend, int device, ssm_error *why)
{
    if (backend == SSM_BACKEND_CPU)
        return 1;
    if (backend != SSM_BACKEND_CUDA) {
        ssm_error_set(why, SSM_ERR_BACKEND, "unknown backend %d", backend);
        return 0;
    }
    char msg[240];
    if (ssm_cuda_probe(device, msg, sizeof msg))
        return 1;
    ssm_error_set(why, SSM_ERR_BACKEND, "%s", msg);
    return 0;
}

const char *ssm_model_backend(const ssm_model *m)
{
    return m && m->cuda ? "cuda" : "cpu";
}

const char *ssm_model_backend_note(const ssm_model *m)
{
    return m ? m->note : "";
}

/* ---- state ------------------------------------------------------------- */

size_t ssm_state_bytes(const ssm_model *m)
{
    return SNAP_HEADER + m->state_floats * sizeof(float);
}

size_t ssm_state_size(const ssm_model *m)
{
    return STATE_HEADER + (m->cuda ? 0 : m->state_floats * sizeof(float));
}

ssm_state *ssm_state_init(const ssm_model *m, void *mem, size_t size)
{
    if (!m || m->cuda || !mem || ((uintptr_t)mem % ALIGN) != 0 || size < ssm_state_size(m))
        return NULL;
    memset(mem, 0, ssm_state_size(m));
    ssm_state *s = mem;
    s->model = m;
    return s;
}

int ssm_state_create(const ssm_model *m, ssm_state **out)
{
    if (!out)
        return SSM_ERR_INVALID;
    *out = NULL;
    if (!m)
        return SSM_ERR_INVALID;
    size_t size = ssm_state_size(m);
    size_t rounded = (size + ALIGN - 1) / ALIGN * ALIGN;
    void *mem = aligned_alloc(ALIGN, rounded);
    if (!mem)
        return SSM_ERR_NOMEM;
    memset(mem, 0, rounded);
    ssm_state *s = mem;
    s->model = m;
    if (m->cuda) {
        int rc = ssm_cuda_state_alloc(m->cuda, &s->dev);
        if (rc < 0) {
            free(mem);
            return rc;
        }
    }
    s->owned = 1;
    *out = s;
    return SSM_OK;
}

void ssm_state_destroy(ssm_state *s)
{
    if (s && s->owned) {
        if (s->dev)
            ssm_cuda_state_free(s->model->cuda, s->dev);
        free(s);
    }
}

static void state_zero(ssm_state *s)
{
    if (s->dev)
        (void)ssm_cuda_state_zero(s->model->cuda, s->dev); /* a failing device fails the next step */
    else
        memset(state_data(s), 0, s->model->state_floats * sizeof(float));
}

void ssm_state_reset(ssm_state *s)
{
    if (!s)
        return;
    state_zero(s);
    memset(&s->stats, 0, sizeof s->stats);
}

void ssm_state_stats_get(const ssm_state *s, ssm_state_stats *out)
{
    if (s && out)
        *out = s->stats;
}

static uint64_t fnv1a64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; ++i) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void snap_fill(snap_header *h, const ssm_model *m)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, k_snap_magic, sizeof h->magic);
    h->version = SNAP_VERSION;
    h->header_bytes = SNAP_HEADER;
    h->model_hash = m->w->hash;
    h->n_layer = (uint32_t)m->cfg.n_layer;
    h->d_inner = (uint32_t)m->cfg.d_inner;
    h->d_conv = (uint32_t)m->cfg.d_conv;
    h->d_state = (uint32_t)m->cfg.d_state;
    h->payload_bytes = m->state_floats * sizeof(float);
}

int ssm_state_snapshot(const ssm_state *s, void *buf, size_t size, size_t *written)
{
    if (!s || !buf)
        return SSM_ERR_INVALID;
    const ssm_model *m = s->model;
    size_t need = ssm_state_bytes(m);
    if (size < need)
        return SSM_ERR_INVALID;
    snap_header h;
    snap_fill(&h, m);
    unsigned char *payload = (unsigned char *)buf + SNAP_HEADER;
    if (s->dev) {
        if (ssm_cuda_state_download(m->cuda, payload, s->dev) < 0)
            return SSM_ERR_BACKEND;
    } else {
        memcpy(payload, state_cdata(s), h.payload_bytes);
    }
    h.checksum = fnv1a64(payload, h.payload_bytes);
    memcpy(buf, &h, sizeof h);
    if (written)
        *written = need;
    return SSM_OK;
}

int ssm_state_restore(ssm_state *s, const void *buf, size_t size)
{
    if (!s || !buf || size < SNAP_HEADER)
        return SSM_ERR_INVALID;
    const ssm_model *m = s->model;
    snap_header h, want;
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, k_snap_magic, sizeof h.magic) != 0 || h.header_bytes != SNAP_HEADER)
        return SSM_ERR_INVALID;
    snap_fill(&want, m);
    if (h.version != want.version || h.model_hash != want.model_hash ||
        h.n_layer != want.n_layer || h.d_inner != want.d_inner || h.d_conv != want.d_conv ||
        h.d_state != want.d_state || h.payload_bytes != want.payload_bytes)
        return SSM_ERR_MISMATCH;
    /* exact length, and every header byte (reserved ones too) as this model writes it */
    want.checksum = h.checksum;
    if (size != SNAP_HEADER + h.payload_bytes || memcmp(&h, &want, sizeof h) != 0)
        return SSM_ERR_INVALID;
    const unsigned char *payload = (const unsigned char *)buf + SNAP_HEADER;
    if (fnv1a64(payload, h.payload_bytes) != h.checksum)
        return SSM_ERR_INVALID;
    for (size_t i = 0; i < m->state_floats; ++i) {
        float v;
        memcpy(&v, payload + i * sizeof v, sizeof v);
        if (!isfinite(v))
            return SSM_ERR_INVALID;
    }
    /* an attention layer's frame counter: two exact integers, lo < 2^24 */
    for (int l = 0; l < m->cfg.n_layer; ++l) {
        const ssm_layer_weights *L = &m->w->layers[l];
        if (L->kind != SSM_LAYER_ATTENTION)
            continue;
        ssm_attn ag = attn_geometry(&m->cfg, L);
        float ctr[2];
        memcpy(ctr, payload + (m->layer_off[l] + ssm_attn_counter_at(&ag)) * sizeof(float),
               sizeof ctr);
        if (!(ctr[0] >= 0.0f && ctr[0] < 16777216.0f && ctr[0] == floorf(ctr[0]) &&
              ctr[1] >= 0.0f && ctr[1] < 16777216.0f && ctr[1] == floorf(ctr[1])))
            return SSM_ERR_INVALID;
    }
    if (s->dev) {
        if (ssm_cuda_state_upload(m->cuda, s->dev, payload) < 0)
            return SSM_ERR_BACKEND;
    } else {
        memcpy(state_data(s), payload, h.payload_bytes);
    }
    memset(&s->stats, 0, sizeof s->stats);
    return SSM_OK;
}

/* ---- runner ------------------------------------------------------------- */

typedef void (*conv_fn)(float *, size_t, float *const *, const float *, size_t, const float *,
                        const float *, int, int, int);
typedef void (*scan_fn)(float *, size_t, float *const *, const float *, size_t, const float *,
                        size_t, const float *, const float *, const float *, size_t, const float *,
                        float, int, int, int);
typedef void (*gate_fn)(float *, size_t, const float *, size_t, int, int);
typedef void (*softplus_fn)(float *, size_t, const float *, size_t, const float *, int, int);

/* How a runner computes the projections of a step (forward: see fwd_mode). */
typedef enum lin_mode {
    MODE_PACKED,    /* rn->packed over the fp32 or f16 panels (default) */
    MODE_BLAS,      /* ssm_linear_blas_f32 (SSM_RUNNER_BLAS_STEP) */
    MODE_REFERENCE, /* ssm_linear_f32, no FMA (SSM_RUNNER_REFERENCE) */
} lin_mode;

struct ssm_runner {
    const ssm_model *model;
    lin_mode step_mode, fwd_mode;
    ssm_linear_packed_fn packed;
    int wtype;           /* 0 fp32, 1 f16, 2 int8 panels */
    ssm_isa isa;
    conv_fn conv;
    scan_fn scan;
    gate_fn gate;
    softplus_fn softplus;
    ssm_sigmoid_fn sigmoid; /* the mask and VAD heads */
    ssm_mixer *mixer;       /* {n_layer}: each Mamba-1 layer's middle for the step (CPU) */
    ssm_mixer2 *mixer2;     /* {n_layer}: each Mamba-2 layer's middle (step and forward) */
    ssm_attn *attn;         /* {n_layer}: each attention layer's middle (step and forward) */
    float *mix_scratch;     /* max of ssm_mixer_scratch_floats, ssm_mixer2_scratch_floats */
    int max_batch, max_chunk, rows;
    unsigned flags;
    size_t bytes;
    void *mem;
    float *in;    /* {rows, n_features}: features with non-finite values zeroed */
    float *r;     /* {rows, d_model}: residual */
    float *hn;    /* {rows, d_model}: normed residual, then out_proj output */
    float *xz;    /* {rows, max d_in_proj}: in_proj's output (x|z, or z|xBC|dt) */
    float *xc;    /* {rows, d_inner}: conv output */
    float *dbc;   /* {rows, dt_rank + 2·d_state} */
    float *dt;    /* {rows, d_inner} */
    float *y;     /* {rows, max d_inner} */
    float *hf;    /* {rows, d_model} */
    float *mband; /* {rows, n_mask_bands}: a banded mask head's band logits */
    float **conv_ptr; /* {max_batch} */
    float **ssm_ptr;  /* {max_batch} */
    size_t *count;    /* {rows} */
    unsigned char *bad; /* {rows} */
    ssm_cuda_runner *cuda; /* CUDA backend: the device side (model_cuda.c) */
    struct step_pool *pool; /* ssm_runner_set_threads: workers, else NULL */
};

/* Worker threads of a runner (ssm_runner_set_threads): worker i owns a child
 * runner (same model, max_batch and flags, no pool) and steps the slice the
 * caller posts; the calling thread steps the first slice itself. */
typedef struct step_job {
    ssm_state *const *states;
    int n;
    const float *features;
    const int32_t *tokens;
    ssm_outputs out;
    int has_out;
    unsigned *flags;
    int rc;
} step_job;

typedef struct step_worker {
    pthread_t th;
    ssm_runner *rn;
    struct step_pool *pool;
    step_job job;
} step_worker;

typedef struct step_pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen; /* bumped for each posted step */
    int pending;       /* workers still running the current step */
    int quit;
    int n_workers, min_rows, started;
    step_worker *w;
} step_pool;

/* Adds n elements of size elt to *total at a 64-byte boundary; returns the
 * offset, or SIZE_MAX on overflow (sticky). */
static size_t carve(size_t *total, size_t n, size_t elt)
{
    if (*total == SIZE_MAX || (elt && n > (SIZE_MAX - ALIGN) / elt)) {
        *total = SIZE_MAX;
        return SIZE_MAX;
    }
    size_t off = *total;
    size_t sz = (n * elt + ALIGN - 1) / ALIGN * ALIGN;
    if (sz > SIZE_MAX - off) {
        *total = SIZE_MAX;
        return SIZE_MAX;
    }
    *total = off + sz;
    return off;
}

/* The runner's one allocation of total bytes (summed by carve), zeroed and
 * 64-byte aligned; NULL with a line in err on overflow or failure. */
static unsigned char *runner_mem(size_t total, int max_batch, int max_chunk, ssm_error *err)
{
    if (total == SIZE_MAX) {
        ssm_error_set(err, SSM_ERR_NOMEM,
                      "ssm_runner_create: size overflows for max_batch %d, max_chunk %d",
                      max_batch, max_chunk);
        return NULL;
    }
    unsigned char *mem = aligned_alloc(ALIGN, total);
    if (!mem) {
        ssm_error_set(err, SSM_ERR_NOMEM, "ssm_runner_create: cannot allocate %zu bytes", total);
        return NULL;
    }
    memset(mem, 0, total);
    return mem;
}

/* A runner of a CUDA model: host arrays for the state pointers, counts and
 * reset flags (the CPU scratch is not allocated); the rest is on the device. */
static int cuda_runner_create(const ssm_model *m, int max_batch, int max_chunk, unsigned flags,
                              ssm_runner **out, ssm_error *err)
{
    size_t rows = (size_t)(max_batch > max_chunk ? max_batch : max_chunk);
    size_t total = 0;
    size_t o_cp = carve(&total, (size_t)max_batch, sizeof(float *));
    size_t o_cnt = carve(&total, rows, sizeof(size_t));
    size_t o_bad = carve(&total, rows, 1);
    size_t o_self = carve(&total, 1, sizeof(ssm_runner));
    unsigned char *mem = runner_mem(total, max_batch, max_chunk, err);
    if (!mem)
        return SSM_ERR_NOMEM;
    ssm_runner *rn = (ssm_runner *)(mem + o_self);
    unsigned cf = ((flags & SSM_RUNNER_BF16_WEIGHTS) ? SSM_CUDA_BF16 : 0u) |
                  ((flags & SSM_RUNNER_NO_GRAPH) ? SSM_CUDA_NO_GRAPH : 0u);
    int rc = ssm_cuda_runner_create(m->cuda, max_batch, max_chunk, cf, &rn->cuda, err);
    if (rc < 0) {
        free(mem);
        return rc;
    }
    rn->model = m;
    rn->max_batch = max_batch;
    rn->max_chunk = max_chunk;
    rn->rows = (int)rows;
    rn->flags = flags;
    rn->bytes = total + ssm_cuda_runner_bytes(rn->cuda);
    rn->mem = mem;
    rn->conv_ptr = (float **)(mem + o_cp);
    rn->count = (size_t *)(mem + o_cnt);
    rn->bad = mem + o_bad;
    *out = rn;
    return SSM_OK;
}

/* 1 when every linear layer of m can have an int8 panel (d_in <=
 * SSM_Q8_MAX_D_IN); else 0 and *widest the largest d_in that cannot. */
static int all_q8(const ssm_model *m, int *widest)
{
    int ok = 1;
    for (int i = 0; i < lin_count(m); ++i) {
        const lin_w *L = lin_at((ssm_model *)m, i);
        if (L->w && L->d_in > SSM_Q8_MAX_D_IN) {
            ok = 0;
            if (L->d_in > *widest)
                *widest = L->d_in;
        }
    }
    return ok;
}

/* The reference and BLAS projections in the packed kernels' signature,
 * for ssm_mixer (their weights are the nn.Linear matrices themselves). */
static void lin_ref_fn(float *out, size_t ld_out, const float *x, size_t ld_x, const void *w,
                       const float *bias, int n_rows, int d_in, int d_out)
{
    ssm_linear_f32(out, ld_out, x, ld_x, w, bias, n_rows, d_in, d_out);
}

static void lin_blas_fn(float *out, size_t ld_out, const float *x, size_t ld_x, const void *w,
                        const float *bias, int n_rows, int d_in, int d_out)
{
    ssm_linear_blas_f32(out, ld_out, x, ld_x, w, bias, n_rows, d_in, d_out);
}

/* The weights lin() reads for P in mode. */
static const void *lin_weights(const ssm_runner *rn, lin_mode mode, const lin_w *P)
{
    if (mode != MODE_PACKED)
        return P->w;
    return rn->wtype == 2 ? P->q8 : rn->wtype == 1 ? (const void *)P->p16 : (const void *)P->p32;
}

/* Layer l's ssm_mixer for the step: its weights, the runner's kernels. */
static void mixer_setup(ssm_runner *rn, int l)
{
    const ssm_config *c = &rn->model->cfg;
    const ssm_layer_weights *L = &rn->model->w->layers[l];
    const lin_w *P = rn->model->layer_lin + (size_t)l * LIN_PER_LAYER;
    lin_mode mode = rn->step_mode;
    if (L->kind == SSM_LAYER_ATTENTION) {
        ssm_attn *a = &rn->attn[l];
        *a = attn_geometry(c, L);
        if (rn->flags & SSM_RUNNER_REFERENCE)
            ssm_attn_set_reference(a);
        else
            ssm_attn_set_isa(a, rn->isa);
        return;
    }
    if (L->kind == SSM_LAYER_MAMBA2) {
        ssm_mixer2 *m2 = &rn->mixer2[l];
        *m2 = (ssm_mixer2){
            .d_inner = L->d_inner, .d_state = L->d_state, .d_conv = L->d_conv,
            .n_heads = L->n_heads, .head_dim = L->head_dim, .n_groups = L->n_groups,
            .conv_w = L->conv1d, .conv_b = L->conv1d_bias, .dt_bias = L->dt_bias, .A = L->A,
            .D = L->D, .norm_w = L->norm_gated, .norm_eps = c->m2_norm_eps,
            .norm_groups = L->d_inner / c->m2_norm_group_size,
        };
        if (rn->flags & SSM_RUNNER_REFERENCE) {
            ssm_mixer2_set_reference(m2);
        } else {
            ssm_mixer2_set_isa(m2, rn->isa);
            m2->chunked = (rn->flags & SSM_RUNNER_SSD_FORWARD) != 0;
        }
        return;
    }
    ssm_mixer *mx = &rn->mixer[l];
    *mx = (ssm_mixer){
        .d_inner = c->d_inner, .d_state = c->d_state, .d_conv = c->d_conv, .dt_rank = c->dt_rank,
        .conv_w = L->conv1d, .conv_b = L->conv1d_bias, .dt_bias = L->dt_proj_bias, .A = L->A,
        .D = L->D, .dA_log_min = c->delta_A_min,
        .x_proj_w = lin_weights(rn, mode, &P[LIN_X]), .dt_proj_w = lin_weights(rn, mode, &P[LIN_DT]),
        .x_lin = mode == MODE_PACKED ? rn->packed : mode == MODE_BLAS ? lin_blas_fn : lin_ref_fn,
    };
    mx->dt_lin = mx->x_lin;
    if (rn->flags & SSM_RUNNER_REFERENCE)
        ssm_mixer_set_reference(mx);
    else
        ssm_mixer_set_isa(mx, rn->isa);
}

int ssm_runner_create(const ssm_model *m, int max_batch, int max_chunk,
                      unsigned flags, ssm_runner **out, ssm_error *err)
{
    if (!out)
        return ssm_error_set(err, SSM_ERR_INVALID, "ssm_runner_create: out is NULL");
    *out = NULL;
    if (!m)
        return ssm_error_set(err, SSM_ERR_INVALID, "ssm_runner_create: model is NULL");
    if (max_batch < 1 || max_chunk < 1)
        return ssm_error_set(err, SSM_ERR_INVALID,
                             "ssm_runner_create: max_batch %d and max_chunk %d must be >= 1",
                             max_batch, max_chunk);
    const unsigned known = SSM_RUNNER_BLAS_STEP | SSM_RUNNER_REFERENCE | SSM_RUNNER_F16_WEIGHTS |
                           SSM_RUNNER_INT8_WEIGHTS |
                           SSM_RUNNER_ISA_AVX2 | SSM_RUNNER_ISA_SCALAR |
                           SSM_RUNNER_BF16_WEIGHTS | SSM_RUNNER_NO_GRAPH | SSM_RUNNER_SSD_FORWARD;
    if (flags & ~known)
        return ssm_error_set(err, SSM_ERR_INVALID, "ssm_runner_create: unknown flags 0x%x", flags);
    if (m->cuda)
        return cuda_runner_create(m, max_batch, max_chunk, flags, out, err);
    if (flags & (SSM_RUNNER_BF16_WEIGHTS | SSM_RUNNER_NO_GRAPH))
        return ssm_error_set(err, SSM_ERR_INVALID,
                             "ssm_runner_create: SSM_RUNNER_BF16_WEIGHTS / _NO_GRAPH need the "
                             "cuda backend (this model runs on the cpu)");
    /* the ISA: the best this CPU has, capped by the flags */
    ssm_isa isa = ssm_isa_best();
    if ((flags & SSM_RUNNER_ISA_AVX2) && isa > SSM_ISA_AVX2)
        isa = SSM_ISA_AVX2;
    if (flags & SSM_RUNNER_ISA_SCALAR)
        isa = SSM_ISA_SCALAR;
    if ((flags & SSM_RUNNER_F16_WEIGHTS) && (flags & SSM_RUNNER_INT8_WEIGHTS))
        return ssm_error_set(err, SSM_ERR_INVALID,
                             "ssm_runner_create: SSM_RUNNER_F16_WEIGHTS and SSM_RUNNER_INT8_WEIGHTS "
                             "exclude each other");
    if ((flags & (SSM_RUNNER_INT8_WEIGHTS | SSM_RUNNER_F16_WEIGHTS)) && (flags & SSM_RUNNER_BLAS_STEP))
        return ssm_error_set(err, SSM_ERR_INVALID,
                             "ssm_runner_create: SSM_RUNNER_%s_WEIGHTS and SSM_RUNNER_BLAS_STEP "
                             "exclude each other (steps would run fp32 sgemm, forwards %s)",
                             (flags & SSM_RUNNER_INT8_WEIGHTS) ? "INT8" : "F16",
                             (flags & SSM_RUNNER_INT8_WEIGHTS) ? "int8" : "f16");
    int wtype = (flags & SSM_RUNNER_INT8_WEIGHTS) ? 2 : (flags & SSM_RUNNER_F16_WEIGHTS) ? 1 : 0;
    if (wtype == 2) {
        int widest = 0;
        if (!all_q8(m, &widest))
            return ssm_error_set(err, SSM_ERR_INVALID,
                                 "ssm_runner_create: int8 weights take layers of up to %d inputs "
                                 "(this model has one of %d)", SSM_Q8_MAX_D_IN, widest);
    }
    ssm_linear_packed_fn packed = wtype == 2 ? ssm_linear_q8_get(isa) : ssm_linear_packed_get(isa, wtype);
    if (!packed)
        return ssm_error_set(err, SSM_ERR_INVALID, "ssm_runner_create: no %s kernels on this CPU",
                             ssm_isa_name(isa));
    /* the panels this runner reads: none for the reference (it reads the
     * nn.Linear matrices), else the precision's (BLAS steps: the fp32
     * panels of the forward) */
    if (!(flags & SSM_RUNNER_REFERENCE)) {
        int rc = model_pack(m, wtype, err);
        if (rc < 0)
            return rc;
    }
    const ssm_config *c = &m->cfg;
    size_t rows = (size_t)(max_batch > max_chunk ? max_batch : max_chunk);
    size_t nf = c->input == SSM_INPUT_FEATURES ? (size_t)c->n_features : 0;
    size_t dm = (size_t)c->d_model, di = (size_t)m->max_inner;
    size_t ndbc = (size_t)c->dt_rank + 2 * (size_t)c->d_state;
    size_t total = 0;
    size_t o_in = carve(&total, rows, nf * sizeof(float));
    size_t o_r = carve(&total, rows, dm * sizeof(float));
    size_t o_hn = carve(&total, rows, dm * sizeof(float));
    size_t o_xz = carve(&total, rows, (size_t)m->max_in * sizeof(float));
    size_t o_xc = carve(&total, rows, di * sizeof(float));
    size_t o_dbc = carve(&total, rows, ndbc * sizeof(float));
    size_t o_dt = carve(&total, rows, di * sizeof(float));
    size_t o_y = carve(&total, rows, di * sizeof(float));
    size_t o_hf = carve(&total, rows, dm * sizeof(float));
    size_t o_mb = carve(&total, rows, (size_t)c->n_mask_bands * sizeof(float));
    size_t o_cp = carve(&total, (size_t)max_batch, sizeof(float *));
    size_t o_sp = carve(&total, (size_t)max_batch, sizeof(float *));
    size_t o_cnt = carve(&total, rows, sizeof(size_t));
    size_t o_bad = carve(&total, rows, 1);
    size_t o_mix = carve(&total, (size_t)c->n_layer, sizeof(ssm_mixer));
    size_t o_mix2 = carve(&total, (size_t)c->n_layer, sizeof(ssm_mixer2));
    size_t o_attn = carve(&total, (size_t)c->n_layer, sizeof(ssm_attn));
    ssm_mixer shape = {.d_inner = c->d_inner, .d_state = c->d_state, .dt_rank = c->dt_rank};
    size_t n_ms = ssm_mixer_scratch_floats(&shape);
    if (c->n_mamba2) {
        ssm_mixer2 shape2 = {.d_inner = c->m2_d_inner, .d_state = c->m2_d_state,
                             .n_heads = c->m2_n_heads, .n_groups = c->m2_n_groups};
        size_t n2 = ssm_mixer2_scratch_floats(&shape2);
        n_ms = n2 > n_ms ? n2 : n_ms;
    }
    for (int l = 0; l < c->n_layer; ++l)
        if (m->w->layers[l].kind == SSM_LAYER_ATTENTION) {
            ssm_attn ag = attn_geometry(c, &m->w->layers[l]);
            size_t na = ssm_attn_scratch_floats(&ag);
            n_ms = na > n_ms ? na : n_ms;
        }
    size_t o_ms = carve(&total, n_ms, sizeof(float));
    size_t o_self = carve(&total, 1, sizeof(ssm_runner));
    unsigned char *mem = runner_mem(total, max_batch, max_chunk, err);
    if (!mem)
        return SSM_ERR_NOMEM;
    ssm_runner *rn = (ssm_runner *)(mem + o_self);
    rn->model = m;
    int ref = (flags & SSM_RUNNER_REFERENCE) != 0;
    rn->isa = isa;
    rn->wtype = wtype;
    rn->packed = packed;
    rn->step_mode = ref ? MODE_REFERENCE : (flags & SSM_RUNNER_BLAS_STEP) ? MODE_BLAS : MODE_PACKED;
    /* forward: the same projection kernel as the step, over the chunk's
     * rows (faster than OpenBLAS sgemm on the CPUs measured, and row by row
     * the step's bits: a chunk equals its frames stepped one by one) */
    rn->fwd_mode = ref ? MODE_REFERENCE : MODE_PACKED;
    rn->conv = ref ? ssm_conv_step_f32 : ssm_conv_step_get(isa);
    rn->scan = ref ? ssm_scan_step_f32 : ssm_scan_step_get(isa);
    rn->gate = ref ? ssm_gate_silu_f32 : ssm_gate_silu_get(isa);
    rn->softplus = ref ? ssm_softplus_f32 : ssm_softplus_get(isa);
    rn->sigmoid = ref ? ssm_sigmoid_f32 : ssm_sigmoid_get(isa);
    rn->max_batch = max_batch;
    rn->max_chunk = max_chunk;
    rn->rows = (int)rows;
    rn->flags = flags;
    rn->bytes = total;
    rn->mem = mem;
    rn->in = (float *)(mem + o_in);
    rn->r = (float *)(mem + o_r);
    rn->hn = (float *)(mem + o_hn);
    rn->xz = (float *)(mem + o_xz);
    rn->xc = (float *)(mem + o_xc);
    rn->dbc = (float *)(mem + o_dbc);
    rn->dt = (float *)(mem + o_dt);
    rn->y = (float *)(mem + o_y);
    rn->hf = (float *)(mem + o_hf);
    rn->mband = (float *)(mem + o_mb);
    rn->conv_ptr = (float **)(mem + o_cp);
    rn->ssm_ptr = (float **)(mem + o_sp);
    rn->count = (size_t *)(mem + o_cnt);
    rn->bad = mem + o_bad;
    rn->mixer = (ssm_mixer *)(mem + o_mix);
    rn->mixer2 = (ssm_mixer2 *)(mem + o_mix2);
    rn->attn = (ssm_attn *)(mem + o_attn);
    rn->mix_scratch = (float *)(mem + o_ms);
    for (int l = 0; l < c->n_layer; ++l)
        mixer_setup(rn, l);
    *out = rn;
    return SSM_OK;
}

static void pool_stop(ssm_runner *rn);

void ssm_runner_destroy(ssm_runner *rn)
{
    if (rn) {
        pool_stop(rn);
        ssm_cuda_runner_destroy(rn->cuda);
        free(rn->mem);
    }
}

/* ---- worker threads (ssm_runner_set_threads) ----------------------------- */

static int step_impl(ssm_runner *rn, ssm_state *const *states, int n, const float *features,
                     const int32_t *tokens, const ssm_outputs *out, unsigned *flags);
static int check_args(const ssm_runner *rn, int n_rows, const float *features,
                      const int32_t *tokens, const ssm_outputs *out);

static void *worker_main(void *arg)
{
    step_worker *w = arg;
    step_pool *p = w->pool;
    unsigned long seen = 0;
    ssm_fp_flush_denormals(); /* as the loop thread: same results on every slice */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->quit)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        step_job *j = &w->job;
        j->rc = j->n > 0 ? step_impl(w->rn, j->states, j->n, j->features, j->tokens,
                                     j->has_out ? &j->out : NULL, j->flags)
                         : SSM_OK;
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_stop(ssm_runner *rn)
{
    step_pool *p = rn->pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; ++i)
        pthread_join(p->w[i].th, NULL);
    for (int i = 0; i < p->n_workers; ++i)
        ssm_runner_destroy(p->w[i].rn);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->w);
    free(p);
    rn->pool = NULL;
}

int ssm_runner_set_threads(ssm_runner *rn, int n_threads, int min_rows, ssm_error *err)
{
    if (!rn || n_threads < 1 || n_threads > 256 || min_rows < 1)
        return ssm_error_set(err, SSM_ERR_INVALID,
                             "ssm_runner_set_threads: %d threads (1..256), min_rows %d (>= 1)",
                             n_threads, min_rows);
    if (rn->cuda)
        return SSM_OK;
    pool_stop(rn);
    if (n_threads == 1)
        return SSM_OK;
    step_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ssm_error_set(err, SSM_ERR_NOMEM, "ssm_runner_set_threads: out of memory");
    p->n_workers = n_threads - 1;
    p->min_rows = min_rows;
    p->w = calloc((size_t)p->n_workers, sizeof *p->w);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    rn->pool = p;
    if (!p->w) {
        pool_stop(rn);
        return ssm_error_set(err, SSM_ERR_NOMEM, "ssm_runner_set_threads: out of memory");
    }
    /* a worker's slice never exceeds max(ceil(max_batch / n_threads),
     * 2·min_rows): with parts = min(n_threads, n / min_rows) >= 2 slices,
     * each holds at most ceil(n / parts) rows */
    long cap = ((long)rn->max_batch + n_threads - 1) / n_threads;
    if (cap < 2L * min_rows)
        cap = 2L * min_rows;
    if (cap > rn->max_batch)
        cap = rn->max_batch;
    for (int i = 0; i < p->n_workers; ++i) {
        int rc = ssm_runner_create(rn->model, (int)cap, 1, rn->flags, &p->w[i].rn, err);
        if (rc < 0) {
            pool_stop(rn);
            return rc;
        }
        p->w[i].pool = p;
    }
    for (int i = 0; i < p->n_workers; ++i) {
        if (pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]) != 0) {
            pool_stop(rn);
            return ssm_error_set(err, SSM_ERR_NOMEM, "ssm_runner_set_threads: cannot start a thread");
        }
        p->started = i + 1;
    }
    return SSM_OK;
}

int ssm_runner_threads(const ssm_runner *rn)
{
    return rn && rn->pool ? rn->pool->n_workers + 1 : 1;
}

/* rows [first, first + n) of a step's inputs and outputs */
static step_job slice_job(const ssm_runner *rn, ssm_state *const *states, int first, int n,
                          const float *features, const int32_t *tokens, const ssm_outputs *out,
                          unsigned *flags)
{
    const ssm_config *c = &rn->model->cfg;
    step_job j = {.states = states + first, .n = n, .has_out = out != NULL};
    size_t f = (size_t)first;
    if (c->input == SSM_INPUT_TOKENS)
        j.tokens = tokens ? tokens + f : NULL;
    else
        j.features = features ? features + f * (size_t)c->n_features : NULL;
    if (out) {
        j.out.mask = out->mask ? out->mask + f * (size_t)c->n_mask : NULL;
        j.out.vad = out->vad ? out->vad + f : NULL;
        j.out.logits = out->logits ? out->logits + f * (size_t)c->vocab_size : NULL;
        j.out.embedding = out->embedding ? out->embedding + f * (size_t)c->d_model : NULL;
    }
    j.flags = flags ? flags + f : NULL;
    return j;
}

static int step_threaded(ssm_runner *rn, ssm_state *const *states, int n, const float *features,
                         const int32_t *tokens, const ssm_outputs *out, unsigned *flags)
{
    step_pool *p = rn->pool; /* arguments checked by ssm_step for the whole batch */
    int parts = p->n_workers + 1;
    if (parts > n / p->min_rows)
        parts = n / p->min_rows; /* >= 2: ssm_step checked n / 2 >= min_rows */
    int base = n / parts, extra = n % parts;
    int first0 = base + (extra > 0);
    pthread_mutex_lock(&p->mu);
    int at = first0;
    for (int i = 0; i < p->n_workers; ++i) {
        int k = i + 1, len = k < parts ? base + (k < extra) : 0;
        p->w[i].job = slice_job(rn, states, at, len, features, tokens, out, flags);
        at += len;
    }
    p->pending = p->n_workers;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    step_job j0 = slice_job(rn, states, 0, first0, features, tokens, out, flags);
    int rc0 = step_impl(rn, j0.states, j0.n, j0.features, j0.tokens, j0.has_out ? &j0.out : NULL,
                        j0.flags);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    int nonfinite = rc0 == SSM_ERR_NONFINITE;
    if (rc0 < 0 && !nonfinite)
        return rc0;
    for (int i = 0; i < p->n_workers; ++i) {
        if (p->w[i].job.rc == SSM_ERR_NONFINITE)
            nonfinite = 1;
        else if (p->w[i].job.rc < 0)
            return p->w[i].job.rc;
    }
    return nonfinite ? SSM_ERR_NONFINITE : SSM_OK;
}

int ssm_runner_cuda_graphed_(const ssm_runner *rn)
{
    return rn && rn->cuda ? ssm_cuda_runner_graphed(rn->cuda) : 0;
}

size_t ssm_runner_bytes(const ssm_runner *rn)
{
    if (!rn)
        return 0;
    size_t b = rn->bytes;
    if (rn->pool)
        for (int i = 0; i < rn->pool->n_workers; ++i)
            b += ssm_runner_bytes(rn->pool->w[i].rn);
    return b;
}

const char *ssm_runner_isa(const ssm_runner *rn)
{
    return rn ? (rn->cuda ? "cuda" : ssm_isa_name(rn->isa)) : "none";
}

const char *ssm_runner_weights(const ssm_runner *rn)
{
    if (!rn)
        return "none";
    if (rn->cuda)
        return (rn->flags & SSM_RUNNER_BF16_WEIGHTS) ? "bf16" : "f32";
    if (rn->step_mode != MODE_PACKED)
        return "f32";
    return rn->wtype == 2 ? "int8" : rn->wtype == 1 ? "f16" : "f32";
}

size_t ssm_model_packed_bytes(const ssm_model *cm)
{
    if (!cm)
        return 0;
    ssm_model *m = (ssm_model *)cm;
    size_t total = 0;
    pthread_mutex_lock(&m->pack_mu);
    for (int k = 0; k < PACK_KINDS; ++k)
        total += m->pack_bytes[k];
    pthread_mutex_unlock(&m->pack_mu);
    return total;
}

/* out {n, P->d_out} = x {n, P->d_in} · Pᵀ + bias, by mode. */
static void lin(const ssm_runner *rn, lin_mode mode, float *out, size_t ld_out, const float *x,
                size_t ld_x, const lin_w *P, const float *bias, int n)
{
    switch (mode) {
    case MODE_PACKED:
        rn->packed(out, ld_out, x, ld_x, lin_weights(rn, mode, P), bias, n, P->d_in, P->d_out);
        break;
    case MODE_BLAS:
        ssm_linear_blas_f32(out, ld_out, x, ld_x, P->w, bias, n, P->d_in, P->d_out);
        break;
    default:
        ssm_linear_f32(out, ld_out, x, ld_x, P->w, bias, n, P->d_in, P->d_out);
        break;
    }
}

static int check_args(const ssm_runner *rn, int n_rows, const float *features,
                      const int32_t *tokens, const ssm_outputs *out)
{
    const ssm_config *c = &rn->model->cfg;
    if (c->input == SSM_INPUT_TOKENS) {
        if (!tokens)
            return SSM_ERR_INVALID;
        for (int i = 0; i < n_rows; ++i)
            if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
                return SSM_ERR_INVALID;
    } else if (!features) {
        return SSM_ERR_INVALID;
    }
    if (out) {
        if ((out->mask && !(c->heads & SSM_HEAD_MASK)) || (out->vad && !(c->heads & SSM_HEAD_VAD)) ||
            (out->logits && !(c->heads & SSM_HEAD_LM)))
            return SSM_ERR_INVALID;
    }
    return SSM_OK;
}

/* r {n, d_model} from the inputs; counts non-finite features per row. */
static void embed(ssm_runner *rn, int n, const float *features, const int32_t *tokens,
                  lin_mode mode)
{
    const ssm_weights *w = rn->model->w;
    const ssm_config *c = &rn->model->cfg;
    size_t dm = (size_t)c->d_model;
    memset(rn->count, 0, (size_t)n * sizeof *rn->count);
    if (c->input == SSM_INPUT_TOKENS) {
        for (int i = 0; i < n; ++i)
            memcpy(rn->r + (size_t)i * dm, w->embedding + (size_t)tokens[i] * dm, dm * sizeof(float));
        return;
    }
    size_t nf = (size_t)c->n_features;
    memcpy(rn->in, features, (size_t)n * nf * sizeof(float));
    ssm_nonfinite_f32(rn->count, rn->in, nf, n, (int)nf, 1);
    lin(rn, mode, rn->r, dm, rn->in, nf, &rn->model->frontend, w->frontend_bias, n);
}

/* Everything of one layer except the conv and the scan, which the caller
 * runs over streams (step) or frames (forward). */
static void layer_in(ssm_runner *rn, const ssm_layer_weights *L, const lin_w *P, int n,
                     lin_mode mode)
{
    const ssm_config *c = &rn->model->cfg;
    size_t dm = (size_t)c->d_model;
    ssm_rmsnorm_f32(rn->hn, dm, rn->r, dm, L->norm, n, c->d_model, c->norm_eps);
    lin(rn, mode, rn->xz, (size_t)L->d_in_proj, rn->hn, dm, &P[LIN_IN], L->in_proj_bias, n);
}

static void layer_mid(ssm_runner *rn, const ssm_layer_weights *L, const lin_w *P, int n,
                      lin_mode mode)
{
    const ssm_config *c = &rn->model->cfg;
    size_t di = (size_t)c->d_inner;
    int ndbc = c->dt_rank + 2 * c->d_state;
    lin(rn, mode, rn->dbc, (size_t)ndbc, rn->xc, di, &P[LIN_X], NULL, n);
    lin(rn, mode, rn->dt, di, rn->dbc, (size_t)ndbc, &P[LIN_DT], NULL, n);
    rn->softplus(rn->dt, di, rn->dt, di, L->dt_proj_bias, n, c->d_inner);
}

static void layer_out(ssm_runner *rn, const ssm_layer_weights *L, const lin_w *P, int n,
                      lin_mode mode, int gated)
{
    const ssm_config *c = &rn->model->cfg;
    size_t dm = (size_t)c->d_model, di = (size_t)L->d_inner;
    if (!gated)
        rn->gate(rn->y, di, rn->xz + di, 2 * di, n, L->d_inner);
    lin(rn, mode, rn->hn, dm, rn->y, di, &P[LIN_OUT], L->out_proj_bias, n);
    ssm_add_f32(rn->r, dm, rn->hn, dm, n, c->d_model);
}

/* The block's gated MLP (mamba_ssm Block with GatedMLP): r ← r + fc2((y ⊙
 * SiLU(gate)) with [y | gate] = fc1(RMSNorm(r)·norm2)); nothing without one. */
static void layer_mlp(ssm_runner *rn, const ssm_layer_weights *L, const lin_w *P, int n,
                      lin_mode mode)
{
    if (!L->mlp_fc1)
        return;
    const ssm_config *c = &rn->model->cfg;
    size_t dm = (size_t)c->d_model, dh = (size_t)c->d_intermediate;
    ssm_rmsnorm_f32(rn->hn, dm, rn->r, dm, L->norm2, n, c->d_model, c->norm_eps);
    lin(rn, mode, rn->xz, 2 * dh, rn->hn, dm, &P[LIN_FC1], NULL, n);
    for (int i = 0; i < n; ++i)
        memcpy(rn->y + (size_t)i * dh, rn->xz + (size_t)i * 2 * dh, dh * sizeof(float));
    rn->gate(rn->y, dh, rn->xz + dh, 2 * dh, n, c->d_intermediate);
    lin(rn, mode, rn->hn, dm, rn->y, dh, &P[LIN_FC2], NULL, n);
    ssm_add_f32(rn->r, dm, rn->hn, dm, n, c->d_model);
}

static void heads(ssm_runner *rn, int n, const ssm_outputs *out, lin_mode mode)
{
    const ssm_weights *w = rn->model->w;
    const ssm_config *c = &rn->model->cfg;
    size_t dm = (size_t)c->d_model;
    ssm_rmsnorm_f32(rn->hf, dm, rn->r, dm, w->norm_f, n, c->d_model, c->norm_eps);
    if (!out)
        return;
    if (out->mask) {
        if (c->n_mask_bands) { /* band logits, then each output a weighted sum of a few of them */
            size_t nb = (size_t)c->n_mask_bands, nm = (size_t)c->n_mask;
            lin(rn, mode, rn->mband, nb, rn->hf, dm, &rn->model->mask, w->mask_b, n);
            const int *row = w->mask_interp_row, *col = w->mask_interp_col;
            const float *val = w->mask_interp_val;
            /* out_k = p_0 + p_1 + … over the row's nonzero entries in column order
             * (p = val·logit; 0 for an empty row); rows of two entries, the linear
             * interpolation's, in one step */
            for (int i = 0; i < n; ++i) {
                const float *b = rn->mband + (size_t)i * nb;
                float *o = out->mask + (size_t)i * nm;
                for (size_t k = 0; k < nm; ++k) {
                    const int e0 = row[k], e1 = row[k + 1];
                    if (e1 - e0 == 2) {
                        o[k] = val[e0] * b[col[e0]] + val[e0 + 1] * b[col[e0 + 1]];
                        continue;
                    }
                    float acc = e1 > e0 ? val[e0] * b[col[e0]] : 0.0f;
                    for (int e = e0 + 1; e < e1; ++e)
                        acc += val[e] * b[col[e]];
                    o[k] = acc;
                }
            }
        } else {
            lin(rn, mode, out->mask, (size_t)c->n_mask, rn->hf, dm, &rn->model->mask, w->mask_b, n);
        }
        rn->sigmoid(out->mask, (size_t)c->n_mask, n, c->n_mask);
    }
    if (out->vad) {
        lin(rn, mode, out->vad, 1, rn->hf, dm, &rn->model->vad, w->vad_b, n);
        rn->sigmoid(out->vad, 1, n, 1);
    }
    if (out->logits)
        lin(rn, mode, out->logits, (size_t)c->vocab_size, rn->hf, dm, &rn->model->lm, NULL, n);
    if (out->embedding)
        memcpy(out->embedding, rn->hf, (size_t)n * dm * sizeof(float));
}

static void zero_rows(const ssm_model *m, const ssm_outputs *out, int first, int n)
{
    const ssm_config *c = &m->cfg;
    if (!out)
        return;
    if (out->mask)
        memset(out->mask + (size_t)first * c->n_mask, 0, (size_t)n * c->n_mask * sizeof(float));
    if (out->vad)
        memset(out->vad + first, 0, (size_t)n * sizeof(float));
    if (out->logits)
        memset(out->logits + (size_t)first * c->vocab_size, 0,
               (size_t)n * c->vocab_size * sizeof(float));
    if (out->embedding)
        memset(out->embedding + (size_t)first * c->d_model, 0,
               (size_t)n * c->d_model * sizeof(float));
}

static int step_finish(ssm_runner *rn, ssm_state *const *states, int n, const ssm_outputs *out,
                       unsigned *flags);

static int step_threaded(ssm_runner *rn, ssm_state *const *states, int n, const float *features,
                         const int32_t *tokens, const ssm_outputs *out, unsigned *flags);

int ssm_step(ssm_runner *rn, ssm_state *const *states, int n, const float *features,
             const int32_t *tokens, const ssm_outputs *out, unsigned *flags)
{
    /* the whole batch is checked before any state (or worker slice) is touched */
    if (!rn || !states || n < 1 || n > rn->max_batch)
        return SSM_ERR_INVALID;
    for (int i = 0; i < n; ++i)
        if (!states[i] || states[i]->model != rn->model)
            return SSM_ERR_INVALID;
    int rc = check_args(rn, n, features, tokens, out);
    if (rc < 0)
        return rc;
    if (rn->pool && n / 2 >= rn->pool->min_rows)
        return step_threaded(rn, states, n, features, tokens, out, flags);
    return step_impl(rn, states, n, features, tokens, out, flags);
}

/* One step of n checked streams on rn (the caller's runner, or a worker's
 * for its slice, which never exceeds the worker's max_batch). */
static int step_impl(ssm_runner *rn, ssm_state *const *states, int n, const float *features,
                     const int32_t *tokens, const ssm_outputs *out, unsigned *flags)
{
    assert(n >= 1 && n <= rn->max_batch);
    const ssm_model *m = rn->model;
    int rc;
    if (rn->cuda) {
        for (int i = 0; i < n; ++i)
            rn->conv_ptr[i] = states[i]->dev;
        rc = ssm_cuda_run(rn->cuda, rn->conv_ptr, n, 1, features, tokens, out, rn->count,
                          rn->bad);
        if (rc < 0)
            return rc;
        return step_finish(rn, states, n, out, flags);
    }
    const ssm_weights *w = m->w;
    const ssm_config *c = &m->cfg;
    lin_mode mode = rn->step_mode;
    size_t dm = (size_t)c->d_model;

    embed(rn, n, features, tokens, mode);
    for (int l = 0; l < c->n_layer; ++l) {
        const ssm_layer_weights *L = &w->layers[l];
        const lin_w *P = m->layer_lin + (size_t)l * LIN_PER_LAYER;
        size_t di = (size_t)L->d_inner, conv_sz = (size_t)L->conv_dim * (size_t)L->d_conv;
        for (int i = 0; i < n; ++i) {
            rn->conv_ptr[i] = state_data(states[i]) + m->layer_off[l];
            rn->ssm_ptr[i] = rn->conv_ptr[i] + conv_sz;
        }
        layer_in(rn, L, P, n, mode);
        if (L->kind == SSM_LAYER_ATTENTION)
            /* RoPE, ring write, softmax over the window: stream by stream */
            ssm_attn_step(&rn->attn[l], rn->y, di, rn->xz, (size_t)L->d_in_proj, rn->conv_ptr, n,
                          rn->mix_scratch);
        else if (L->kind == SSM_LAYER_MAMBA2)
            /* conv of xBC, softplus, scan per head, gated RMSNorm: tile by tile */
            ssm_mixer2_step(&rn->mixer2[l], rn->y, di, rn->xz, (size_t)L->d_in_proj, rn->conv_ptr,
                            rn->ssm_ptr, n, rn->mix_scratch);
        else
            /* conv, x_proj, dt_proj + softplus, scan, gate: tile by tile */
            ssm_mixer_step(&rn->mixer[l], rn->y, di, rn->xz, 2 * di, rn->conv_ptr, rn->ssm_ptr, n,
                           rn->mix_scratch);
        layer_out(rn, L, P, n, mode, 1);
        layer_mlp(rn, L, P, n, mode);
    }
    memset(rn->bad, 0, (size_t)n);
    for (int i = 0; i < n; ++i) {
        size_t cnt = 0;
        ssm_nonfinite_f32(&cnt, rn->r + (size_t)i * dm, dm, 1, c->d_model, 1);
        if (cnt)
            rn->bad[i] = 1;
    }
    heads(rn, n, out, mode);
    return step_finish(rn, states, n, out, flags);
}

/* Counters, resets and flags of a step from rn->count and rn->bad. */
static int step_finish(ssm_runner *rn, ssm_state *const *states, int n, const ssm_outputs *out,
                       unsigned *flags)
{
    const ssm_model *m = rn->model;
    int n_bad = 0;
    for (int i = 0; i < n; ++i) {
        ssm_state *s = states[i];
        unsigned f = 0;
        s->stats.n_frames++;
        if (rn->count[i]) {
            s->stats.n_nonfinite_inputs += rn->count[i];
            f |= SSM_FLAG_NONFINITE_INPUT;
        }
        if (rn->bad[i]) {
            ++n_bad;
            state_zero(s);
            s->stats.n_resets++;
            zero_rows(m, out, i, 1);
            f |= SSM_FLAG_RESET;
        }
        if (flags)
            flags[i] = f;
    }
    return n_bad ? SSM_ERR_NONFINITE : SSM_OK;
}

static int forward_finish(ssm_runner *rn, ssm_state *s, int n, const ssm_outputs *out,
                          unsigned *flags, int bad);

int ssm_forward(ssm_runner *rn, ssm_state *s, int n, const float *features,
                const int32_t *tokens, const ssm_outputs *out, unsigned *flags)
{
    if (!rn || !s || n < 1 || n > rn->max_chunk || s->model != rn->model)
        return SSM_ERR_INVALID;
    const ssm_model *m = rn->model;
    int rc = check_args(rn, n, features, tokens, out);
    if (rc < 0)
        return rc;
    if (rn->cuda) {
        rn->conv_ptr[0] = s->dev;
        rc = ssm_cuda_run(rn->cuda, rn->conv_ptr, 1, n, features, tokens, out, rn->count,
                          rn->bad);
        if (rc < 0)
            return rc;
        int any_bad = 0;
        for (int t = 0; t < n; ++t)
            any_bad |= rn->bad[t];
        return forward_finish(rn, s, n, out, flags, any_bad);
    }
    const ssm_weights *w = m->w;
    const ssm_config *c = &m->cfg;
    lin_mode mode = rn->fwd_mode;
    size_t dm = (size_t)c->d_model;
    size_t ndbc = (size_t)c->dt_rank + 2 * (size_t)c->d_state;

    embed(rn, n, features, tokens, mode);
    for (int l = 0; l < c->n_layer; ++l) {
        const ssm_layer_weights *L = &w->layers[l];
        const lin_w *P = m->layer_lin + (size_t)l * LIN_PER_LAYER;
        size_t di = (size_t)L->d_inner;
        float *conv = state_data(s) + m->layer_off[l];
        float *ssm = conv + (size_t)L->conv_dim * (size_t)L->d_conv;
        layer_in(rn, L, P, n, mode);
        if (L->kind == SSM_LAYER_ATTENTION) {
            /* frame by frame through the ring: the bits of the steps */
            ssm_attn_forward(&rn->attn[l], rn->y, di, rn->xz, (size_t)L->d_in_proj, conv, n,
                             rn->mix_scratch);
            layer_out(rn, L, P, n, mode, 1);
            layer_mlp(rn, L, P, n, mode);
            continue;
        }
        if (L->kind == SSM_LAYER_MAMBA2) {
            /* conv frame by frame, then the scan frame by frame or (SSM_RUNNER_SSD_FORWARD)
             * in the chunked SSD form, from the stream's state */
            ssm_mixer2_forward(&rn->mixer2[l], rn->y, di, rn->xz, (size_t)L->d_in_proj, conv, ssm,
                               n, rn->mix_scratch);
            layer_out(rn, L, P, n, mode, 1);
            layer_mlp(rn, L, P, n, mode);
            continue;
        }
        /* the recurrences walk the frames in order, one row at a time */
        for (int t = 0; t < n; ++t)
            rn->conv(rn->xc + (size_t)t * di, di, &conv, rn->xz + (size_t)t * 2 * di,
                              2 * di, L->conv1d, L->conv1d_bias, 1, c->d_inner, c->d_conv);
        layer_mid(rn, L, P, n, mode);
        for (int t = 0; t < n; ++t) {
            const float *bc = rn->dbc + (size_t)t * ndbc + c->dt_rank;
            rn->scan(rn->y + (size_t)t * di, di, &ssm, rn->xc + (size_t)t * di, di,
                              rn->dt + (size_t)t * di, di, L->A, bc, bc + c->d_state, ndbc, L->D,
                              c->delta_A_min, 1, c->d_inner, c->d_state);
        }
        layer_out(rn, L, P, n, mode, 0);
        layer_mlp(rn, L, P, n, mode);
    }
    size_t bad = ssm_nonfinite_f32(NULL, rn->r, dm, n, c->d_model, 1);
    heads(rn, n, out, mode);
    return forward_finish(rn, s, n, out, flags, bad != 0);
}

/* Counters, reset and flags of a forward from rn->count and the reset verdict. */
static int forward_finish(ssm_runner *rn, ssm_state *s, int n, const ssm_outputs *out,
                          unsigned *flags, int bad)
{
    const ssm_model *m = rn->model;
    size_t n_in = 0;
    for (int t = 0; t < n; ++t)
        n_in += rn->count[t];
    unsigned f = 0;
    s->stats.n_frames += (uint64_t)n;
    if (n_in) {
        s->stats.n_nonfinite_inputs += n_in;
        f |= SSM_FLAG_NONFINITE_INPUT;
    }
    if (bad) {
        state_zero(s);
        s->stats.n_resets++;
        zero_rows(m, out, 0, n);
        f |= SSM_FLAG_RESET;
    }
    if (flags)
        *flags = f;
    return bad ? SSM_ERR_NONFINITE : SSM_OK;
}
