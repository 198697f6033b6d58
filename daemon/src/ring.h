/* SPDX-License-Identifier: MIT */
/* ssmd_ring: a single-producer single-consumer lock-free ring of floats.
 *
 * The hand-off between a real-time thread and the daemon's loop thread
 * (DESIGN.md §5, STYLE.md 7): the PortAudio capture callback writes and the
 * loop reads; for the monitor the loop writes and the playback callback
 * reads.  The ring never blocks and never allocates after create: a producer
 * that finds it full writes what fits and the rest is counted as overflow.
 *
 * Capacity is a power of two (create rounds up), so positions are two
 * free-running size_t counters and the slot is `pos & mask`; the ring holds
 * up to the full capacity (no slot is sacrificed).  The producer publishes
 * its position with a release store after copying, the consumer reads it with
 * an acquire load before copying (and the reverse for the consumer's
 * position), which is all the ordering a SPSC ring needs (C11 atomics; the
 * pattern of PipeWire's spa_ringbuffer and of JACK's jack_ringbuffer).
 *
 * Units: everything here counts floats ("items").  Callers that store
 * interleaved frames keep writes and reads whole frames themselves
 * (ssmd_ring_write_space tells how much fits; see audio_device.c).
 *
 * Threads: exactly one producer thread calls write/write_space, exactly one
 * consumer thread calls read; available/overflows/capacity may be called from
 * any thread (they return a snapshot).  create/destroy are not real-time safe
 * and must not run concurrently with anything else on the same ring.
 * Real-time safe (no allocation, lock, syscall or logging): write,
 * write_space, read, available, overflows, capacity — provided the platform's
 * atomic size_t and uint64_t are lock-free (they are on x86-64 and aarch64;
 * ssmd_ring_is_lock_free() says so at run time).
 */
#ifndef SSMD_RING_H
#define SSMD_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ssmd_ring ssmd_ring;

/** Largest capacity create accepts (2^30 floats = 4 GiB). */
#define SSMD_RING_MAX_CAPACITY ((size_t)1 << 30)

/** Creates an empty ring holding at least min_capacity floats, rounded up to
 *  a power of two (min_capacity 0 or 1 gives 1).  The storage is one
 *  64-byte-aligned allocation.  Returns NULL when min_capacity exceeds
 *  SSMD_RING_MAX_CAPACITY or memory is short.  Not real-time safe. */
ssmd_ring *ssmd_ring_create(size_t min_capacity);

/** Frees the ring; NULL does nothing.  No thread may be using it. */
void ssmd_ring_destroy(ssmd_ring *r);

/** Capacity in floats (a power of two). */
size_t ssmd_ring_capacity(const ssmd_ring *r);

/** Producer: copies the first min(n, free space) floats of x into the ring,
 *  counts the n - written floats that did not fit as overflow, and returns
 *  the number written.  x may be NULL only when n is 0.  RT-safe. */
size_t ssmd_ring_write(ssmd_ring *r, const float *x, size_t n);

/** Producer: free space in floats right now (it can only grow until the
 *  producer writes, since only the consumer frees space).  RT-safe. */
size_t ssmd_ring_write_space(const ssmd_ring *r);

/** Consumer: moves up to max floats, oldest first, into out and returns how
 *  many (0 when empty).  Never blocks.  RT-safe. */
size_t ssmd_ring_read(ssmd_ring *r, float *out, size_t max);

/** Floats waiting to be read (a snapshot; exact when called by the consumer,
 *  a lower bound of what read would return).  RT-safe. */
size_t ssmd_ring_available(const ssmd_ring *r);

/** Total floats refused by write because the ring was full, since create.
 *  RT-safe; any thread. */
uint64_t ssmd_ring_overflows(const ssmd_ring *r);

/** Whether the atomics used are lock-free on this platform (if not, the
 *  ring is still correct but write/read may take a lock inside libatomic). */
bool ssmd_ring_is_lock_free(void);

#endif /* SSMD_RING_H */
