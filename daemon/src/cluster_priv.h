/* SPDX-License-Identifier: MIT */
/* The cluster's shared state, for its two files: cluster.c (membership,
 * claims, the thread) and cluster_ckpt.c (checkpoints).  Internal to them. */
#ifndef SSMD_CLUSTER_PRIV_H
#define SSMD_CLUSTER_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "checkpoint.h"
#include "cluster.h"
#include "etcd.h"
#include "ssmd/protocol.h"

#define KEY_MEMBERS "/ssmd/members/"
#define KEY_OWNERS "/ssmd/owners/"
#define KEY_CHECKPOINTS "/ssmd/checkpoints/"

typedef struct member {
    char node[65];
    char *ingest, *pub, *control;
    long max_streams;
} member;

typedef struct claim {
    char name[SSMD_STREAM_NAME_MAX + 1];
    int64_t revision; /* mod_revision of our owner key */
} claim;

/* A growable array of claims. */
typedef struct claims {
    claim *v;
    size_t n, cap;
} claims;

/* A checkpoint handed over by the loop, waiting to be stored. */
typedef struct ckpt_item {
    ssmd_ckpt_info info;
    void *data;
    size_t n;
    bool refused_once;  /* its owner-key compare failed once: kept for the next tick, dropped the
                           second time (cluster_ckpt.c) */
} ckpt_item;

/* The checkpoint file a stream's stored description names. */
typedef struct ckpt_file {
    char stream[SSMD_STREAM_NAME_MAX + 1];
    char path[SSMD_CKPT_PATH_MAX];
} ckpt_file;

struct ssmd_cluster {
    char node[65];
    char epoch[32];       /* this run's, "0x" + 16 hex digits */
    char *url;
    char *member_value;   /* this member's JSON */
    char *owner_value;    /* the JSON of this member's owner keys */
    char *ingest;         /* advertised */
    long ttl_s;
    long ckpt_inline_max; /* checkpoints larger than this go to ckpt_dir */
    char *ckpt_dir;       /* "" = none */
    ssmd_etcd *thread_etcd, *loop_etcd;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t wake;
    bool stopping;
    bool leaving;             /* ssmd_cluster_leave: member key deleted, not registered again, not placed */
    int64_t lease;        /* 0: not registered */
    bool conflict_logged; /* the thread logged that another member holds this node's name */
    bool healthy;         /* the last request to etcd succeeded */
    bool ever_registered;
    char error[512];      /* the last failure */
    member *members;      /* the last member list read */
    size_t n_members;
    uint64_t members_gen; /* changes whenever the set of member names does (a join, a leave) */
    claims owned;         /* streams this daemon claimed and runs */
    claims released;      /* owner keys to delete */
    claims stale;         /* streams another member claimed while this one's lease was lost:
                             the loop closes them (ssmd_cluster_stale_next) */
    /* checkpoints (cluster_ckpt.c) */
    ckpt_item *ckpt_q;    /* waiting to be stored, at most one per stream */
    size_t ckpt_qn, ckpt_qcap;
    ssmd_ckpt_info *ckpt_acks; /* stored, not yet seen by the loop */
    size_t ckpt_an, ckpt_acap;
    ckpt_file *ckpt_files; /* the file of each stream's stored checkpoint */
    size_t ckpt_fn, ckpt_fcap;
    bool ckpt_backoff;    /* a write failed: the next tries at the next tick */
    struct {
        uint64_t stored, bytes, superseded, failed, txns;
        uint64_t retried;  /* rounds of writes etcd did not answer (kept for the next tick) */
        double write_s;   /* the thread's time in checkpoint writes (files and etcd) */
    } ckpt_stats;
};

/* ---- cluster_ckpt.c, for cluster.c ---------------------------------------- */

/** The cluster thread: stores the queued checkpoints (files first, then etcd
 *  transactions of up to 32, each conditional on this member's lease still
 *  holding the stream's owner key).  Returns 0, or -1 after a failed etcd
 *  request (the checkpoints not stored are queued again unless a newer one
 *  of the stream came; ckpt_backoff is set). */
int ssmd_cluster_ckpt_write(ssmd_cluster *c, int64_t lease, char *err, size_t cap);

/** The cluster thread, after a stream's release: its checkpoint keys were
 *  deleted (ours: this member deleted them) -- its checkpoint file goes. */
void ssmd_cluster_ckpt_released(ssmd_cluster *c, const char *stream, bool ours);

/** Under c->mu: drops the queued checkpoint of stream (it ended). */
void ssmd_cluster_ckpt_drop_locked(ssmd_cluster *c, const char *stream);

/** Frees the queues (ssmd_cluster_stop). */
void ssmd_cluster_ckpt_free(ssmd_cluster *c);

/** The loop thread, after a claim: reads stream's checkpoint into *f
 *  (f->present false when there is none; f->error when it could not be
 *  read). */
void ssmd_cluster_ckpt_fetch(ssmd_cluster *c, const char *stream, ssmd_cluster_found *f);

/** Under c->mu: the checkpoint figures of the `cluster` reply. */
json_t *ssmd_cluster_ckpt_describe_locked(ssmd_cluster *c);

/** The `locate` reply's "checkpoint": the stored description's indices, age
 *  and place, null when there is none (or etcd did not answer). */
json_t *ssmd_cluster_ckpt_locate(ssmd_cluster *c, const char *stream);

#endif /* SSMD_CLUSTER_PRIV_H */
