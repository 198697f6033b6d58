/* SPDX-License-Identifier: MIT */
/* Cluster mode (--cluster etcd://..., docs/cluster.md): the daemon is a
 * member of a group coordinated by etcd; ZeroMQ stays the data plane.
 *
 *   /ssmd/members/NODE   = {"node","ingest","pub","control","max_streams","epoch"}
 *   /ssmd/owners/STREAM  = {"node","ingest"}
 *
 * both attached to the daemon's lease, so they vanish TTL seconds after it
 * dies or loses etcd (at once on a clean stop: the lease is revoked).  With
 * --checkpoint-s, also (checkpoint.h; no lease: they outlive the member)
 *
 *   /ssmd/checkpoints/STREAM/meta  = the checkpoint's description (JSON)
 *   /ssmd/checkpoints/STREAM/state = the checkpoint (when not in a file)
 *  A
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

#include "checkpoint.h"
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

/** A stream's checkpoint read when it was claimed (ssmd_cluster_claim). */
typedef struct ssmd_cluster_found {
    bool present;          /**< a checkpoint was found (and read when error is empty) */
    ssmd_ckpt_info info;   /**< its description */
    void *data;            /**< the checkpoint when stored in etcd (info.path empty), malloc'd */
    size_t n;
    char error[512];       /**< why it could not be read, "" when it could */
} ssmd_cluster_found;

/** Frees f->data and zeroes f. */
void ssmd_cluster_found_clear(ssmd_cluster_found *f);

/** Starts cluster mode from cfg->cluster, cfg->node (empty: the host name),
 *  cfg->cluster_ttl_s, cfg->checkpoint_dir and cfg->checkpoint_inline_bytes
 *  (where the checkpoints go), and the endpoints this daemon serves (advertised with
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
 *  not answer; msg says so in one line).  With ckpt (may be NULL) an OWNED
 *  stream's checkpoint is read into it (one more round trip; a checkpoint
 *  file is not read here).  Loop thread; blocks for at most four etcd round
 *  trips. */
ssmd_cluster_verdict ssmd_cluster_claim(ssmd_cluster *c, const char *stream, ssmd_cluster_owner *owner,
                                        ssmd_cluster_found *ckpt, char *msg, size_t cap);

/** The stream this daemon claimed has ended: its owner key and checkpoint
 *  keys are deleted and its checkpoint file removed (by the cluster thread,
 *  only while the owner key is still this claim's or no member's); a
 *  checkpoint of it still queued is dropped.  Loop thread. */
void ssmd_cluster_release(ssmd_cluster *c, const char *stream);

/** The member list's generation: it changes whenever a member joins or
 *  leaves (so the loop re-checks its streams' placement then).  Any thread. */
uint64_t ssmd_cluster_members_gen(ssmd_cluster *c);

/** True when stream's placement by the last member list is another member
 *  than this one (*owner: it), false when it is this one.  Loop thread; no
 *  etcd request. */
bool ssmd_cluster_placed_elsewhere(ssmd_cluster *c, const char *stream, ssmd_cluster_owner *owner);

/** Hands a stream this daemon claimed over to the member its placement now
 *  names (docs/cluster.md, "A member joining"): deletes its owner key while
 *  it is still this claim's (one etcd request on the loop thread, at most
 *  SSMD_CLUSTER_LOOP_TIMEOUT_MS per endpoint) and forgets the stream,
 *  keeping its checkpoint keys and file, from which the next owner resumes.
 *  Returns 1 handed over, 0 when the owner key had changed (the stream is
 *  not this node's either way), -1 with one line in err when etcd did not
 *  answer (the stream stays claimed).  Loop thread. */
int ssmd_cluster_handover(ssmd_cluster *c, const char *stream, char *err, size_t cap);

/** Starts leaving the cluster before a clean stop (docs/cluster.md, "A
 *  member stopping"): deletes this member's entry (only while it is still
 *  this run's lease's) so that every member places streams on the others,
 *  keeps the lease (its owner keys stay until each stream is handed over or
 *  the stop revokes it), and is never registered again.  After it,
 *  ssmd_cluster_placed_elsewhere names another member for every stream
 *  (this node only when no other member is listed) and the member list's
 *  generation has changed.  Returns 0, or -1 with one line in err when etcd
 *  did not answer (nothing changed).  Loop thread; one etcd transaction and
 *  one range, each at most SSMD_CLUSTER_LOOP_TIMEOUT_MS per endpoint. */
int ssmd_cluster_leave(ssmd_cluster *c, char *err, size_t cap);

/** The loop thread: the next stream whose owner key another member took
 *  while this member's lease was lost (its client failed over there), into
 *  stream[cap]; false when there is none.  The cluster thread has already
 *  dropped it from this member's claims (its owner key, checkpoint keys and
 *  file are the other member's): the loop closes it without its end and
 *  without releasing anything. */
bool ssmd_cluster_stale_next(ssmd_cluster *c, char *stream, size_t cap);

/** Hands checkpoint data (n bytes, malloc'd: the cluster takes it) of a
 *  stream this daemon owns to the cluster thread, which stores it in etcd,
 *  or in the checkpoint directory when larger than checkpoint_inline_bytes
 *  (info->node, epoch, checksum and path are filled there).  A checkpoint
 *  of the same stream still waiting is replaced (counted as superseded).
 *  Loop thread; never waits for etcd or a disk. */
void ssmd_cluster_checkpoint(ssmd_cluster *c, const ssmd_ckpt_info *info, void *data, size_t n);

/** The checkpoints stored since the last call (malloc'd array of *n, NULL
 *  when none; the caller frees).  Loop thread. */
ssmd_ckpt_info *ssmd_cluster_checkpoint_acks(ssmd_cluster *c, size_t *n);

/** A stream resumed from the checkpoint file path: it is that stream's file
 *  now (removed once a newer checkpoint is stored or the stream ends).
 *  Loop thread. */
void ssmd_cluster_checkpoint_adopt(ssmd_cluster *c, const char *stream, const char *path);

/** The `cluster` control reply's object: this node, etcd's health, the
 *  members and the owners (read from etcd when it answers, else the last
 *  member list seen and "owners": null).  Loop thread. */
json_t *ssmd_cluster_describe(ssmd_cluster *c);

/** The `locate` control reply's object for stream: the member that owns it
 *  (its owner key) or would get it (placement), without claiming anything,
 *  and its last checkpoint ("checkpoint": indices, age, place; null). */
json_t *ssmd_cluster_locate(ssmd_cluster *c, const char *stream);

#endif /* SSMD_CLUSTER_H */
