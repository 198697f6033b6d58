/* SPDX-License-Identifier: MIT */
/* Cluster mode's checkpoints (cluster.h, checkpoint.h, docs/cluster.md):
 * the queue the loop fills, the cluster thread that stores it, the
 * acknowledgements back, and the reads of a claim and of `locate`.
 *
 * Design note.  The queue holds at most one checkpoint per stream: a newer
 * one replaces a checkpoint not yet stored (superseded), so a slow etcd
 * costs the loop nothing and the thread writes at its own pace.  The thread
 * writes checkpoints larger than checkpoint_inline_bytes to their files
 * first, then stores up to BATCH descriptions (and inline states) per etcd
 * transaction, each guarded by a compare of the stream's owner key with this
 * member's lease: a member that lost a stream (its lease ended and another
 * claimed it) cannot overwrite the new owner's checkpoint.  A transaction
 * whose compare fails is split, so one lost stream does not hold back the
 * others.  Only stored checkpoints are acknowledged, and a stream's previous
 * checkpoint file is removed once its successor is stored. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cluster_priv.h"
#include "errf.h"
#include "log.h"

/* Per transaction: etcd's default --max-txn-ops is 128 (2 operations and 1
 * compare per checkpoint here), its --max-request-bytes 1.5 MiB (the values
 * travel in base64: 4/3 of their size). */
enum { BATCH = 32, BATCH_REQUEST_BYTES = 256 * 1024 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ssmd_cluster_found_clear(ssmd_cluster_found *f)
{
    if (!f) return;
    free(f->data);
    memset(f, 0, sizeof *f);
}

/* ---- the queue (loop thread in, cluster thread out) --------------------- */

static ckpt_item *queue_find_locked(ssmd_cluster *c, const char *stream)
{
    for (size_t i = 0; i < c->ckpt_qn; i++)
        if (strcmp(c->ckpt_q[i].info.stream, stream) == 0) return &c->ckpt_q[i];
    return NULL;
}

/* Appends (or, when one of the stream waits, replaces); takes it->data. */
static void queue_put_locked(ssmd_cluster *c, ckpt_item *it)
{
    ckpt_item *old = queue_find_locked(c, it->info.stream);
    if (old) {
        free(old->data);
        *old = *it;
        c->ckpt_stats.superseded++;
        return;
    }
    if (c->ckpt_qn == c->ckpt_qcap) {
        size_t cap = c->ckpt_qcap ? 2 * c->ckpt_qcap : 16;
        ckpt_item *v = realloc(c->ckpt_q, cap * sizeof *v);
        if (!v) {
            free(it->data);
            c->ckpt_stats.failed++;
            return;
        }
        c->ckpt_q = v;
        c->ckpt_qcap = cap;
    }
    c->ckpt_q[c->ckpt_qn++] = *it;
}

void ssmd_cluster_checkpoint(ssmd_cluster *c, const ssmd_ckpt_info *info, void *data, size_t n)
{
    ckpt_item it = { .info = *info, .data = data, .n = n };
    pthread_mutex_lock(&c->mu);
    queue_put_locked(c, &it);
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
}

void ssmd_cluster_ckpt_drop_locked(ssmd_cluster *c, const char *stream)
{
    ckpt_item *it = queue_find_locked(c, stream);
    if (!it) return;
    free(it->data);
    *it = c->ckpt_q[--c->ckpt_qn];
}

ssmd_ckpt_info *ssmd_cluster_checkpoint_acks(ssmd_cluster *c, size_t *n)
{
    pthread_mutex_lock(&c->mu);
    ssmd_ckpt_info *v = c->ckpt_an ? c->ckpt_acks : NULL;
    *n = c->ckpt_an;
    if (v) {
        c->ckpt_acks = NULL;
        c->ckpt_an = c->ckpt_acap = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return v;
}

/* ---- each stream's checkpoint file ---------------------------------------- */

static ckpt_file *file_find_locked(ssmd_cluster *c, const char *stream)
{
    for (size_t i = 0; i < c->ckpt_fn; i++)
        if (strcmp(c->ckpt_files[i].stream, stream) == 0) return &c->ckpt_files[i];
    return NULL;
}

/* Makes path ("" = none) the stream's file; the file it replaces, if any and
 * another, is copied to old (to be removed). */
static void file_set_locked(ssmd_cluster *c, const char *stream, const char *path, char *old, size_t cap)
{
    old[0] = '\0';
    ckpt_file *f = file_find_locked(c, stream);
    if (f && strcmp(f->path, path) != 0) snprintf(old, cap, "%s", f->path);
    if (!path[0]) {
        if (f) *f = c->ckpt_files[--c->ckpt_fn];
        return;
    }
    if (!f) {
        if (c->ckpt_fn == c->ckpt_fcap) {
            size_t ncap = c->ckpt_fcap ? 2 * c->ckpt_fcap : 16;
            ckpt_file *v = realloc(c->ckpt_files, ncap * sizeof *v);
            if (!v) return; /* the file stays when its stream ends: a leak on disk, not a loss */
            c->ckpt_files = v;
            c->ckpt_fcap = ncap;
        }
        f = &c->ckpt_files[c->ckpt_fn++];
        snprintf(f->stream, sizeof f->stream, "%s", stream);
    }
    snprintf(f->path, sizeof f->path, "%s", path);
}

void ssmd_cluster_checkpoint_adopt(ssmd_cluster *c, const char *stream, const char *path)
{
    char old[SSMD_CKPT_PATH_MAX];
    pthread_mutex_lock(&c->mu);
    file_set_locked(c, stream, path, old, sizeof old);
    pthread_mutex_unlock(&c->mu);
}

void ssmd_cluster_ckpt_released(ssmd_cluster *c, const char *stream, bool ours)
{
    char old[SSMD_CKPT_PATH_MAX];
    pthread_mutex_lock(&c->mu);
    file_set_locked(c, stream, "", old, sizeof old);
    pthread_mutex_unlock(&c->mu);
    /* another member owns the stream now: the file may be what its
     * checkpoint names (it resumed from it), so it stays */
    if (ours && old[0] && unlink(old) != 0 && errno != ENOENT)
        ssmd_log(SSMD_LOG_WARN, "cluster: cannot remove checkpoint file %s: %s", old, strerror(errno));
}

void ssmd_cluster_ckpt_free(ssmd_cluster *c)
{
    for (size_t i = 0; i < c->ckpt_qn; i++) free(c->ckpt_q[i].data);
    free(c->ckpt_q);
    free(c->ckpt_acks);
    free(c->ckpt_files);
    c->ckpt_q = NULL;
    c->ckpt_acks = NULL;
    c->ckpt_files = NULL;
    c->ckpt_qn = c->ckpt_an = c->ckpt_fn = 0;
}

/* ---- the cluster thread's writes ------------------------------------------ */

/* One stored checkpoint: acknowledged to the loop, its predecessor's file
 * removed; frees it->data. */
static void stored(ssmd_cluster *c, ckpt_item *it)
{
    char old[SSMD_CKPT_PATH_MAX];
    pthread_mutex_lock(&c->mu);
    file_set_locked(c, it->info.stream, it->info.path, old, sizeof old);
    if (c->ckpt_an == c->ckpt_acap) {
        size_t cap = c->ckpt_acap ? 2 * c->ckpt_acap : 16;
        ssmd_ckpt_info *v = realloc(c->ckpt_acks, cap * sizeof *v);
        if (v) {
            c->ckpt_acks = v;
            c->ckpt_acap = cap;
        }
    }
    if (c->ckpt_an < c->ckpt_acap) c->ckpt_acks[c->ckpt_an++] = it->info; /* else: stored, not announced */
    c->ckpt_stats.stored++;
    c->ckpt_stats.bytes += it->n;
    pthread_mutex_unlock(&c->mu);
    if (old[0] && unlink(old) != 0 && errno != ENOENT)
        ssmd_log(SSMD_LOG_WARN, "cluster: cannot remove checkpoint file %s: %s", old, strerror(errno));
    free(it->data);
    it->data = NULL;
}

/* A checkpoint that will not be stored: its new file goes, its data too. */
static void dropped(ckpt_item *it)
{
    if (it->info.path[0]) unlink(it->info.path);
    free(it->data);
    it->data = NULL;
}

/* Stores items[0..k) in one transaction: 1 stored, 0 a compare failed (this
 * member no longer holds one of the streams), -1 etcd failed. */
static int store(ssmd_cluster *c, int64_t lease, ckpt_item *const *items, size_t k, char *const *meta, char *err,
                 size_t cap)
{
    ssmd_etcd_cmp cmp[BATCH];
    ssmd_etcd_op ops[2 * BATCH];
    char keys[BATCH][3][sizeof KEY_CHECKPOINTS + SSMD_STREAM_NAME_MAX + 8];
    for (size_t i = 0; i < k; i++) {
        const ssmd_ckpt_info *m = &items[i]->info;
        snprintf(keys[i][0], sizeof keys[i][0], "%s%s", KEY_OWNERS, m->stream);
        snprintf(keys[i][1], sizeof keys[i][1], "%s%s/meta", KEY_CHECKPOINTS, m->stream);
        snprintf(keys[i][2], sizeof keys[i][2], "%s%s/state", KEY_CHECKPOINTS, m->stream);
        cmp[i] = (ssmd_etcd_cmp){ .key = keys[i][0], .target = SSMD_ETCD_LEASE, .value = lease };
        ops[2 * i] = (ssmd_etcd_op){ .kind = SSMD_ETCD_PUT, .key = keys[i][1], .value = meta[i],
                                     .value_len = strlen(meta[i]) };
        /* inline: the state beside it; in a file: no stale state key */
        ops[2 * i + 1] = m->path[0] ? (ssmd_etcd_op){ .kind = SSMD_ETCD_DELETE, .key = keys[i][2] }
                                    : (ssmd_etcd_op){ .kind = SSMD_ETCD_PUT, .key = keys[i][2],
                                                      .value = items[i]->data, .value_len = items[i]->n };
    }
    pthread_mutex_lock(&c->mu);
    c->ckpt_stats.txns++;
    pthread_mutex_unlock(&c->mu);
    return ssmd_etcd_txn(c->thread_etcd, cmp, k, ops, 2 * k, NULL, err, cap);
}

int ssmd_cluster_ckpt_write(ssmd_cluster *c, int64_t lease, char *err, size_t cap)
{
    pthread_mutex_lock(&c->mu);
    ckpt_item *items = c->ckpt_q;
    size_t n = c->ckpt_qn;
    c->ckpt_q = NULL;
    c->ckpt_qn = c->ckpt_qcap = 0;
    pthread_mutex_unlock(&c->mu);
    if (n == 0) {
        free(items);
        return 0;
    }
    double t0 = now_s();
    char **meta = calloc(n, sizeof *meta);
    size_t failed = 0, files = 0;
    /* descriptions, and the files of the large ones */
    for (size_t i = 0; i < n; i++) {
        ssmd_ckpt_info *m = &items[i].info;
        snprintf(m->node, sizeof m->node, "%s", c->node);
        snprintf(m->epoch, sizeof m->epoch, "%s", c->epoch);
        m->bytes = items[i].n;
        m->checksum = ssmd_ckpt_fnv1a64(items[i].data, items[i].n);
        m->path[0] = '\0';
        char why[600] = "";
        if (items[i].n > (size_t)c->ckpt_inline_max) {
            if (!c->ckpt_dir[0])
                ssmd_errf(why, sizeof why, "%zu bytes, more than checkpoint_inline_bytes (%ld), and no "
                          "checkpoint_dir", items[i].n, c->ckpt_inline_max);
            else if (ssmd_ckpt_file_write(c->ckpt_dir, m, items[i].data, items[i].n, false, why, sizeof why) == 0)
                files++;
        }
        if (!why[0] && meta && !(meta[i] = ssmd_ckpt_info_json(m))) snprintf(why, sizeof why, "out of memory");
        if (why[0] || !meta) {
            ssmd_log(SSMD_LOG_WARN, "cluster: stream %s: checkpoint at input sample %llu not stored: %s", m->stream,
                     (unsigned long long)m->input_sample, why[0] ? why : "out of memory");
            dropped(&items[i]);
            failed++;
        }
    }
    /* the renames of this round's files are durable before etcd names them:
     * one directory sync for all of them */
    char why[600];
    if (files && ssmd_ckpt_dir_sync(c->ckpt_dir, why, sizeof why) != 0) {
        ssmd_log(SSMD_LOG_WARN, "cluster: %s: %zu checkpoints not stored", why, files);
        for (size_t i = 0; i < n; i++)
            if (items[i].data && items[i].info.path[0]) {
                dropped(&items[i]);
                failed++;
            }
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        if (!items[i].data) {
            i++;
            continue;
        }
        /* a batch of the next checkpoints that fits one request */
        ckpt_item *batch[BATCH];
        char *bmeta[BATCH];
        size_t k = 0, bytes = 0;
        for (size_t j = i; j < n && k < BATCH; j++) {
            if (!items[j].data) continue;
            size_t b = 4 * (strlen(meta[j]) + (items[j].info.path[0] ? 0 : items[j].n)) / 3 + 512;
            if (k > 0 && bytes + b > BATCH_REQUEST_BYTES) break;
            bytes += b;
            batch[k] = &items[j];
            bmeta[k++] = meta[j];
            i = j + 1;
        }
        int r = store(c, lease, batch, k, bmeta, err, cap);
        for (size_t b = 0; b < k && r >= 0; b++) {
            ckpt_item *it = batch[b];
            int r1 = r == 1 ? 1 : store(c, lease, &batch[b], 1, &bmeta[b], err, cap);
            if (r1 == 1) {
                stored(c, it);
            } else if (r1 == 0 && !it->refused_once) {
                /* the owner key is not under this lease: the lease may have expired unnoticed
                 * (the next tick registers again and claims the stream again under the new
                 * one), so the checkpoint waits for one more tick instead of being lost */
                it->refused_once = true;
            } else if (r1 == 0) {
                ssmd_log(SSMD_LOG_DEBUG, "cluster: stream %s: checkpoint not stored: this member no longer holds "
                         "its owner key", it->info.stream);
                dropped(it);
                failed++;
            } else {
                r = -1;
            }
        }
        if (r < 0) rc = -1;
    }
    pthread_mutex_lock(&c->mu);
    if (rc < 0) {
        /* etcd did not answer: what was not stored waits for the next tick,
         * unless the stream ended or a newer checkpoint came meanwhile */
        c->ckpt_backoff = true;
        c->ckpt_stats.retried++;
        for (size_t i = 0; i < n; i++) {
            if (!items[i].data) continue;
            bool owned = false;
            for (size_t k = 0; k < c->owned.n && !owned; k++)
                owned = strcmp(c->owned.v[k].name, items[i].info.stream) == 0;
            if (owned && !queue_find_locked(c, items[i].info.stream)) {
                if (items[i].info.path[0]) unlink(items[i].info.path); /* written again then */
                items[i].info.path[0] = '\0';
                queue_put_locked(c, &items[i]);
            } else {
                dropped(&items[i]);
            }
            items[i].data = NULL;
        }
    } else {
        /* refused once (above): queued again for the next tick, unless the stream ended or a
         * newer checkpoint of it came meanwhile */
        for (size_t i = 0; i < n; i++) {
            if (!items[i].data) continue;
            bool owned = false;
            for (size_t k = 0; k < c->owned.n && !owned; k++)
                owned = strcmp(c->owned.v[k].name, items[i].info.stream) == 0;
            if (owned && !queue_find_locked(c, items[i].info.stream)) {
                queue_put_locked(c, &items[i]); /* (a file checkpoint is written again, same path) */
            } else {
                dropped(&items[i]);
                failed++;
            }
            items[i].data = NULL;
        }
    }
    c->ckpt_stats.failed += failed;
    c->ckpt_stats.write_s += now_s() - t0;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < n; i++) free(meta ? meta[i] : NULL);
    free(meta);
    free(items);
    if (rc < 0)
        ssmd_log(SSMD_LOG_DEBUG, "cluster: checkpoints not stored: %s; retrying at the next tick", err);
    return rc;
}

/* ---- reads (loop thread) -------------------------------------------------- */

void ssmd_cluster_ckpt_fetch(ssmd_cluster *c, const char *stream, ssmd_cluster_found *f)
{
    char prefix[sizeof KEY_CHECKPOINTS + SSMD_STREAM_NAME_MAX + 2], err[512] = "";
    snprintf(prefix, sizeof prefix, "%s%s/", KEY_CHECKPOINTS, stream);
    ssmd_etcd_kv *kvs = NULL;
    size_t n = 0;
    if (ssmd_etcd_range(c->loop_etcd, prefix, true, &kvs, &n, err, sizeof err) != 0) {
        f->present = true; /* perhaps: it could not be read */
        ssmd_errf(f->error, sizeof f->error, "its checkpoint could not be read: %s", err);
        return;
    }
    const ssmd_etcd_kv *meta = NULL, *state = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *leaf = kvs[i].key + strlen(prefix);
        if (strcmp(leaf, "meta") == 0) meta = &kvs[i];
        else if (strcmp(leaf, "state") == 0) state = &kvs[i];
    }
    if (meta) {
        f->present = true;
        if (ssmd_ckpt_info_parse(&f->info, meta->value, meta->value_len, err, sizeof err) != 0) {
            snprintf(f->error, sizeof f->error, "%s", err);
        } else if (!f->info.path[0] && !state) {
            snprintf(f->error, sizeof f->error, "its checkpoint's state key is missing");
        } else if (!f->info.path[0]) {
            f->data = state->value; /* moved out of the array */
            f->n = state->value_len;
            ((ssmd_etcd_kv *)state)->value = NULL;
        }
    }
    ssmd_etcd_kvs_free(kvs, n);
}

json_t *ssmd_cluster_ckpt_locate(ssmd_cluster *c, const char *stream)
{
    char key[sizeof KEY_CHECKPOINTS + SSMD_STREAM_NAME_MAX + 8], err[512];
    snprintf(key, sizeof key, "%s%s/meta", KEY_CHECKPOINTS, stream);
    ssmd_etcd_kv *kvs = NULL;
    size_t n = 0;
    ssmd_ckpt_info m;
    json_t *o = json_null();
    if (ssmd_etcd_range(c->loop_etcd, key, false, &kvs, &n, err, sizeof err) == 0 && n == 1 &&
        ssmd_ckpt_info_parse(&m, kvs[0].value, kvs[0].value_len, err, sizeof err) == 0) {
        o = json_pack("{s:I, s:I, s:f, s:s, s:I, s:s}", "input_sample", (json_int_t)m.input_sample, "output_sample",
                      (json_int_t)m.output_sample, "age_s", ((double)unix_ms() - (double)m.time_ms) / 1e3, "node",
                      m.node, "bytes", (json_int_t)m.bytes, "stored", m.path[0] ? "file" : "etcd");
        if (o && m.path[0]) json_object_set_new(o, "path", json_string(m.path));
        if (!o) o = json_null();
    }
    ssmd_etcd_kvs_free(kvs, n);
    return o;
}

json_t *ssmd_cluster_ckpt_describe_locked(ssmd_cluster *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:s}", "queued", (json_int_t)c->ckpt_qn, "stored",
                     (json_int_t)c->ckpt_stats.stored, "bytes", (json_int_t)c->ckpt_stats.bytes, "superseded",
                     (json_int_t)c->ckpt_stats.superseded, "failed", (json_int_t)c->ckpt_stats.failed, "retried",
                     (json_int_t)c->ckpt_stats.retried, "txns", (json_int_t)c->ckpt_stats.txns, "write_s",
                     c->ckpt_stats.write_s, "inline_max_bytes", (json_int_t)c->ckpt_inline_max, "dir",
                     c->ckpt_dir ? c->ckpt_dir : "");
}
