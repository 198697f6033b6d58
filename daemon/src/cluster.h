/* SPDX-License-Identifier: MIT */
/* Cluster mode (--cluster etcd://..., docs/cluster.md): the daemon is a
 * member of a group coordinated by etcd; ZeroMQ stays the data plane.
 *
 *   /ssmd/members/NODE   = {"node","ingest","pub","control","max_streams","epoch"}
 *   /ssmd/owners/STREAM  = {"node","ingest"}
 *
 * both attached to the daemon's lease, so they vanish TTL seconds after it
 * dies or loses etcd (at once on a clean stop: the lease is revoked).  A
 * pushed stream that is new to the cluster goes to the member that
 * rendezvous hashing picks (hrw.h); that member claims it with a
 * create-if-absent transaction on its owner key, so two daemons never
 * process the same stream.
 *
 * Threads: a thread of its own ("cluster") registers the member, keeps the
 * lease alive, refreshes the member list and deletes the owner keys of
 * streams that ended; the loop thread claims new streams and answers the
 * control requests, on its own etcd handle (one HTTP round trip or three per
 * new stream, bounded by SSMD_CLUSTER_LOOP_TIMEOUT_MS each; none while etcd
 * is known to be unreachable).  They share the lease, the member list, the
 * health and the owned set under one mutex. */
#ifndef SSMD_CLUSTER_H
#define SSMD_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

/* A claim made on the loop thread waits at most this long per etcd request;
 * the cluster thread's requests at most a third of the lease TTL. */
enum { SSMD_CLUSTER_LOOP_TIMEOUT_MS = 500 };

typedef struct ssmd_cluster ssmd_cluster;

/** Where a stream this daemon does not own goes. */
typedef struct ssmd_cluster_owner {
    char node[65];
    char ingest[1024];
} ssmd_cluster_owner;

typedef enum ssmd_cluster_verdict {
    SSMD_CLUSTER_OWNED = 0,       /**< claimed: this daemon processes the stream */
    SSMD_CLUSTER_ELSEWHERE = 1,   /**< another member owns it or is its placement (*owner) */
    SSMD_CLUSTER_UNAVAILABLE = 2, /**< etcd cannot be asked now: new streams are refused */
} ssmd_cluster_verdict;

/** Starts cluster mode from cfg->cluster, cfg->node (empty: the host name),
 *  cfg->cluster_ttl_s and the endpoints this daemon serves (advertised with
 *  a wildcard host replaced by the host name); epoch identifies this run.
 *  The thread registers the member in the background (and again whenever
 *  the lease is lost).  Returns 0, or -1 with one line in err (a bad URL or
 *  node name).  Main/loop thread, start-up. */
int ssmd_cluster_start(ssmd_cluster **out, const ssmd_config *cfg, uint64_t epoch, char *err, size_t cap);

/** Stops the thread and revokes the lease (the member entry and every owner
 *  key of this daemon disappear at once).  NULL does nothing. */
void ssmd_cluster_stop(ssmd_cluster *c);

/** Decides whether this daemon may open pushed stream `stream`, which it
 *  does not run: OWNED (claimed in etcd; release it when it ends),
 *  ELSEWHERE (*owner names the member to push to) or UNAVAILABLE (etcd does
 *  not answer; msg says so in one line).  Loop thread; blocks for at most
 *  three etcd round trips. */
ssmd_cluster_verdict ssmd_cluster_claim(ssmd_cluster *c, const char *stream, ssmd_cluster_owner *owner, char *msg,
                                        size_t cap);

/** The stream this daemon claimed has ended: its owner key is deleted (by
 *  the cluster thread, only if it is still this claim's).  Loop thread. */
void ssmd_cluster_release(ssmd_cluster *c, const char *stream);

/** The `cluster` control reply's object: this node, etcd's health, the
 *  members and the owners (read from etcd when it answers, else the last
 *  member list seen and "owners": null).  Loop thread. */
json_t *ssmd_cluster_describe(ssmd_cluster *c);

/** The `locate` control reply's object for stream: the member that owns it
 *  (its owner key) or would get it (placement), without claiming anything. */
json_t *ssmd_cluster_locate(ssmd_cluster *c, const char *stream);

#endif /* SSMD_CLUSTER_H */
