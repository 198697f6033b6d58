/* SPDX-License-Identifier: MIT */
/* A minimal LADSPA host for the plugin's tests: loads PLUGIN (a .so path),
 * instantiates LABEL at RATE Hz, connects every port and calls run() with
 * exactly BLOCK samples at a time (the last call gets the remainder; BLOCK 0
 * cycles through the awkward sizes 1, 7, 253, 4096, 65536, 2, 441), so the
 * test knows the block sizes the plugin saw.  Input and output are raw
 * little-endian float32, interleaved by channel.  Controls are the
 * optional ATTEN_DB, VAD_THRESHOLD and GRACE_MS (unset: the port's LADSPA
 * default hint).  Prints "latency N" (the latency port after the first
 * run), "vad X" (the VAD port after the last), "blocks N" and the
 * descriptor's labels.  Env: LADSPA_HOST_INPLACE=1 passes one buffer as
 * input and output (mono); LADSPA_HOST_TWICE=1 runs the whole input, then
 * deactivates, activates and runs it again, writing only the second pass.
 * Built without sanitizers (-DLADSPA_HOST_COUNT_RT), the host also counts
 * the heap calls (malloc, calloc, realloc, free, posix_memalign,
 * aligned_alloc) and pthread_mutex_lock calls made on its thread while a
 * run() is executing, and prints "run allocs N locks N": its own malloc
 * family (exported with -rdynamic, so the plugin and every library it pulls
 * in call it) forwards to glibc's __libc_* functions.
 * Exit status: 0, 1 when instantiate returns NULL, 2 on usage/IO errors.
 * Usage: ladspa_host PLUGIN LABEL RATE BLOCK IN_RAW OUT_RAW [ATTEN_DB [VAD_THRESHOLD [GRACE_MS]]] */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <ladspa.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef LADSPA_HOST_COUNT_RT
/* counted on the host's thread only: OpenBLAS's idle pool is not run() */
static _Thread_local int g_in_run;
static unsigned long g_run_allocs, g_run_locks;
static int (*g_real_mutex_lock)(pthread_mutex_t *);
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

void *malloc(size_t n)
{
    if (g_in_run) g_run_allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (g_in_run) g_run_allocs++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (g_in_run) g_run_allocs++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    if (g_in_run && p) g_run_allocs++;
    __libc_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (g_in_run) g_run_allocs++;
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    if (g_in_run) g_run_allocs++;
    return __libc_memalign(align, n);
}

int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (g_in_run) g_run_locks++;
    if (!g_real_mutex_lock) *(void **)&g_real_mutex_lock = dlsym(RTLD_NEXT, "pthread_mutex_lock");
    return g_real_mutex_lock(m);
}

#define RUN_BEGIN() (g_in_run = 1)
#define RUN_END() (g_in_run = 0)
#else
#define RUN_BEGIN() ((void)0)
#define RUN_END() ((void)0)
#endif

static float *read_raw(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *x = malloc(bytes > 0 ? (size_t)bytes : 1);
    *n = (size_t)bytes / sizeof(float);
    if (x && fread(x, sizeof(float), *n, f) != *n) { free(x); x = NULL; }
    fclose(f);
    return x;
}

/* LADSPA's default of a control port from its hints (0 when none). */
static float hint_default(const LADSPA_PortRangeHint *h)
{
    LADSPA_PortRangeHintDescriptor d = h->HintDescriptor;
    float lo = h->LowerBound, hi = h->UpperBound;
    switch (d & LADSPA_HINT_DEFAULT_MASK) {
    case LADSPA_HINT_DEFAULT_MINIMUM: return lo;
    case LADSPA_HINT_DEFAULT_LOW: return 0.75f * lo + 0.25f * hi;
    case LADSPA_HINT_DEFAULT_MIDDLE: return 0.5f * (lo + hi);
    case LADSPA_HINT_DEFAULT_HIGH: return 0.25f * lo + 0.75f * hi;
    case LADSPA_HINT_DEFAULT_MAXIMUM: return hi;
    case LADSPA_HINT_DEFAULT_1: return 1.0f;
    case LADSPA_HINT_DEFAULT_100: return 100.0f;
    case LADSPA_HINT_DEFAULT_440: return 440.0f;
    default: return 0.0f;
    }
}

int main(int argc, char **argv)
{
    if (argc < 7 || argc > 10) {
        fprintf(stderr, "usage: %s PLUGIN LABEL RATE BLOCK IN_RAW OUT_RAW [ATTEN_DB [VAD_THRESHOLD [GRACE_MS]]]\n",
                argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "ladspa_host: %s\n", dlerror()); return 2; }
    LADSPA_Descriptor_Function fn = (LADSPA_Descriptor_Function)(size_t)dlsym(lib, "ladspa_descriptor");
    if (!fn) { fprintf(stderr, "ladspa_host: no ladspa_descriptor\n"); return 2; }
    const LADSPA_Descriptor *d = NULL;
    for (unsigned long i = 0; fn(i); i++) {
        printf("label %s id %lu ports %lu\n", fn(i)->Label, fn(i)->UniqueID, fn(i)->PortCount);
        if (strcmp(fn(i)->Label, argv[2]) == 0) d = fn(i);
    }
    if (!d) { fprintf(stderr, "ladspa_host: no label %s\n", argv[2]); return 2; }
    unsigned long rate = strtoul(argv[3], NULL, 10);
    long block_arg = strtol(argv[4], NULL, 10);
    size_t n_total = 0;
    float *in = read_raw(argv[5], &n_total);
    if (!in) { fprintf(stderr, "ladspa_host: cannot read %s\n", argv[5]); return 2; }

    int n_in = 0, n_out = 0;
    for (unsigned long p = 0; p < d->PortCount; p++)
        if (LADSPA_IS_PORT_AUDIO(d->PortDescriptors[p])) {
            if (LADSPA_IS_PORT_INPUT(d->PortDescriptors[p])) n_in++; else n_out++;
        }
    if (n_in != n_out || n_in < 1 || n_in > 2) { fprintf(stderr, "ladspa_host: odd ports\n"); return 2; }
    size_t nch = (size_t)n_in, n = n_total / nch;

    LADSPA_Handle h = d->instantiate(d, rate);
    if (!h) { printf("instantiate returned NULL\n"); return 1; }

    enum { MAXB = 65536 };
    static float ibuf[2][MAXB], obuf[2][MAXB];
    float ctl[16] = { 0 }, latency = -1.0f, vad = -1.0f;
    const char *ctl_arg[3] = { argc > 7 ? argv[7] : NULL, argc > 8 ? argv[8] : NULL, argc > 9 ? argv[9] : NULL };
    int inplace = getenv("LADSPA_HOST_INPLACE") && nch == 1;
    int ai = 0, ao = 0, ci = 0;
    for (unsigned long p = 0; p < d->PortCount && p < 16; p++) {
        LADSPA_PortDescriptor pd = d->PortDescriptors[p];
        if (LADSPA_IS_PORT_AUDIO(pd)) {
            if (LADSPA_IS_PORT_INPUT(pd)) d->connect_port(h, p, ibuf[ai++]);
            else d->connect_port(h, p, inplace ? ibuf[ao++] : obuf[ao++]);
        } else if (LADSPA_IS_PORT_INPUT(pd)) {
            ctl[p] = ctl_arg[ci] ? strtof(ctl_arg[ci], NULL) : hint_default(&d->PortRangeHints[p]);
            printf("control %s = %g\n", d->PortNames[p], ctl[p]);
            ci++;
            d->connect_port(h, p, &ctl[p]);
        } else {
            float *dst = strcmp(d->PortNames[p], "latency") == 0 ? &latency
                         : strcmp(d->PortNames[p], "VAD") == 0   ? &vad
                                                                 : &ctl[p];
            d->connect_port(h, p, dst);
        }
    }
    float *out = calloc(n * nch + 1, sizeof(float));
    static const size_t cycle[] = { 1, 7, 253, 4096, 65536, 2, 441 };
    int passes = getenv("LADSPA_HOST_TWICE") ? 2 : 1;
    unsigned long blocks = 0;
    float first_latency = -1.0f;
    for (int pass = 0; pass < passes; pass++) {
        if (d->activate) d->activate(h);
        size_t k = 0;
        for (size_t pos = 0; pos < n; k++) {
            size_t b = block_arg > 0 ? (size_t)block_arg : cycle[k % (sizeof cycle / sizeof cycle[0])];
            if (b > MAXB) b = MAXB;
            if (b > n - pos) b = n - pos;
            for (size_t i = 0; i < b; i++)
                for (size_t c = 0; c < nch; c++) ibuf[c][i] = in[(pos + i) * nch + c];
            RUN_BEGIN();
            d->run(h, b);
            RUN_END();
            blocks++;
            if (first_latency < 0) first_latency = latency;
            for (size_t i = 0; i < b; i++)
                for (size_t c = 0; c < nch; c++) out[(pos + i) * nch + c] = inplace ? ibuf[c][i] : obuf[c][i];
            pos += b;
        }
        if (d->deactivate && pass + 1 < passes) d->deactivate(h);
    }
    printf("latency %.3f\nvad %.4f\nblocks %lu\n", first_latency, vad, blocks);
#ifdef LADSPA_HOST_COUNT_RT
    printf("run allocs %lu locks %lu\n", g_run_allocs, g_run_locks);
#endif
    if (d->deactivate) d->deactivate(h);
    d->cleanup(h);
    FILE *f = fopen(argv[6], "wb");
    if (!f || fwrite(out, sizeof(float), n * nch, f) != n * nch) { fprintf(stderr, "ladspa_host: write failed\n"); return 2; }
    fclose(f);
    free(out);
    free(in);
    dlclose(lib);
    return 0;
}
