/* SPDX-License-Identifier: MIT */
/* Rendezvous (highest-random-weight) hashing, Thaler & Ravishankar 1998:
 * a stream goes to the member whose weight for (member, stream) is highest.
 * Every daemon computes the same answer from the same member list, in any
 * order; when a member joins, only the streams it now wins move (about 1/n
 * of them), and when one leaves only its own streams move.
 *
 * The weight is fixed by docs/cluster.md ("Placement") so that clients can
 * compute it too: FNV-1a 64 over the bytes of member, one 0 byte, the bytes
 * of stream, then the splitmix64 finalizer.  Pure functions; thread-safe;
 * no allocation. */
#ifndef SSMD_HRW_H
#define SSMD_HRW_H

#include <stddef.h>
#include <stdint.h>

/** The weight of member for stream (NUL-terminated names). */
uint64_t ssmd_hrw_weight(const char *member, const char *stream);

/** The length of stream's placement key: the name without a trailing
 *  ".<digits>" (the channel suffix ssm-push gives the streams of one
 *  multi-channel file: NAME.0, NAME.1, ...), so that the channels of one
 *  file are placed on one member; the whole length otherwise (also for a
 *  name that is only ".<digits>" after its first byte's dot). */
size_t ssmd_hrw_key_len(const char *stream);

/** The index in members[0..n) of the member with the highest weight for
 *  stream's placement key (ssmd_hrw_key_len) (equal weights: the smaller name by strcmp, so the answer never
 *  depends on the order); -1 when n is 0. */
int ssmd_hrw_pick(const char *stream, const char *const *members, size_t n);

#endif /* SSMD_HRW_H */
