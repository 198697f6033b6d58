/* SPDX-License-Identifier: MIT */
/* clients/src/push_cluster.h — what ssm-push --cluster needs beyond a plain
 * push (docs/cluster.md, "Clients across a failover"), and the members'
 * data-plane endpoints for ssm-sub --cluster:
 *
 *  - where a stream goes: its owner key /ssmd/owners/STREAM in etcd, else
 *    the live member (/ssmd/members/) with the highest rendezvous weight
 *    for its placement key (daemon/src/hrw.h, the daemon's own code), read
 *    through the daemon's etcd client (daemon/src/etcd.h);
 *  - the input kept for a replay: each stream's samples from the last
 *    checkpoint its owner acknowledged on, so that a new owner, which
 *    resumes from that checkpoint, can be sent the rest again.
 *
 * Single-threaded (ssm-push's one thread); blocking (etcd requests wait at
 * most the handle's timeout per endpoint); allocates. */
#ifndef SSMD_PUSH_CLUSTER_H
#define SSMD_PUSH_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "etcd.h"

/** A member to push a stream to. */
typedef struct push_target {
    char node[65];
    char ingest[1024];  /**< its ingest endpoint, tcp://HOST:PORT */
    char epoch[40];     /**< the member's epoch ("0x..."; "" when etcd does not list it) */
    int64_t lease;      /**< the lease of the member's key (0 when etcd does not list it): a
                             member that lost its lease and registered again has a new one */
    int by_owner;       /**< 1: the stream's owner key named it; 0: placement */
} push_target;

/** Finds where stream goes by etcd now: its owner key, else the HRW pick
 *  among the members.  Returns 1 with *out, 0 when there is neither (no
 *  member listed), -1 with one line in err when etcd does not answer. */
int push_cluster_locate(ssmd_etcd *e, const char *stream, push_target *out, char *err, size_t cap);

/** The epoch etcd lists for member node into out[cap] ("" when it is not
 *  listed or etcd does not answer) and its key's lease into *lease (0 then;
 *  lease may be NULL). */
void push_cluster_member_epoch(ssmd_etcd *e, const char *node, char *out, size_t cap, int64_t *lease);

/** The data-plane (PUB) endpoints of the members etcd lists now, for
 *  ssm-sub --cluster: up to max of them into pubs[], each malloc'd (the
 *  caller frees them); members without one are skipped.  Returns the count,
 *  or -1 with one line in err when etcd does not answer. */
int push_cluster_member_pubs(ssmd_etcd *e, char **pubs, size_t max, char *err, size_t cap);

/** 1 when t is the member dead (the same node and, where both are known,
 *  the same lease; else the same epoch; where either has no epoch, the same
 *  ingest endpoint), else 0: a node restarted under its name has another
 *  epoch and a member that lost its lease and registered again (after a
 *  freeze longer than the TTL: the same epoch) has another lease; neither
 *  is dead. */
int push_cluster_same(const push_target *t, const push_target *dead);

/** One stream's input kept for a replay: samples [from, from + n) in x
 *  (mono f32 frames, the stream's rate).  Zero-initialise; free with
 *  push_kept_free. */
typedef struct push_kept {
    float *x;
    size_t n, cap;
    uint64_t from;
} push_kept;

/** Appends n samples.  Returns 0, or -1 when out of memory (nothing appended). */
int push_kept_append(push_kept *k, const float *x, size_t n);

/** Drops the samples before sample index upto (nothing when upto <= from). */
void push_kept_trim(push_kept *k, uint64_t upto);

/** The samples from sample index at on (from <= at <= from + n). */
const float *push_kept_at(const push_kept *k, uint64_t at);

/** Frees the samples; k is zeroed. */
void push_kept_free(push_kept *k);

#endif /* SSMD_PUSH_CLUSTER_H */
