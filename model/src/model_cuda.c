/* SPDX-License-Identifier: MIT */
/* CUDA backend of model.c (model_cuda.h): weights uploaded once, per-stream
 * states in a device pool, and runners that run one frame of B streams (or a
 * chunk of one stream) as ONE CUDA graph launch.
 *
 * A frame, per Mamba-1 layer: RMSNorm → in_proj (cuBLAS) → conv+SiLU (one kernel,
 * conv state in registers) → x_proj, dt_proj (cuBLAS) → the fused scan
 * (softplus, exp, state update, C readout, D skip, SiLU(z) gate; SSM state
 * read once and written once) → out_proj accumulated into the residual by
 * cuBLAS (beta = 1).  Seven launches per layer, captured with the embedding,
 * the heads and the host↔device copies of inputs and outputs into a graph per
 * (batch, frames, heads) shape: a step is one cudaGraphLaunch plus a
 * synchronisation.  Projections are fp32 cuBLAS sgemm (CUBLAS_DEFAULT_MATH: no
 * TF32), or with SSM_CUDA_BF16 bf16 weights × bf16 activations accumulated
 * in fp32 (cublasGemmEx, CUBLAS_COMPUTE_32F).
 *
 * Mixed stacks (model.c's other layer kinds; NOT YET RUN ON A GPU, see
 * kernels/ssm_kernels_cuda.h): a Mamba-2 layer is RMSNorm → in_proj (z | xBC
 * | dt) → conv+SiLU over xBC (the Mamba-1 conv kernel, conv_dim channels) →
 * the scan over heads (softplus fused) → gated RMSNorm with z → out_proj; an
 * attention layer is RMSNorm → in_proj (q | k | v | mlp) → the window
 * kernel (RoPE, ring write, softmax) → the mlp_dim gate → out_proj; a block
 * with a gated MLP adds RMSNorm(norm2) → fc1 → y·SiLU(gate) → fc2 into the
 * residual.  A stream's payload is model.c's: the layers one after the
 * other, each its conv then SSM state, or its KV ring and frame counter
 * (ssm_attn_state_floats), so snapshots move between the backends.
 */
#define _GNU_SOURCE /* dladdr */
#include "model_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ssm_kernels.h"
#include "kernels/ssm_kernels_cuda.h"

typedef struct dlin {
    const float *w;     /* {d_out, d_in} fp32 */
    const uint16_t *wb; /* {d_out, d_in} bf16 */
    const float *bias;  /* {d_out} or NULL */
    int d_in, d_out;
} dlin;

/* One layer on the device.  Mamba-1: conv_w {d_inner, d_conv}, dt_bias
 * {d_inner}, A {d_inner, d_state}, D {d_inner}.  Mamba-2: conv_w {conv_dim,
 * d_conv}, dt_bias, A, D {n_heads}, norm_gated {d_inner}.  Attention:
 * inv_freq {rot_dim/2} (float64).  norm2, fc1, fc2: the block's gated MLP or
 * NULL. */
typedef struct dlayer {
    ssm_layer_kind kind;
    int d_inner, d_state, d_conv, conv_dim, n_heads, head_dim, n_groups, d_in_proj;
    size_t off; /* floats into a stream's payload: the layer's conv state (or KV ring) */
    const float *norm, *conv_w, *conv_b, *dt_bias, *A, *D, *norm_gated, *norm2;
    const double *inv_freq;
    dlin in, x, dt, out, fc1, fc2;
} dlayer;

struct ssm_cuda_model {
    ssm_config cfg;
    int device;
    char name[256];
    unsigned char *arena; /* every weight, one cudaMalloc */
    size_t arena_bytes;
    dlayer *layers;
    const float *embedding, *norm_f;
    dlin frontend, mask, vad, lm;
    size_t state_floats; /* a stream's payload, model.c's layout */
    int max_in;          /* widest in_proj / fc1 output row */
    int max_mid;         /* widest conv output row (Mamba-1 d_inner, Mamba-2 conv_dim) */
    int max_inner;       /* widest out_proj / fc2 input row */
    /* state pool: chunks of per_chunk payloads, free list of payloads */
    pthread_mutex_t mu;
    void **chunks;
    size_t n_chunks, cap_chunks;
    float **free_list;
    size_t n_free, cap_free;
    size_t slot_bytes, per_chunk;
};

static int cuda_fail(ssm_error *err, cudaError_t e, const char *what)
{
    return ssm_error_set(err, e == cudaErrorMemoryAllocation ? SSM_ERR_NOMEM : SSM_ERR_BACKEND,
                         "cuda: %s: %s", what, cudaGetErrorString(e));
}

/* ---- cuBLAS, opened on first use ----------------------------------------
 * libcublas is loaded with dlopen when a CUDA model is probed, not linked:
 * linking it costs every process ~150 MB of resident memory (the loader's
 * relocations of libcublas and libcublasLt) even when the model runs on the
 * CPU (measured: a process linked with libcudart alone 1.5 MB, with
 * libcublas too 155 MB).  The calls below go through this table; the
 * cublas_v2.h names are macros for the _v2 symbols. */
#define STR_(x) #x
#define STR(x) STR_(x)
static struct {
    int ok;
    char why[256];
    /* the prototypes of cublas_api.h, so a mismatch fails to compile */
    __typeof__(&cublasCreate_v2) create;
    __typeof__(&cublasDestroy_v2) destroy;
    __typeof__(&cublasSetStream_v2) set_stream;
    __typeof__(&cublasSetWorkspace_v2) set_workspace;
    __typeof__(&cublasSetMathMode) set_math_mode;
    __typeof__(&cublasGetStatusString) status_string;
    __typeof__(&cublasSgemm_v2) sgemm;
    __typeof__(&cublasGemmEx) gemm_ex;
} g_blas;
static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;

static void blas_open(void)
{
    const char *lib = "libcublas.so." STR(CUBLAS_VER_MAJOR);
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        /* not on the loader's path: try the directory libcudart came from */
        Dl_info info;
        const char *slash;
        char path[1024];
        union { __typeof__(&cudaGetDeviceCount) f; void *p; } sym = {.f = cudaGetDeviceCount};
        if (dladdr(sym.p, &info) && info.dli_fname &&
            (slash = strrchr(info.dli_fname, '/')) != NULL &&
            snprintf(path, sizeof path, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname,
                     lib) < (int)sizeof path)
            h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h) {
        const char *e = dlerror();
        snprintf(g_blas.why, sizeof g_blas.why, "cuBLAS not loadable (%s)", e ? e : lib);
        return;
    }
    struct { void **fn; const char *name; } syms[] = {
        {(void **)&g_blas.create, "cublasCreate_v2"},
        {(void **)&g_blas.destroy, "cublasDestroy_v2"},
        {(void **)&g_blas.set_stream, "cublasSetStream_v2"},
        {(void **)&g_blas.set_workspace, "cublasSetWorkspace_v2"},
        {(void **)&g_blas.set_math_mode, "cublasSetMathMode"},
        {(void **)&g_blas.status_string, "cublasGetStatusString"},
        {(void **)&g_blas.sgemm, "cublasSgemm_v2"},
        {(void **)&g_blas.gemm_ex, "cublasGemmEx"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; ++i) {
        *syms[i].fn = dlsym(h, syms[i].name);
        if (!*syms[i].fn) {
            snprintf(g_blas.why, sizeof g_blas.why, "cuBLAS: %s has no %s", lib, syms[i].name);
            return; /* the library stays loaded: harmless, and dlclose is not thread-safe here */
        }
    }
    g_blas.ok = 1;
}

/* 1 when cuBLAS is usable; else 0 and the reason in why. */
static int blas_ready(char *why, size_t why_size)
{
    pthread_once(&g_blas_once, blas_open);
    if (!g_blas.ok && why)
        snprintf(why, why_size, "%s", g_blas.why);
    return g_blas.ok;
}

int ssm_cuda_probe(int device, char *why, size_t why_size)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why)
            snprintf(why, why_size, "no usable CUDA device or driver (cudaGetDeviceCount: %s)",
                     cudaGetErrorString(e));
        (void)cudaGetLastError();
        return 0;
    }
    if (n < 1 || device < 0 || device >= n) {
        if (why)
            snprintf(why, why_size, "CUDA device %d not present (%d device%s)", device, n,
                     n == 1 ? "" : "s");
        return 0;
    }
    /* the kernels carry machine code for gpu_archs and PTX of the lowest:
     * an older GPU could not run them */
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) == cudaSuccess &&
        prop.major * 10 + prop.minor < SSM_CUDA_MIN_ARCH) {
        if (why)
            snprintf(why, why_size,
                     "CUDA device %d (%s) has compute capability %d.%d; this build's kernels "
                     "need %d.%d or newer (rebuild with meson -Dgpu_archs=%d%d,...)",
                     device, prop.name, prop.major, prop.minor, SSM_CUDA_MIN_ARCH / 10,
                     SSM_CUDA_MIN_ARCH % 10, prop.major, prop.minor);
        return 0;
    }
    return blas_ready(why, why_size);
}

/* ---- weights ----------------------------------------------------------- */

/* Pass 1 (arena NULL): adds n floats (and n bf16 when bf16) to *off.
 * Pass 2: copies src there and returns the device pointers. */
typedef struct upl {
    unsigned char *arena;
    unsigned char *host; /* staging image of the arena */
    size_t off;
} upl;

static const double *put_f64(upl *u, const double *src, size_t n)
{
    if (!src)
        return NULL;
    size_t at = u->off;
    u->off += (n * sizeof(double) + 255) / 256 * 256;
    if (!u->host)
        return NULL;
    memcpy(u->host + at, src, n * sizeof(double));
    return (const double *)(u->arena + at);
}

static const float *put(upl *u, const float *src, size_t n)
{
    if (!src)
        return NULL;
    size_t at = u->off;
    u->off += (n * sizeof(float) + 255) / 256 * 256;
    if (!u->host)
        return NULL;
    memcpy(u->host + at, src, n * sizeof(float));
    return (const float *)(u->arena + at);
}

static uint16_t to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu))
        return (uint16_t)((b >> 16) | 0x40u); /* quiet NaN */
    b += 0x7fffu + ((b >> 16) & 1u);          /* round to nearest even */
    return (uint16_t)(b >> 16);
}

static void put_lin(upl *u, dlin *L, const float *w, const float *bias, int d_in, int d_out)
{
    L->d_in = d_in;
    L->d_out = d_out;
    L->w = put(u, w, (size_t)d_in * d_out);
    L->bias = put(u, bias, (size_t)d_out);
    L->wb = NULL;
    if (!w)
        return;
    size_t n = (size_t)d_in * d_out, at = u->off;
    u->off += (n * 2 + 255) / 256 * 256;
    if (!u->host)
        return;
    uint16_t *dst = (uint16_t *)(u->host + at);
    for (size_t i = 0; i < n; ++i)
        dst[i] = to_bf16(w[i]);
    L->wb = (const uint16_t *)(u->arena + at);
}

static void lay_out(ssm_cuda_model *cm, const ssm_weights *w, upl *u)
{
    const ssm_config *c = &cm->cfg;
    int dm = c->d_model, R = c->dt_rank, dh = c->d_intermediate;
    u->off = 0;
    for (int l = 0; l < c->n_layer; ++l) {
        const ssm_layer_weights *L = &w->layers[l];
        dlayer *D = &cm->layers[l];
        int di = L->d_inner, N = L->d_state;
        D->norm = put(u, L->norm, (size_t)dm);
        put_lin(u, &D->in, L->in_proj, L->in_proj_bias, dm, L->d_in_proj);
        put_lin(u, &D->out, L->out_proj, L->out_proj_bias, di, dm);
        if (L->kind == SSM_LAYER_MAMBA1) {
            D->conv_w = put(u, L->conv1d, (size_t)di * L->d_conv);
            D->conv_b = put(u, L->conv1d_bias, (size_t)di);
            put_lin(u, &D->x, L->x_proj, NULL, di, R + 2 * N);
            put_lin(u, &D->dt, L->dt_proj, NULL, R, di);
            D->dt_bias = put(u, L->dt_proj_bias, (size_t)di);
            D->A = put(u, L->A, (size_t)di * N);
            D->D = put(u, L->D, (size_t)di);
        } else if (L->kind == SSM_LAYER_MAMBA2) {
            D->conv_w = put(u, L->conv1d, (size_t)L->conv_dim * L->d_conv);
            D->conv_b = put(u, L->conv1d_bias, (size_t)L->conv_dim);
            D->dt_bias = put(u, L->dt_bias, (size_t)L->n_heads);
            D->A = put(u, L->A, (size_t)L->n_heads);
            D->D = put(u, L->D, (size_t)L->n_heads);
            D->norm_gated = put(u, L->norm_gated, (size_t)di);
        } else {
            D->inv_freq = put_f64(u, L->rope_inv_freq, (size_t)(c->at_rot_dim / 2));
        }
        if (L->mlp_fc1) {
            D->norm2 = put(u, L->norm2, (size_t)dm);
            put_lin(u, &D->fc1, L->mlp_fc1, NULL, dm, 2 * dh);
            put_lin(u, &D->fc2, L->mlp_fc2, NULL, dh, dm);
        }
    }
    cm->embedding = put(u, w->embedding, (size_t)c->vocab_size * dm);
    put_lin(u, &cm->frontend, w->frontend_proj, w->frontend_bias,
            c->input == SSM_INPUT_FEATURES ? c->n_features : 1, dm);
    cm->norm_f = put(u, w->norm_f, (size_t)dm);
    put_lin(u, &cm->mask, w->mask_w, w->mask_b, dm, c->n_mask > 0 ? c->n_mask : 1);
    put_lin(u, &cm->vad, w->vad_w, w->vad_b, dm, 1);
    put_lin(u, &cm->lm, w->lm_head, NULL, dm, c->vocab_size > 0 ? c->vocab_size : 1);
}

int ssm_cuda_model_create(const ssm_weights *w, int device, ssm_cuda_model **out,
                          ssm_error *err)
{
    *out = NULL;
    const ssm_config *c = &w->cfg;
    for (int l = 0; l < c->n_layer; ++l) {
        const ssm_layer_weights *L = &w->layers[l];
        if (L->kind == SSM_LAYER_ATTENTION) {
            if (c->at_head_dim > SSM_CUDA_MAX_HEAD_DIM)
                return ssm_error_set(err, SSM_ERR_BACKEND,
                                     "cuda: attention head_dim %d above the kernels' limit %d",
                                     c->at_head_dim, SSM_CUDA_MAX_HEAD_DIM);
        } else if (L->d_conv > SSM_CUDA_MAX_D_CONV || L->d_state > SSM_CUDA_MAX_D_STATE) {
            return ssm_error_set(err, SSM_ERR_BACKEND,
                                 "cuda: %s layer %d: d_conv %d / d_state %d above the kernels' "
                                 "limits %d / %d",
                                 L->kind == SSM_LAYER_MAMBA2 ? "Mamba-2" : "Mamba-1", l,
                                 L->d_conv, L->d_state, SSM_CUDA_MAX_D_CONV,
                                 SSM_CUDA_MAX_D_STATE);
        }
    }
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess)
        return cuda_fail(err, e, "cudaSetDevice");
    ssm_cuda_model *cm = calloc(1, sizeof *cm);
    if (!cm)
        return ssm_error_set(err, SSM_ERR_NOMEM, "cuda: out of host memory");
    cm->cfg = *c;
    cm->device = device;
    pthread_mutex_init(&cm->mu, NULL);
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) == cudaSuccess)
        snprintf(cm->name, sizeof cm->name, "%s", prop.name);
    cm->layers = calloc((size_t)c->n_layer, sizeof *cm->layers);
    if (!cm->layers) {
        ssm_cuda_model_free(cm);
        return ssm_error_set(err, SSM_ERR_NOMEM, "cuda: out of host memory");
    }
    /* geometry and payload layout, as model.c lays a state out (the loader
     * bounded every size, model.c checked the sum) */
    size_t total = 0;
    for (int l = 0; l < c->n_layer; ++l) {
        const ssm_layer_weights *L = &w->layers[l];
        dlayer *D = &cm->layers[l];
        D->kind = L->kind;
        D->d_inner = L->d_inner;
        D->d_state = L->d_state;
        D->d_conv = L->d_conv;
        D->conv_dim = L->conv_dim;
        D->n_heads = L->n_heads;
        D->head_dim = L->head_dim;
        D->n_groups = L->n_groups;
        D->d_in_proj = L->d_in_proj;
        D->off = total;
        if (L->kind == SSM_LAYER_ATTENTION) {
            ssm_attn ag = {.n_heads = c->at_n_heads, .n_heads_kv = c->at_n_heads_kv,
                           .head_dim = c->at_head_dim, .window = c->at_window};
            total += ssm_attn_state_floats(&ag);
        } else {
            total += (size_t)L->conv_dim * L->d_conv + (size_t)L->d_inner * L->d_state;
        }
        int mid = L->kind == SSM_LAYER_ATTENTION ? 1 : L->conv_dim;
        cm->max_in = L->d_in_proj > cm->max_in ? L->d_in_proj : cm->max_in;
        cm->max_mid = mid > cm->max_mid ? mid : cm->max_mid;
        cm->max_inner = L->d_inner > cm->max_inner ? L->d_inner : cm->max_inner;
    }
    if (c->d_intermediate > 0) {
        cm->max_in = 2 * c->d_intermediate > cm->max_in ? 2 * c->d_intermediate : cm->max_in;
        cm->max_inner = c->d_intermediate > cm->max_inner ? c->d_intermediate : cm->max_inner;
    }
    cm->state_floats = total;
    cm->slot_bytes = (cm->state_floats * sizeof(float) + 255) / 256 * 256;
    size_t per = ((size_t)64 << 20) / cm->slot_bytes;
    cm->per_chunk = per < 16 ? 16 : per;
    /* a banded mask head runs on the GPU folded into a per-output one:
     * W = interp·W_bands, b = interp·b_bands (the CPU runs it banded) */
    ssm_weights wf = *w;
    float *fold = NULL;
    if (w->mask_interp) {
        size_t nm = (size_t)c->n_mask, nb = (size_t)c->n_mask_bands, dm = (size_t)c->d_model;
        fold = calloc(nm * dm + nm, sizeof *fold);
        if (!fold) {
            ssm_cuda_model_free(cm);
            return ssm_error_set(err, SSM_ERR_NOMEM, "cuda: out of host memory");
        }
        for (size_t k = 0; k < nm; ++k)
            for (size_t j = 0; j < nb; ++j) {
                float x = w->mask_interp[k * nb + j];
                if (x == 0.0f)
                    continue;
                for (size_t i = 0; i < dm; ++i)
                    fold[k * dm + i] += x * w->mask_w[j * dm + i];
                if (w->mask_b)
                    fold[nm * dm + k] += x * w->mask_b[j];
            }
        wf.mask_w = fold;
        wf.mask_b = fold + nm * dm;
    }
    w = &wf;
    upl u = {0};
    lay_out(cm, w, &u); /* sizes */
    cm->arena_bytes = u.off ? u.off : 256;
    e = cudaMalloc((void **)&cm->arena, cm->arena_bytes);
    if (e != cudaSuccess) {
        free(fold);
        ssm_cuda_model_free(cm);
        return cuda_fail(err, e, "weights");
    }
    u.arena = cm->arena;
    u.host = calloc(1, cm->arena_bytes);
    if (!u.host) {
        free(fold);
        ssm_cuda_model_free(cm);
        return ssm_error_set(err, SSM_ERR_NOMEM, "cuda: out of host memory");
    }
    lay_out(cm, w, &u); /* staging image + device pointers */
    e = cudaMemcpy(cm->arena, u.host, cm->arena_bytes, cudaMemcpyHostToDevice);
    if (e == cudaSuccess)
        e = cudaDeviceSynchronize(); /* the runners' streams do not wait for the legacy one */
    free(u.host);
    free(fold);
    if (e != cudaSuccess) {
        ssm_cuda_model_free(cm);
        return cuda_fail(err, e, "weights upload");
    }
    *out = cm;
    return SSM_OK;
}

void ssm_cuda_model_free(ssm_cuda_model *cm)
{
    if (!cm)
        return;
    for (size_t i = 0; i < cm->n_chunks; ++i)
        cudaFree(cm->chunks[i]);
    free(cm->chunks);
    free(cm->free_list);
    cudaFree(cm->arena);
    free(cm->layers);
    pthread_mutex_destroy(&cm->mu);
    free(cm);
}

size_t ssm_cuda_model_bytes(const ssm_cuda_model *cm)
{
    return cm ? cm->arena_bytes : 0;
}

const char *ssm_cuda_model_device(const ssm_cuda_model *cm)
{
    return cm ? cm->name : "";
}

/* ---- states ------------------------------------------------------------ */

int ssm_cuda_state_alloc(ssm_cuda_model *cm, float **dev)
{
    *dev = NULL;
    pthread_mutex_lock(&cm->mu);
    if (cm->n_free == 0) {
        if (cm->n_chunks == cm->cap_chunks) {
            size_t cap = cm->cap_chunks ? 2 * cm->cap_chunks : 16;
            void **p = realloc(cm->chunks, cap * sizeof *p);
            if (!p)
                goto nomem;
            cm->chunks = p;
            cm->cap_chunks = cap;
        }
        if (cm->cap_free < cm->per_chunk * (cm->n_chunks + 1)) {
            size_t cap = cm->per_chunk * (cm->n_chunks + 1);
            float **p = realloc(cm->free_list, cap * sizeof *p);
            if (!p)
                goto nomem;
            cm->free_list = p;
            cm->cap_free = cap;
        }
        unsigned char *chunk = NULL;
        if (cudaMalloc((void **)&chunk, cm->per_chunk * cm->slot_bytes) != cudaSuccess) {
            (void)cudaGetLastError();
            goto nomem;
        }
        cm->chunks[cm->n_chunks++] = chunk;
        for (size_t i = cm->per_chunk; i-- > 0;)
            cm->free_list[cm->n_free++] = (float *)(chunk + i * cm->slot_bytes);
    }
    float *p = cm->free_list[--cm->n_free];
    pthread_mutex_unlock(&cm->mu);
    if (ssm_cuda_state_zero(cm, p) != SSM_OK) {
        ssm_cuda_state_free(cm, p);
        return SSM_ERR_BACKEND;
    }
    *dev = p;
    return SSM_OK;
nomem:
    pthread_mutex_unlock(&cm->mu);
    return SSM_ERR_NOMEM;
}

void ssm_cuda_state_free(ssm_cuda_model *cm, float *dev)
{
    if (!cm || !dev)
        return;
    pthread_mutex_lock(&cm->mu);
    if (cm->n_free < cm->cap_free)
        cm->free_list[cm->n_free++] = dev;
    pthread_mutex_unlock(&cm->mu);
}

/* The runners' streams do not synchronise with the legacy default stream
 * that these plain calls use, so each waits for its own work to finish
 * (cudaMemset and a pageable cudaMemcpy may return before the device is done):
 * a step that follows sees the new payload. */
static int sync_legacy(cudaError_t e)
{
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(0);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return SSM_ERR_BACKEND;
    }
    return SSM_OK;
}

int ssm_cuda_state_zero(ssm_cuda_model *cm, float *dev)
{
    return sync_legacy(cudaMemset(dev, 0, cm->state_floats * sizeof(float)));
}

int ssm_cuda_state_download(ssm_cuda_model *cm, void *host, const float *dev)
{
    return sync_legacy(
        cudaMemcpy(host, dev, cm->state_floats * sizeof(float), cudaMemcpyDeviceToHost));
}

int ssm_cuda_state_upload(ssm_cuda_model *cm, float *dev, const void *host)
{
    return sync_legacy(
        cudaMemcpy(dev, host, cm->state_floats * sizeof(float), cudaMemcpyHostToDevice));
}

/* ---- runner ------------------------------------------------------------ */

enum { OUT_MASK = 1, OUT_VAD = 2, OUT_LOGITS = 4, OUT_EMB = 8 };

struct ssm_cuda_runner {
    ssm_cuda_model *cm;
    unsigned flags;
    int max_batch, max_chunk, rows;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *workspace;
    size_t workspace_bytes, dev_bytes, host_bytes;
    void *dmem; /* every device buffer, one cudaMalloc */
    void *hmem; /* every pinned host buffer, one cudaHostAlloc */
    /* device: xz {rows, max_in} in_proj / fc1 output; xc {rows, max_mid} conv
     * output; dbc, dt: Mamba-1's x_proj and dt_proj outputs; y {rows,
     * max_inner} the mixer's (or the MLP's gated) output */
    float *in, *r, *hn, *xz, *xc, *dbc, *dt, *y, *hf, *mask, *vad, *logits;
    uint16_t *act16;
    int32_t *tok;
    unsigned *count;
    int *bad;
    float **ptrs;
    /* pinned host */
    float *h_in, *h_mask, *h_vad, *h_logits, *h_emb;
    int32_t *h_tok;
    unsigned *h_count;
    int *h_bad;
    float **h_ptrs;
    /* last pointer array uploaded (plain host memory) and its length */
    float **last_ptrs;
    int n_last_ptrs;
    /* cached graph and its shape; graph_failed: capture did not work here,
     * launch one by one from now on */
    int graph_failed;
    size_t graph_nodes; /* kernels, copies and memsets in the last graph */
    cudaGraphExec_t exec;
    int g_streams, g_frames;
    unsigned g_outs;
};

static size_t dcarve(size_t *total, size_t n, size_t elt)
{
    size_t off = *total;
    *total += (n * elt + 255) / 256 * 256;
    return off;
}

int ssm_cuda_runner_create(ssm_cuda_model *cm, int max_batch, int max_chunk, unsigned flags,
                           ssm_cuda_runner **out, ssm_error *err)
{
    *out = NULL;
    const ssm_config *c = &cm->cfg;
    cudaError_t e = cudaSetDevice(cm->device);
    if (e != cudaSuccess)
        return cuda_fail(err, e, "cudaSetDevice");
    ssm_cuda_runner *r = calloc(1, sizeof *r);
    if (!r)
        return ssm_error_set(err, SSM_ERR_NOMEM, "cuda: out of host memory");
    r->cm = cm;
    r->flags = flags;
    r->max_batch = max_batch;
    r->max_chunk = max_chunk;
    size_t rows = (size_t)(max_batch > max_chunk ? max_batch : max_chunk);
    r->rows = (int)rows;
    size_t nf = c->input == SSM_INPUT_FEATURES ? (size_t)c->n_features : 0;
    size_t dm = (size_t)c->d_model, di = (size_t)c->d_inner;
    size_t ndbc = (size_t)c->dt_rank + 2 * (size_t)c->d_state;
    size_t nin = (size_t)cm->max_in, nmid = (size_t)cm->max_mid, nmax = (size_t)cm->max_inner;
    size_t nm = (size_t)(c->n_mask > 0 ? c->n_mask : 0), V = (size_t)c->vocab_size;
    /* the widest input of a projection (bf16 activations): d_model, a mixer's
     * or MLP's output row, the features */
    size_t wide = dm > nmax ? dm : nmax;
    if (nf > wide)
        wide = nf;
    int has_mask = (c->heads & SSM_HEAD_MASK) != 0, has_vad = (c->heads & SSM_HEAD_VAD) != 0;
    int has_lm = (c->heads & SSM_HEAD_LM) != 0;

    size_t t = 0;
    size_t o_in = dcarve(&t, rows, nf * 4), o_r = dcarve(&t, rows, dm * 4);
    size_t o_hn = dcarve(&t, rows, dm * 4), o_xz = dcarve(&t, rows, nin * 4);
    size_t o_xc = dcarve(&t, rows, nmid * 4), o_dbc = dcarve(&t, rows, ndbc * 4);
    size_t o_dt = dcarve(&t, rows, di * 4), o_y = dcarve(&t, rows, nmax * 4);
    size_t o_hf = dcarve(&t, rows, dm * 4);
    size_t o_mask = dcarve(&t, has_mask ? rows : 0, nm * 4);
    size_t o_vad = dcarve(&t, has_vad ? rows : 0, 4);
    size_t o_lg = dcarve(&t, has_lm ? rows : 0, V * 4);
    size_t o_a16 = dcarve(&t, (flags & SSM_CUDA_BF16) ? rows : 0, wide * 2);
    size_t o_tok = dcarve(&t, rows, 4), o_cnt = dcarve(&t, rows, 4), o_bad = dcarve(&t, rows, 4);
    size_t o_ptr = dcarve(&t, (size_t)max_batch, sizeof(float *));
    r->dev_bytes = t;
    size_t h = 0;
    size_t p_in = dcarve(&h, rows, nf * 4), p_mask = dcarve(&h, has_mask ? rows : 0, nm * 4);
    size_t p_vad = dcarve(&h, has_vad ? rows : 0, 4), p_lg = dcarve(&h, has_lm ? rows : 0, V * 4);
    size_t p_emb = dcarve(&h, rows, dm * 4), p_tok = dcarve(&h, rows, 4);
    size_t p_cnt = dcarve(&h, rows, 4), p_bad = dcarve(&h, rows, 4);
    size_t p_ptr = dcarve(&h, (size_t)max_batch, sizeof(float *));
    r->host_bytes = h;

    r->last_ptrs = calloc((size_t)max_batch, sizeof *r->last_ptrs);
    if (!r->last_ptrs) {
        ssm_cuda_runner_destroy(r);
        return ssm_error_set(err, SSM_ERR_NOMEM, "cuda: out of host memory");
    }
    if ((e = cudaMalloc(&r->dmem, r->dev_bytes)) != cudaSuccess ||
        (e = cudaHostAlloc(&r->hmem, r->host_bytes, cudaHostAllocDefault)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&r->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        ssm_cuda_runner_destroy(r);
        return cuda_fail(err, e, "runner buffers");
    }
    r->workspace_bytes = (size_t)32 << 20; /* cuBLAS' recommendation for Hopper */
    if ((e = cudaMalloc(&r->workspace, r->workspace_bytes)) != cudaSuccess) {
        ssm_cuda_runner_destroy(r);
        return cuda_fail(err, e, "cuBLAS workspace");
    }
    if ((e = cudaMemset(r->dmem, 0, r->dev_bytes)) != cudaSuccess ||
        (e = cudaDeviceSynchronize()) != cudaSuccess) {
        ssm_cuda_runner_destroy(r);
        return cuda_fail(err, e, "runner buffers");
    }
    char bwhy[256];
    if (!blas_ready(bwhy, sizeof bwhy)) {
        ssm_cuda_runner_destroy(r);
        return ssm_error_set(err, SSM_ERR_BACKEND, "cuda: %s", bwhy);
    }
    cublasStatus_t bs = g_blas.create(&r->blas);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = g_blas.set_stream(r->blas, r->stream);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = g_blas.set_workspace(r->blas, r->workspace, r->workspace_bytes);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = g_blas.set_math_mode(r->blas, CUBLAS_DEFAULT_MATH);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        ssm_cuda_runner_destroy(r);
        return ssm_error_set(err, SSM_ERR_BACKEND, "cuda: cuBLAS set-up failed: %s",
                             g_blas.status_string(bs));
    }
    unsigned char *d = r->dmem, *hp = r->hmem;
    r->in = (float *)(d + o_in);
    r->r = (float *)(d + o_r);
    r->hn = (float *)(d + o_hn);
    r->xz = (float *)(d + o_xz);
    r->xc = (float *)(d + o_xc);
    r->dbc = (float *)(d + o_dbc);
    r->dt = (float *)(d + o_dt);
    r->y = (float *)(d + o_y);
    r->hf = (float *)(d + o_hf);
    r->mask = (float *)(d + o_mask);
    r->vad = (float *)(d + o_vad);
    r->logits = (float *)(d + o_lg);
    r->act16 = (uint16_t *)(d + o_a16);
    r->tok = (int32_t *)(d + o_tok);
    r->count = (unsigned *)(d + o_cnt);
    r->bad = (int *)(d + o_bad);
    r->ptrs = (float **)(d + o_ptr);
    r->h_in = (float *)(hp + p_in);
    r->h_mask = (float *)(hp + p_mask);
    r->h_vad = (float *)(hp + p_vad);
    r->h_logits = (float *)(hp + p_lg);
    r->h_emb = (float *)(hp + p_emb);
    r->h_tok = (int32_t *)(hp + p_tok);
    r->h_count = (unsigned *)(hp + p_cnt);
    r->h_bad = (int *)(hp + p_bad);
    r->h_ptrs = (float **)(hp + p_ptr);
    *out = r;
    return SSM_OK;
}

void ssm_cuda_runner_destroy(ssm_cuda_runner *r)
{
    if (!r)
        return;
    if (r->exec)
        cudaGraphExecDestroy(r->exec);
    if (r->blas)
        g_blas.destroy(r->blas);
    if (r->stream)
        cudaStreamDestroy(r->stream);
    cudaFree(r->workspace);
    cudaFree(r->dmem);
    cudaFreeHost(r->hmem);
    free(r->last_ptrs);
    free(r);
}

size_t ssm_cuda_runner_bytes(const ssm_cuda_runner *r)
{
    return r ? r->dev_bytes + r->host_bytes + r->workspace_bytes : 0;
}

/* out {n, d_out} (ld_out) = x {n, d_in} (ld_x) · Wᵀ (+ beta·out) (+ bias).
 * Row-major {n, d_out} is column-major {d_out, n}: C = op_T(W_cm) · X_cm. */
static int gemm(ssm_cuda_runner *r, const dlin *L, float *out, size_t ld_out, const float *x,
                size_t ld_x, int n, float beta)
{
    const float one = 1.0f;
    cublasStatus_t s;
    if ((r->flags & SSM_CUDA_BF16) && L->wb) {
        if (ssm_cuda_to_bf16(r->act16, (size_t)L->d_in, x, ld_x, n, L->d_in, r->stream))
            return -1;
        s = g_blas.gemm_ex(r->blas, CUBLAS_OP_T, CUBLAS_OP_N, L->d_out, n, L->d_in, &one, L->wb,
                         CUDA_R_16BF, L->d_in, r->act16, CUDA_R_16BF, L->d_in, &beta, out,
                         CUDA_R_32F, (int)ld_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } else {
        s = g_blas.sgemm(r->blas, CUBLAS_OP_T, CUBLAS_OP_N, L->d_out, n, L->d_in, &one, L->w,
                        L->d_in, x, (int)ld_x, &beta, out, (int)ld_out);
    }
    if (s != CUBLAS_STATUS_SUCCESS)
        return -1;
    if (L->bias && ssm_cuda_add_bias(out, ld_out, L->bias, n, L->d_out, r->stream))
        return -1;
    return 0;
}

/* A Mamba-1 layer's middle (mamba_simple.py Mamba.step): in_proj's x|z in
 * r->xz → conv+SiLU → x_proj, dt_proj → the fused scan with the SiLU(z)
 * gate, into r->y.  0, or -1 on a launch error. */
static int enqueue_mamba1(ssm_cuda_runner *r, const dlayer *L, int n_streams, int n_frames)
{
    const ssm_config *c = &r->cm->cfg;
    cudaStream_t st = r->stream;
    int n = n_streams * n_frames;
    size_t di = (size_t)L->d_inner, N = (size_t)L->d_state, R = (size_t)c->dt_rank;
    size_t ndbc = R + 2 * N;
    if (ssm_cuda_conv(r->xc, di, r->ptrs, L->off, r->xz, 2 * di, L->conv_w, L->conv_b,
                      n_streams, n_frames, L->d_inner, L->d_conv, st) ||
        gemm(r, &L->x, r->dbc, ndbc, r->xc, di, n, 0.0f) ||
        gemm(r, &L->dt, r->dt, di, r->dbc, ndbc, n, 0.0f))
        return -1;
    return ssm_cuda_scan(r->y, di, r->ptrs, L->off + di * (size_t)L->d_conv, r->xc, di, r->dt,
                         di, L->dt_bias, L->A, r->dbc + R, r->dbc + R + N, ndbc, L->D,
                         r->xz + di, 2 * di, c->delta_A_min, n_streams, n_frames, L->d_inner,
                         L->d_state, st)
               ? -1
               : 0;
}

/* A Mamba-2 layer's middle (mamba2.py Mamba2.step, ssm_mixer2_step): in_proj's
 * z | xBC | dt in r->xz → conv+SiLU of xBC (conv_dim channels) → the scan over
 * heads (Δ's softplus inside) → y ⊙ SiLU(z) and the group-wise RMSNorm, into
 * r->y.  0, or -1 on a launch error. */
static int enqueue_mamba2(ssm_cuda_runner *r, const dlayer *L, int n_streams, int n_frames)
{
    const ssm_config *c = &r->cm->cfg;
    cudaStream_t st = r->stream;
    int n = n_streams * n_frames;
    size_t di = (size_t)L->d_inner, cd = (size_t)L->conv_dim, nin = (size_t)L->d_in_proj;
    size_t gn = (size_t)L->n_groups * (size_t)L->d_state;
    if (ssm_cuda_conv(r->xc, cd, r->ptrs, L->off, r->xz + di, nin, L->conv_w, L->conv_b,
                      n_streams, n_frames, L->conv_dim, L->d_conv, st) ||
        ssm_cuda_scan_heads(r->y, di, r->ptrs, L->off + cd * (size_t)L->d_conv, r->xc, cd,
                            r->xz + di + cd, nin, L->dt_bias, L->A, r->xc + di, r->xc + di + gn,
                            cd, L->D, n_streams, n_frames, L->n_heads, L->head_dim,
                            L->n_groups, L->d_state, st) ||
        ssm_cuda_rmsnorm_gated(r->y, di, r->xz, nin, L->norm_gated, n, L->d_inner,
                               c->m2_norm_group_size, c->m2_norm_eps, st))
        return -1;
    return 0;
}

/* An attention layer's middle (mha.py MHA with a window, ssm_attn_step):
 * in_proj's q | k | v | mlp in r->xz (q rotated there in place) → RoPE, the
 * ring write and the softmax over the window → [y | up ⊙ SiLU(gate)] into
 * r->y.  0, or -1 on a launch error. */
static int enqueue_attn(ssm_cuda_runner *r, const dlayer *L, int n_streams, int n_frames)
{
    const ssm_config *c = &r->cm->cfg;
    cudaStream_t st = r->stream;
    int n = n_streams * n_frames;
    size_t di = (size_t)L->d_inner, nin = (size_t)L->d_in_proj;
    size_t nq = (size_t)c->at_n_heads * c->at_head_dim;
    size_t in_mlp = nq + 2 * (size_t)c->at_n_heads_kv * c->at_head_dim;
    int half = c->at_mlp_dim / 2;
    if (ssm_cuda_attn(r->y, di, r->ptrs, L->off, r->xz, nin, L->inv_freq, n_streams, n_frames,
                      c->at_n_heads, c->at_n_heads_kv, c->at_head_dim, c->at_window,
                      c->at_rot_dim, c->at_rot_interleaved, c->at_scale, st))
        return -1;
    if (half > 0 && ssm_cuda_gate_silu(r->y + nq, di, r->xz + in_mlp, nin,
                                       r->xz + in_mlp + half, nin, n, half, st))
        return -1;
    return 0;
}

/* Enqueues a whole call on r->stream (captured into a graph, or run as is). */
static int enqueue(ssm_cuda_runner *r, int n_streams, int n_frames, unsigned outs)
{
    const ssm_cuda_model *cm = r->cm;
    const ssm_config *c = &cm->cfg;
    cudaStream_t st = r->stream;
    int n = n_streams * n_frames;
    size_t dm = (size_t)c->d_model;
    size_t rn = (size_t)n;
#define CK(x)                                                                                  \
    do {                                                                                       \
        if (x)                                                                                 \
            return -1;                                                                         \
    } while (0)
    CK(cudaMemsetAsync(r->count, 0, rn * sizeof(unsigned), st));
    if (c->input == SSM_INPUT_TOKENS) {
        CK(cudaMemcpyAsync(r->tok, r->h_tok, rn * sizeof(int32_t), cudaMemcpyHostToDevice, st));
        CK(ssm_cuda_gather(r->r, dm, cm->embedding, r->tok, n, c->d_model, st));
    } else {
        size_t nf = (size_t)c->n_features;
        CK(cudaMemcpyAsync(r->in, r->h_in, rn * nf * sizeof(float), cudaMemcpyHostToDevice, st));
        CK(ssm_cuda_sanitize(r->in, nf, r->count, n, c->n_features, st));
        CK(gemm(r, &cm->frontend, r->r, dm, r->in, nf, n, 0.0f));
    }
    for (int l = 0; l < c->n_layer; ++l) {
        const dlayer *L = &cm->layers[l];
        size_t di = (size_t)L->d_inner, nin = (size_t)L->d_in_proj;
        CK(ssm_cuda_rmsnorm(r->hn, dm, r->r, dm, L->norm, n, c->d_model, c->norm_eps, st));
        CK(gemm(r, &L->in, r->xz, nin, r->hn, dm, n, 0.0f));
        if (L->kind == SSM_LAYER_MAMBA1)
            CK(enqueue_mamba1(r, L, n_streams, n_frames));
        else if (L->kind == SSM_LAYER_MAMBA2)
            CK(enqueue_mamba2(r, L, n_streams, n_frames));
        else
            CK(enqueue_attn(r, L, n_streams, n_frames));
        CK(gemm(r, &L->out, r->r, dm, r->y, di, n, 1.0f)); /* r += out_proj·y (+ bias) */
        if (L->fc1.w) {
            /* the block's gated MLP: r += fc2(a ⊙ SiLU(b)), [a | b] = fc1(RMSNorm(r)) */
            size_t dh = (size_t)c->d_intermediate;
            CK(ssm_cuda_rmsnorm(r->hn, dm, r->r, dm, L->norm2, n, c->d_model, c->norm_eps, st));
            CK(gemm(r, &L->fc1, r->xz, 2 * dh, r->hn, dm, n, 0.0f));
            CK(ssm_cuda_gate_silu(r->y, dh, r->xz, 2 * dh, r->xz + dh, 2 * dh, n,
                                  c->d_intermediate, st));
            CK(gemm(r, &L->fc2, r->r, dm, r->y, dh, n, 1.0f));
        }
    }
    CK(ssm_cuda_nonfinite_rows(r->bad, r->r, dm, n, c->d_model, st));
    CK(ssm_cuda_rmsnorm(r->hf, dm, r->r, dm, cm->norm_f, n, c->d_model, c->norm_eps, st));
    if (outs & OUT_MASK) {
        size_t nm = (size_t)c->n_mask;
        CK(gemm(r, &cm->mask, r->mask, nm, r->hf, dm, n, 0.0f));
        CK(ssm_cuda_sigmoid(r->mask, nm, n, c->n_mask, st));
        CK(cudaMemcpyAsync(r->h_mask, r->mask, rn * nm * 4, cudaMemcpyDeviceToHost, st));
    }
    if (outs & OUT_VAD) {
        CK(gemm(r, &cm->vad, r->vad, 1, r->hf, dm, n, 0.0f));
        CK(ssm_cuda_sigmoid(r->vad, 1, n, 1, st));
        CK(cudaMemcpyAsync(r->h_vad, r->vad, rn * 4, cudaMemcpyDeviceToHost, st));
    }
    if (outs & OUT_LOGITS) {
        size_t V = (size_t)c->vocab_size;
        CK(gemm(r, &cm->lm, r->logits, V, r->hf, dm, n, 0.0f));
        CK(cudaMemcpyAsync(r->h_logits, r->logits, rn * V * 4, cudaMemcpyDeviceToHost, st));
    }
    if (outs & OUT_EMB)
        CK(cudaMemcpyAsync(r->h_emb, r->hf, rn * dm * 4, cudaMemcpyDeviceToHost, st));
    CK(cudaMemcpyAsync(r->h_count, r->count, rn * sizeof(unsigned), cudaMemcpyDeviceToHost, st));
    CK(cudaMemcpyAsync(r->h_bad, r->bad, rn * sizeof(int), cudaMemcpyDeviceToHost, st));
#undef CK
    return 0;
}

/* Captures enqueue() into r->exec for this shape; 0 on success. */
static int capture(ssm_cuda_runner *r, int n_streams, int n_frames, unsigned outs)
{
    if (r->exec) {
        cudaGraphExecDestroy(r->exec);
        r->exec = NULL;
    }
    cudaGraph_t g = NULL;
    if (cudaStreamBeginCapture(r->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess)
        return -1;
    int rc = enqueue(r, n_streams, n_frames, outs);
    cudaError_t e = cudaStreamEndCapture(r->stream, &g);
    if (rc || e != cudaSuccess || !g) {
        if (g)
            cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return -1;
    }
    size_t nodes = 0;
    if (cudaGraphGetNodes(g, NULL, &nodes) == cudaSuccess)
        r->graph_nodes = nodes;
    e = cudaGraphInstantiate(&r->exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        r->exec = NULL;
        (void)cudaGetLastError();
        return -1;
    }
    r->g_streams = n_streams;
    r->g_frames = n_frames;
    r->g_outs = outs;
    return 0;
}

int ssm_cuda_run(ssm_cuda_runner *r, float *const *dev_states, int n_streams, int n_frames,
                 const float *features, const int32_t *tokens, const ssm_outputs *out,
                 size_t *count, unsigned char *bad)
{
    const ssm_config *c = &r->cm->cfg;
    size_t rows = (size_t)n_streams * (size_t)n_frames;
    if (cudaSetDevice(r->cm->device) != cudaSuccess)
        return SSM_ERR_BACKEND;
    unsigned outs = 0;
    if (out) {
        outs |= out->mask ? OUT_MASK : 0;
        outs |= out->vad ? OUT_VAD : 0;
        outs |= out->logits ? OUT_LOGITS : 0;
        outs |= out->embedding ? OUT_EMB : 0;
    }
    /* inputs into pinned staging */
    if (c->input == SSM_INPUT_TOKENS)
        memcpy(r->h_tok, tokens, rows * sizeof(int32_t));
    else
        memcpy(r->h_in, features, rows * (size_t)c->n_features * sizeof(float));
    /* state pointers: uploaded only when the set of streams changed */
    if (n_streams != r->n_last_ptrs ||
        memcmp(r->last_ptrs, dev_states, (size_t)n_streams * sizeof(float *)) != 0) {
        memcpy(r->h_ptrs, dev_states, (size_t)n_streams * sizeof(float *));
        memcpy(r->last_ptrs, dev_states, (size_t)n_streams * sizeof(float *));
        r->n_last_ptrs = n_streams;
        if (cudaMemcpyAsync(r->ptrs, r->h_ptrs, (size_t)n_streams * sizeof(float *),
                            cudaMemcpyHostToDevice, r->stream) != cudaSuccess)
            goto fail;
    }
    int graphed = 0;
    if (!(r->flags & SSM_CUDA_NO_GRAPH) && !r->graph_failed) {
        if (!r->exec || r->g_streams != n_streams || r->g_frames != n_frames ||
            r->g_outs != outs)
            r->graph_failed = capture(r, n_streams, n_frames, outs) != 0;
        if (r->exec && r->g_streams == n_streams && r->g_frames == n_frames && r->g_outs == outs) {
            if (cudaGraphLaunch(r->exec, r->stream) != cudaSuccess)
                goto fail;
            graphed = 1;
        }
    }
    if (!graphed && enqueue(r, n_streams, n_frames, outs) != 0)
        goto fail;
    if (cudaStreamSynchronize(r->stream) != cudaSuccess)
        goto fail;
    if (outs & OUT_MASK)
        memcpy(out->mask, r->h_mask, rows * (size_t)c->n_mask * sizeof(float));
    if (outs & OUT_VAD)
        memcpy(out->vad, r->h_vad, rows * sizeof(float));
    if (outs & OUT_LOGITS)
        memcpy(out->logits, r->h_logits, rows * (size_t)c->vocab_size * sizeof(float));
    if (outs & OUT_EMB)
        memcpy(out->embedding, r->h_emb, rows * (size_t)c->d_model * sizeof(float));
    for (size_t i = 0; i < rows; ++i) {
        count[i] = r->h_count[i];
        bad[i] = r->h_bad[i] != 0;
    }
    return SSM_OK;
fail:
    (void)cudaGetLastError();
    r->n_last_ptrs = 0; /* re-upload next time */
    return SSM_ERR_BACKEND;
}

int ssm_cuda_runner_graphed(const ssm_cuda_runner *r)
{
    return r && !(r->flags & SSM_CUDA_NO_GRAPH) && !r->graph_failed && r->exec != NULL
               ? (int)r->graph_nodes
               : 0;
}
