/* SPDX-License-Identifier: MIT */
/* SPSC float ring (see ring.h for the contract).
 *
 * write_pos and read_pos are free-running counters (they wrap at SIZE_MAX+1,
 * which is a multiple of the power-of-two capacity, so `w - r` is the fill
 * level even across the wrap).  Each lives on its own cache line so the two
 * threads do not false-share; each thread also keeps nothing cached, which
 * keeps the code obviously correct at the cost of one extra acquire load per
 * call (negligible next to the copies). */
#include "ring.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct ssmd_ring {
    alignas(64) atomic_size_t write_pos;  /* written by the producer only */
    alignas(64) atomic_size_t read_pos;   /* written by the consumer only */
    alignas(64) atomic_uint_least64_t overflows; /* producer only, read by all */
    size_t capacity;
    size_t mask;
    float *data;
};

ssmd_ring *ssmd_ring_create(size_t min_capacity)
{
    if (min_capacity > SSMD_RING_MAX_CAPACITY) return NULL;
    size_t cap = 1;
    while (cap < min_capacity) cap <<= 1;
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    size_t struct_bytes = (sizeof(ssmd_ring) + 63) & ~(size_t)63;
    size_t data_bytes = (cap * sizeof(float) + 63) & ~(size_t)63;
    ssmd_ring *r = aligned_alloc(64, struct_bytes);
    if (!r) return NULL;
    float *data = aligned_alloc(64, data_bytes);
    if (!data) {
        free(r);
        return NULL;
    }
    memset(data, 0, data_bytes);
    atomic_init(&r->write_pos, 0);
    atomic_init(&r->read_pos, 0);
    atomic_init(&r->overflows, 0);
    r->capacity = cap;
    r->mask = cap - 1;
    r->data = data;
    return r;
}

void ssmd_ring_destroy(ssmd_ring *r)
{
    if (!r) return;
    free(r->data);
    free(r);
}

size_t ssmd_ring_capacity(const ssmd_ring *r)
{
    return r->capacity;
}

size_t ssmd_ring_write_space(const ssmd_ring *r)
{
    size_t w = atomic_load_explicit(&r->write_pos, memory_order_relaxed);
    size_t rd = atomic_load_explicit(&r->read_pos, memory_order_acquire);
    return r->capacity - (w - rd);
}

size_t ssmd_ring_write(ssmd_ring *r, const float *x, size_t n)
{
    size_t w = atomic_load_explicit(&r->write_pos, memory_order_relaxed);
    /* acquire: the consumer's copies out of the slots we reuse are done. */
    size_t rd = atomic_load_explicit(&r->read_pos, memory_order_acquire);
    size_t space = r->capacity - (w - rd);
    size_t k = n < space ? n : space;
    if (k > 0) {
        size_t at = w & r->mask;
        size_t first = r->capacity - at;
        if (first > k) first = k;
        memcpy(r->data + at, x, first * sizeof(float));
        memcpy(r->data, x + first, (k - first) * sizeof(float));
        /* release: the copies above are visible before the new position. */
        atomic_store_explicit(&r->write_pos, w + k, memory_order_release);
    }
    if (k < n)
        atomic_fetch_add_explicit(&r->overflows, (uint64_t)(n - k), memory_order_relaxed);
    return k;
}

size_t ssmd_ring_read(ssmd_ring *r, float *out, size_t max)
{
    size_t rd = atomic_load_explicit(&r->read_pos, memory_order_relaxed);
    /* acquire: pairs with the producer's release, the slots are filled. */
    size_t w = atomic_load_explicit(&r->write_pos, memory_order_acquire);
    size_t avail = w - rd;
    size_t k = max < avail ? max : avail;
    if (k == 0) return 0;
    size_t at = rd & r->mask;
    size_t first = r->capacity - at;
    if (first > k) first = k;
    memcpy(out, r->data + at, first * sizeof(float));
    memcpy(out + first, r->data, (k - first) * sizeof(float));
    /* release: our copies are done before the producer may overwrite. */
    atomic_store_explicit(&r->read_pos, rd + k, memory_order_release);
    return k;
}

size_t ssmd_ring_available(const ssmd_ring *r)
{
    size_t rd = atomic_load_explicit(&r->read_pos, memory_order_acquire);
    size_t w = atomic_load_explicit(&r->write_pos, memory_order_acquire);
    size_t avail = w - rd;
    /* From a third thread the two loads are not one snapshot; clamp so the
     * answer stays within [0, capacity]. */
    return avail > r->capacity ? r->capacity : avail;
}

uint64_t ssmd_ring_overflows(const ssmd_ring *r)
{
    return atomic_load_explicit(&r->overflows, memory_order_relaxed);
}

bool ssmd_ring_is_lock_free(void)
{
    atomic_size_t s;
    atomic_uint_least64_t u;
    atomic_init(&s, 0);
    atomic_init(&u, 0);
    return atomic_is_lock_free(&s) && atomic_is_lock_free(&u);
}
