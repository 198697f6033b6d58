/* SPDX-License-Identifier: MIT */
/* Cluster mode (cluster.h, docs/cluster.md).
 *
 * Design note.  The cluster thread runs a tick every min(1 s, TTL/3):
 * without a lease it grants one, writes the member key and claims again the
 * streams this daemon still runs (their owner keys went with the old
 * lease); with one it renews it (keepalive), deletes the owner keys of
 * streams that ended (with their checkpoint keys), stores the queued
 * checkpoints (cluster_ckpt.c) and re-reads the member list.  Between ticks
 * it wakes when the loop queues a checkpoint or a release, so those do not
 * wait for the next tick; a failed checkpoint write is retried at the next
 * tick and is not an outage (new streams are still placed).  Any failed request
 * marks etcd unreachable: the loop then refuses new streams at once, without
 * asking etcd, and keeps serving the streams it has; the next tick that
 * succeeds marks it reachable again.  A keepalive that finds the lease gone
 * (etcd was away longer than the TTL) registers afresh on the next tick.
 *
 * Owner keys are deleted by mod_revision: a stream that ends and is pushed
 * again before the thread got round to its key keeps the newer claim. */
#include "cluster.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster_priv.h"
#include "errf.h"
#include "etcd.h"
#include "hrw.h"
#include "log.h"
#include "ssmd/protocol.h"

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int claims_put(claims *c, const char *name, int64_t rev)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].name, name) == 0) {
            c->v[i].revision = rev;
            return 0;
        }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        claim *v = realloc(c->v, cap * sizeof *v);
        if (!v) return -1;
        c->v = v;
        c->cap = cap;
    }
    snprintf(c->v[c->n].name, sizeof c->v[c->n].name, "%s", name);
    c->v[c->n++].revision = rev;
    return 0;
}

/* Removes name; returns its revision, or 0 when absent. */
static int64_t claims_take(claims *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].name, name) == 0) {
            int64_t rev = c->v[i].revision;
            c->v[i] = c->v[--c->n];
            return rev;
        }
    return 0;
}

static void members_free(member *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        free(m[i].ingest);
        free(m[i].pub);
        free(m[i].control);
    }
    free(m);
}

/* Parses member values of a range of KEY_MEMBERS; entries that are not our
 * JSON are skipped (logged). */
static member *members_parse(const ssmd_etcd_kv *kvs, size_t n, size_t *out_n)
{
    member *m = calloc(n ? n : 1, sizeof *m);
    size_t k = 0;
    for (size_t i = 0; m && i < n; i++) {
        json_t *j = json_loads(kvs[i].value, 0, NULL);
        const char *node = json_string_value(json_object_get(j, "node"));
        const char *ingest = json_string_value(json_object_get(j, "ingest"));
        if (!node || !ingest || !ssmd_stream_name_valid(node, strlen(node))) {
            ssmd_log(SSMD_LOG_DEBUG, "cluster: %s: not a member entry; ignored", kvs[i].key);
            json_decref(j);
            continue;
        }
        const char *pub = json_string_value(json_object_get(j, "pub"));
        const char *control = json_string_value(json_object_get(j, "control"));
        snprintf(m[k].node, sizeof m[k].node, "%s", node);
        m[k].ingest = strdup(ingest);
        m[k].pub = strdup(pub ? pub : "");
        m[k].control = strdup(control ? control : "");
        m[k].max_streams = (long)json_integer_value(json_object_get(j, "max_streams"));
        json_decref(j);
        if (!m[k].ingest || !m[k].pub || !m[k].control) {
            members_free(m, k + 1);
            return NULL;
        }
        k++;
    }
    *out_n = k;
    return m;
}

/* Records the outcome of a request: healthy or not, and logs each change. */
static void set_health(ssmd_cluster *c, bool ok, const char *err)
{
    pthread_mutex_lock(&c->mu);
    bool was = c->healthy;
    c->healthy = ok;
    if (!ok && err) snprintf(c->error, sizeof c->error, "%s", err);
    size_t n_owned = c->owned.n;
    pthread_mutex_unlock(&c->mu);
    if (was && !ok)
        ssmd_log(SSMD_LOG_WARN, "cluster: %s; serving the %zu stream%s this node owns, refusing new ones until "
                 "etcd answers", err ? err : "etcd unreachable", n_owned, n_owned == 1 ? "" : "s");
    else if (!was && ok)
        ssmd_log(SSMD_LOG_WARN, "cluster: etcd at %s answers again", ssmd_etcd_endpoint(c->thread_etcd));
}

static char *owner_key(const char *stream)
{
    size_t n = sizeof KEY_OWNERS + strlen(stream);
    char *k = malloc(n);
    if (k) snprintf(k, n, "%s%s", KEY_OWNERS, stream);
    return k;
}

/* ---- the cluster thread ------------------------------------------------- */

/* Claims again, under the new lease, the streams this daemon runs. */
static void reclaim(ssmd_cluster *c, int64_t lease)
{
    pthread_mutex_lock(&c->mu);
    claims mine = { 0 };
    for (size_t i = 0; i < c->owned.n; i++) claims_put(&mine, c->owned.v[i].name, 0);
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < mine.n; i++) {
        char err[512], *key = owner_key(mine.v[i].name);
        ssmd_etcd_kv ex;
        int64_t rev = 0;
        int r = key ? ssmd_etcd_create_if_absent(c->thread_etcd, key, c->owner_value, lease, &rev, &ex, err,
                                                 sizeof err) : -1;
        if (r == 0) {
            json_t *j = json_loads(ex.value, 0, NULL);
            const char *node = json_string_value(json_object_get(j, "node"));
            if (node && strcmp(node, c->node) == 0) {
                r = ssmd_etcd_put_if_revision(c->thread_etcd, key, c->owner_value, lease, ex.mod_revision, &rev, err,
                                              sizeof err);
            } else {
                /* another member claimed it while this one's lease was gone
                 * (its client failed over there): that member owns it now,
                 * with the owner key and the checkpoint keys and file.  This
                 * node's copy is stale: the loop closes it at once, without
                 * its end and without touching those keys
                 * (ssmd_cluster_stale_next; docs/cluster.md, failure
                 * behaviour), so that two members never process one stream */
                bool had;
                pthread_mutex_lock(&c->mu);
                had = claims_take(&c->owned, mine.v[i].name) != 0;
                if (had) {
                    ssmd_cluster_ckpt_drop_locked(c, mine.v[i].name);
                    claims_put(&c->stale, mine.v[i].name, 0);
                }
                pthread_mutex_unlock(&c->mu);
                if (had) {
                    ssmd_cluster_ckpt_released(c, mine.v[i].name, false); /* its file is the new owner's */
                    ssmd_log(SSMD_LOG_ERROR, "cluster: stream %s: claimed by node %s while this node's lease was "
                             "lost; closing this node's stale copy (no end sent; the owner key and checkpoint "
                             "stay node %s's)", mine.v[i].name, node ? node : "?", node ? node : "?");
                }
            }
            json_decref(j);
            ssmd_etcd_kv_clear(&ex);
        }
        if (r < 0) ssmd_log(SSMD_LOG_WARN, "cluster: stream %s: cannot claim it again: %s", mine.v[i].name, err);
        if (r == 1) {
            pthread_mutex_lock(&c->mu);
            for (size_t k = 0; k < c->owned.n; k++)
                if (strcmp(c->owned.v[k].name, mine.v[i].name) == 0) c->owned.v[k].revision = rev;
            pthread_mutex_unlock(&c->mu);
        }
        free(key);
    }
    free(mine.v);
}

/* Grants a lease and writes the member key.  Returns 0, or -1 with err. */
static int register_member(ssmd_cluster *c, char *err, size_t cap)
{
    int64_t lease = 0;
    char key[sizeof KEY_MEMBERS + 64];
    snprintf(key, sizeof key, "%s%s", KEY_MEMBERS, c->node);
    if (ssmd_etcd_lease_grant(c->thread_etcd, c->ttl_s, &lease, err, cap) != 0) return -1;
    /* Created, or an entry of this node's previous run (same name, same
     * advertised ingest endpoint: that socket cannot be bound twice) whose
     * lease has not expired yet is replaced.  An entry with another ingest
     * endpoint is another live daemon under the same name: this one stays
     * unregistered (new streams refused, the reason in `cluster` and the
     * log) until that entry goes, so the two never share streams. */
    int64_t rev = 0;
    ssmd_etcd_kv ex = {0};
    int r = ssmd_etcd_create_if_absent(c->thread_etcd, key, c->member_value, lease, &rev, &ex, err, cap);
    if (r == 0) {
        json_t *v = ex.value ? json_loads(ex.value, 0, NULL) : NULL;
        const char *other = v ? json_string_value(json_object_get(v, "ingest")) : NULL;
        if (other && c->ingest && strcmp(other, c->ingest) == 0)
            r = ssmd_etcd_put_if_revision(c->thread_etcd, key, c->member_value, lease, ex.mod_revision, &rev, err,
                                          cap);
        else {
            ssmd_errf(err, cap, "node name %s is in use by another live member (ingest %s): every daemon needs "
                      "its own --node; not registered while that member lives", c->node, other ? other : "?");
            if (!c->conflict_logged) ssmd_log(SSMD_LOG_ERROR, "cluster: %s", err);
            c->conflict_logged = true;
            r = -1;
        }
        json_decref(v);
        if (r == 0 && !err[0]) ssmd_errf(err, cap, "member key %s changed while registering; retrying", key);
    }
    ssmd_etcd_kv_clear(&ex);
    if (r != 1) {
        char e2[256];
        ssmd_etcd_lease_revoke(c->thread_etcd, lease, e2, sizeof e2);
        return -1;
    }
    pthread_mutex_lock(&c->mu);
    bool leaving = c->leaving;
    pthread_mutex_unlock(&c->mu);
    if (leaving) { /* the loop started leaving while this registration ran: undo it */
        char e2[256];
        ssmd_etcd_lease_revoke(c->thread_etcd, lease, e2, sizeof e2);
        return ssmd_errf(err, cap, "leaving: not registered again");
    }
    reclaim(c, lease);
    pthread_mutex_lock(&c->mu);
    c->lease = lease;
    c->healthy = true; /* registering is its own news (logged below) */
    bool again = c->ever_registered;
    c->ever_registered = true;
    pthread_mutex_unlock(&c->mu);
    ssmd_log(again ? SSMD_LOG_WARN : SSMD_LOG_INFO, "cluster: %sregistered as node %s at etcd %s (lease %llx, TTL %ld s)",
             again ? "re-" : "", c->node, ssmd_etcd_endpoint(c->thread_etcd), (unsigned long long)lease, c->ttl_s);
    return 0;
}

/* Re-reads the member list through e (the thread's or the loop's handle). */
static int refresh_members(ssmd_cluster *c, ssmd_etcd *e, char *err, size_t cap)
{
    ssmd_etcd_kv *kvs = NULL;
    size_t n = 0, nm = 0;
    if (ssmd_etcd_range(e, KEY_MEMBERS, true, &kvs, &n, err, cap) != 0) return -1;
    member *m = members_parse(kvs, n, &nm);
    ssmd_etcd_kvs_free(kvs, n);
    if (!m) return ssmd_errf(err, cap, "cluster: out of memory");
    pthread_mutex_lock(&c->mu);
    member *old = c->members;
    size_t n_old = c->n_members;
    bool changed = nm != n_old; /* etcd lists the keys in order: the same names come in the same order */
    for (size_t i = 0; !changed && i < nm; i++) changed = strcmp(m[i].node, old[i].node) != 0;
    if (changed) c->members_gen++;
    c->members = m;
    c->n_members = nm;
    pthread_mutex_unlock(&c->mu);
    if (nm != n_old) ssmd_log(SSMD_LOG_INFO, "cluster: %zu member%s", nm, nm == 1 ? "" : "s");
    members_free(old, n_old);
    return 0;
}

static int delete_released(ssmd_cluster *c, char *err, size_t cap)
{
    for (;;) {
        pthread_mutex_lock(&c->mu);
        claim r = { .revision = 0 };
        bool any = c->released.n > 0;
        if (any) r = c->released.v[--c->released.n];
        pthread_mutex_unlock(&c->mu);
        if (!any) return 0;
        /* the owner key while it is still this claim's, and the stream's
         * checkpoint keys with it; when the key has gone (the lease ended
         * meanwhile) the checkpoint keys still go unless another member
         * claimed the stream since (then they are its) */
        char *key = owner_key(r.name), prefix[sizeof KEY_CHECKPOINTS + SSMD_STREAM_NAME_MAX + 1];
        snprintf(prefix, sizeof prefix, "%s%s/", KEY_CHECKPOINTS, r.name);
        ssmd_etcd_cmp mine = { .key = key, .target = SSMD_ETCD_MOD, .value = r.revision };
        ssmd_etcd_cmp gone = { .key = key, .target = SSMD_ETCD_CREATE, .value = 0 };
        ssmd_etcd_op ops[] = { { .kind = SSMD_ETCD_DELETE_PREFIX, .key = prefix },
                               { .kind = SSMD_ETCD_DELETE, .key = key } };
        int rc = key ? ssmd_etcd_txn(c->thread_etcd, &mine, 1, ops, 2, NULL, err, cap) : -1;
        if (rc == 0) rc = ssmd_etcd_txn(c->thread_etcd, &gone, 1, ops, 1, NULL, err, cap);
        free(key);
        if (rc >= 0) ssmd_cluster_ckpt_released(c, r.name, rc == 1);
        if (rc < 0) { /* keep it for the next tick */
            pthread_mutex_lock(&c->mu);
            claims_put(&c->released, r.name, r.revision);
            pthread_mutex_unlock(&c->mu);
            return -1;
        }
    }
}

/* The thread: a tick every period (register or renew the lease, delete
 * released keys, store checkpoints, re-read the members); between ticks it
 * wakes for checkpoints and releases the loop queues, so those are stored
 * as they come instead of a period later. */
static void *cluster_thread(void *arg)
{
    ssmd_cluster *c = arg;
    double period = c->ttl_s / 3.0 < 1.0 ? c->ttl_s / 3.0 : 1.0;
    double next_tick = 0;
    bool first = true;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool stop = c->stopping;
        int64_t lease = c->lease;
        pthread_mutex_unlock(&c->mu);
        if (stop) break;
        char err[512] = "";
        int rc = 0;
        if (mono_s() >= next_tick) {
            next_tick = mono_s() + period;
            pthread_mutex_lock(&c->mu);
            c->ckpt_backoff = false; /* a tick retries what failed */
            pthread_mutex_unlock(&c->mu);
            pthread_mutex_lock(&c->mu);
            bool leaving = c->leaving;
            pthread_mutex_unlock(&c->mu);
            if (!lease && leaving) {
                rc = 0; /* leaving: never registered again */
            } else if (!lease) {
                rc = register_member(c, err, sizeof err);
                if (rc != 0 && first)
                    ssmd_log(SSMD_LOG_WARN, "cluster: cannot register node %s: %s; new streams are refused until "
                             "etcd answers", c->node, err);
                first = false;
                pthread_mutex_lock(&c->mu);
                lease = c->lease;
                pthread_mutex_unlock(&c->mu);
            } else {
                long ttl = ssmd_etcd_lease_keepalive(c->thread_etcd, lease, err, sizeof err);
                if (ttl == 0) {
                    ssmd_log(SSMD_LOG_WARN, "cluster: lease %llx expired (etcd did not hear from this node for %ld "
                             "s); registering again", (unsigned long long)lease, c->ttl_s);
                    pthread_mutex_lock(&c->mu);
                    c->lease = 0;
                    pthread_mutex_unlock(&c->mu);
                    next_tick = 0;
                    continue; /* at once: the member is missing from the list */
                }
                rc = ttl < 0 ? -1 : 0;
            }
            if (rc == 0 && lease) rc = delete_released(c, err, sizeof err);
            if (rc == 0 && lease) ssmd_cluster_ckpt_write(c, lease, err, sizeof err); /* failures: not an outage */
            if (rc == 0) rc = refresh_members(c, c->thread_etcd, err, sizeof err);
            set_health(c, rc == 0, err);
        } else if (lease) {
            /* woken between ticks: what the loop queued */
            if (delete_released(c, err, sizeof err) != 0) set_health(c, false, err);
            else ssmd_cluster_ckpt_write(c, lease, err, sizeof err);
        }
        /* sleep until the next tick, or until stopped or given work */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait = next_tick - mono_s();
        double secs = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + (wait > 0 ? wait : 0);
        ts.tv_sec = (time_t)secs;
        ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
        pthread_mutex_lock(&c->mu);
        for (;;) {
            bool work = c->healthy && c->lease && !c->ckpt_backoff && (c->ckpt_qn > 0 || c->released.n > 0);
            if (c->stopping || work || mono_s() >= next_tick) break;
            if (pthread_cond_timedwait(&c->wake, &c->mu, &ts) != 0) break; /* the outer loop looks again */
        }
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

/* ---- start, stop -------------------------------------------------------- */

/* The endpoint clients of other machines connect to: a wildcard host ('*'
 * or 0.0.0.0 in a tcp endpoint) becomes this host's name. */
static char *advertised(const char *endpoint, const char *host)
{
    const char *rest = NULL;
    if (strncmp(endpoint, "tcp://*:", 8) == 0) rest = endpoint + 7;
    else if (strncmp(endpoint, "tcp://0.0.0.0:", 14) == 0) rest = endpoint + 13;
    if (!rest) return strdup(endpoint);
    size_t n = strlen(host) + strlen(rest) + 8;
    char *s = malloc(n);
    if (s) snprintf(s, n, "tcp://%s%s", host, rest);
    return s;
}

int ssmd_cluster_start(ssmd_cluster **out, const ssmd_config *cfg, uint64_t epoch, char *err, size_t cap)
{
    *out = NULL;
    char where[400];
    if (ssmd_etcd_url_check(cfg->cluster, err, cap) != 0) {
        /* "cluster: why" -> "FILE:LINE: cluster: why" or "--cluster: why" */
        const char *why = strncmp(err, "cluster: ", 9) == 0 ? err + 9 : err;
        char *copy = strdup(why);
        ssmd_errf(err, cap, "%s: %s", ssmd_config_where(cfg, "cluster", where, sizeof where), copy ? copy : why);
        free(copy);
        return -1;
    }
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "localhost");
    const char *node = cfg->node[0] ? cfg->node : host;
    if (!ssmd_stream_name_valid(node, strlen(node)))
        return ssmd_errf(err, cap, "%s: '%s' is not a valid node name (1-64 of [A-Za-z0-9_.-], not starting "
                         "with '.')%s", ssmd_config_where(cfg, "node", where, sizeof where), node,
                         cfg->node[0] ? "" : "; the host name is used when --node is not given");
    if (ssmd_etcd_global_init() != 0) return ssmd_errf(err, cap, "cluster: libcurl initialisation failed");
    ssmd_cluster *c = calloc(1, sizeof *c);
    if (!c) return ssmd_errf(err, cap, "cluster: out of memory");
    memcpy(c->node, node, strlen(node) + 1); /* ssmd_stream_name_valid: at most 64 bytes, fits */
    c->ttl_s = cfg->cluster_ttl_s;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->wake, NULL);
    c->url = strdup(cfg->cluster);
    c->ingest = advertised(cfg->ingest, host);
    char *pub = advertised(cfg->pub, host), *control = advertised(cfg->control, host);
    char ep[32];
    snprintf(ep, sizeof ep, "0x%016llx", (unsigned long long)epoch);
    snprintf(c->epoch, sizeof c->epoch, "%s", ep);
    c->ckpt_inline_max = cfg->checkpoint_inline_bytes;
    c->ckpt_dir = strdup(cfg->checkpoint_dir);
    json_t *mv = json_pack("{s:s, s:s?, s:s?, s:s?, s:i, s:s}", "node", c->node, "ingest", c->ingest, "pub", pub,
                           "control", control, "max_streams", (int)cfg->max_streams, "epoch", ep);
    json_t *ov = json_pack("{s:s, s:s?}", "node", c->node, "ingest", c->ingest);
    c->member_value = mv ? json_dumps(mv, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    c->owner_value = ov ? json_dumps(ov, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(mv);
    json_decref(ov);
    free(pub);
    free(control);
    if (!c->url || !c->ingest || !c->member_value || !c->owner_value || !c->ckpt_dir) {
        ssmd_errf(err, cap, "cluster: out of memory");
        goto fail;
    }
    long thread_ms = c->ttl_s * 1000 / 3;
    if (thread_ms > 2000) thread_ms = 2000;
    if (!(c->thread_etcd = ssmd_etcd_create(c->url, thread_ms, err, cap)) ||
        !(c->loop_etcd = ssmd_etcd_create(c->url, SSMD_CLUSTER_LOOP_TIMEOUT_MS, err, cap)))
        goto fail;
    snprintf(c->error, sizeof c->error, "not registered yet");
    if (pthread_create(&c->thread, NULL, cluster_thread, c) != 0) {
        ssmd_errf(err, cap, "cluster: cannot start its thread");
        goto fail;
    }
    c->thread_started = true;
    *out = c;
    return 0;
fail:
    ssmd_cluster_stop(c);
    return -1;
}

void ssmd_cluster_stop(ssmd_cluster *c)
{
    if (!c) return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_cond_signal(&c->wake);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    if (c->lease && c->thread_etcd) {
        char err[512];
        /* streams closed while stopping: their checkpoint keys go (the
         * lease takes the owner keys) */
        if (delete_released(c, err, sizeof err) != 0)
            ssmd_log(SSMD_LOG_WARN, "cluster: %s; the checkpoint keys of the streams that ended stay", err);
        if (ssmd_etcd_lease_revoke(c->thread_etcd, c->lease, err, sizeof err) != 0)
            ssmd_log(SSMD_LOG_WARN, "cluster: %s; this node's entries go when lease %llx expires (%ld s)", err,
                     (unsigned long long)c->lease, c->ttl_s);
        else
            ssmd_log(SSMD_LOG_INFO, "cluster: node %s left (lease revoked)", c->node);
    }
    ssmd_etcd_destroy(c->thread_etcd);
    ssmd_etcd_destroy(c->loop_etcd);
    members_free(c->members, c->n_members);
    ssmd_cluster_ckpt_free(c);
    free(c->ckpt_dir);
    free(c->owned.v);
    free(c->released.v);
    free(c->stale.v);
    free(c->url);
    free(c->ingest);
    free(c->member_value);
    free(c->owner_value);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->wake);
    free(c);
}

/* ---- the loop thread's side --------------------------------------------- */

/* The placement of stream among the members last read (this node counted
 * even before its own entry was read back). */
static void place(ssmd_cluster *c, const char *stream, ssmd_cluster_owner *o)
{
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    const char **names = malloc((c->n_members + 1) * sizeof *names);
    size_t *index = malloc((c->n_members + 1) * sizeof *index); /* names[i] is members[index[i]] */
    bool self_listed = false;
    for (size_t i = 0; names && index && i < c->n_members; i++) {
        bool self = strcmp(c->members[i].node, c->node) == 0;
        self_listed |= self;
        if (self && c->leaving) continue; /* leaving: placed on the others only */
        index[n] = i;
        names[n++] = c->members[i].node;
    }
    if (names && index && !self_listed && !c->leaving) {
        index[n] = c->n_members;
        names[n++] = c->node;
    }
    int k = names && index && n ? ssmd_hrw_pick(stream, names, n) : -1;
    if (k < 0 || strcmp(names[k], c->node) == 0 || index[k] >= c->n_members) {
        /* this node; or, leaving with no other member, still this node */
        snprintf(o->node, sizeof o->node, "%s", c->node);
        snprintf(o->ingest, sizeof o->ingest, "%s", c->ingest);
    } else {
        snprintf(o->node, sizeof o->node, "%s", c->members[index[k]].node);
        snprintf(o->ingest, sizeof o->ingest, "%s", c->members[index[k]].ingest);
    }
    free(index);
    pthread_mutex_unlock(&c->mu);
    free(names);
}

static void owner_from_value(ssmd_cluster_owner *o, const char *value)
{
    json_t *j = json_loads(value, 0, NULL);
    const char *node = json_string_value(json_object_get(j, "node"));
    const char *ingest = json_string_value(json_object_get(j, "ingest"));
    snprintf(o->node, sizeof o->node, "%s", node ? node : "?");
    snprintf(o->ingest, sizeof o->ingest, "%s", ingest ? ingest : "?");
    json_decref(j);
}

static bool usable(ssmd_cluster *c, int64_t *lease, char *msg, size_t cap)
{
    pthread_mutex_lock(&c->mu);
    bool ok = c->healthy && c->lease != 0;
    *lease = c->lease;
    if (!ok)
        ssmd_errf(msg, cap, "cluster coordinator unavailable (%s): new streams are refused until etcd answers; "
                  "running streams continue", c->error);
    pthread_mutex_unlock(&c->mu);
    return ok;
}

ssmd_cluster_verdict ssmd_cluster_claim(ssmd_cluster *c, const char *stream, ssmd_cluster_owner *owner,
                                        ssmd_cluster_found *ckpt, char *msg, size_t cap)
{
    if (ckpt) memset(ckpt, 0, sizeof *ckpt);
    int64_t lease;
    if (!usable(c, &lease, msg, cap)) return SSMD_CLUSTER_UNAVAILABLE;
    char err[512] = "", *key = owner_key(stream);
    if (!key) {
        ssmd_errf(msg, cap, "out of memory");
        return SSMD_CLUSTER_UNAVAILABLE;
    }
    /* placed on the members as they are now, not as of the thread's last
     * tick: every daemon then agrees as soon as a join or leave is in etcd */
    int r = refresh_members(c, c->loop_etcd, err, sizeof err);
    place(c, stream, owner);
    bool mine = strcmp(owner->node, c->node) == 0;
    ssmd_etcd_kv ex = { 0 };
    int64_t rev = 0;
    /* r: 1 claimed, 0 exists (ex), 2 absent and placed elsewhere, 3 lost a
     * race for the key, -1 failed */
    if (r != 0) {
        r = -1;
    } else if (mine) {
        r = ssmd_etcd_create_if_absent(c->loop_etcd, key, c->owner_value, lease, &rev, &ex, err, sizeof err);
    } else {
        ssmd_etcd_kv *kvs = NULL;
        size_t n = 0;
        r = ssmd_etcd_range(c->loop_etcd, key, false, &kvs, &n, err, sizeof err);
        if (r == 0 && n == 0) r = 2;
        if (r == 0) {
            ex = kvs[0];
            kvs[0] = (ssmd_etcd_kv){ 0 };
        }
        ssmd_etcd_kvs_free(kvs, n);
    }
    if (r == 0) {
        owner_from_value(owner, ex.value);
        if (strcmp(owner->node, c->node) == 0) {
            /* this node's own key: from its previous run (same name, lease
             * not yet expired) or a release not yet done: take it over */
            r = ssmd_etcd_put_if_revision(c->loop_etcd, key, c->owner_value, lease, ex.mod_revision, &rev, err,
                                          sizeof err);
            if (r == 0) r = 3;
        }
    }
    ssmd_etcd_kv_clear(&ex);
    free(key);
    if (r < 0) {
        set_health(c, false, err);
        ssmd_errf(msg, cap, "cluster coordinator unavailable (%s): new streams are refused until etcd answers; "
                  "running streams continue", err);
        return SSMD_CLUSTER_UNAVAILABLE;
    }
    if (r == 3) { /* etcd answered: not an outage */
        ssmd_errf(msg, cap, "the owner key of stream '%s' changed during the claim; push again", stream);
        return SSMD_CLUSTER_UNAVAILABLE;
    }
    if (r == 1) {
        pthread_mutex_lock(&c->mu);
        if (c->lease != lease) {
            /* the lease expired and was replaced while this claim waited for etcd: the key just
             * written went (or goes) with the old lease, and the re-registration's reclaim did
             * not see this stream yet, so it would run with no owner key (its checkpoints
             * refused); seen under heavy load, where a lease outlived its TTL unrenewed */
            pthread_mutex_unlock(&c->mu);
            ssmd_errf(msg, cap, "this node's lease changed during the claim of stream '%s'; push again", stream);
            return SSMD_CLUSTER_UNAVAILABLE;
        }
        claims_take(&c->released, stream); /* a delete still queued would now fail anyway */
        int rc = claims_put(&c->owned, stream, rev);
        pthread_mutex_unlock(&c->mu);
        if (rc != 0) {
            ssmd_errf(msg, cap, "out of memory");
            return SSMD_CLUSTER_UNAVAILABLE;
        }
        snprintf(owner->node, sizeof owner->node, "%s", c->node);
        snprintf(owner->ingest, sizeof owner->ingest, "%s", c->ingest);
        if (ckpt) ssmd_cluster_ckpt_fetch(c, stream, ckpt);
        return SSMD_CLUSTER_OWNED;
    }
    ssmd_errf(msg, cap, r == 2 ? "stream '%s' is placed on node %s: push it to %s"
                               : "stream '%s' belongs to node %s: push it to %s", stream, owner->node, owner->ingest);
    return SSMD_CLUSTER_ELSEWHERE;
}

uint64_t ssmd_cluster_members_gen(ssmd_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t g = c->members_gen;
    pthread_mutex_unlock(&c->mu);
    return g;
}

bool ssmd_cluster_placed_elsewhere(ssmd_cluster *c, const char *stream, ssmd_cluster_owner *o)
{
    place(c, stream, o);
    return strcmp(o->node, c->node) != 0;
}

int ssmd_cluster_handover(ssmd_cluster *c, const char *stream, char *err, size_t cap)
{
    int64_t lease;
    if (!usable(c, &lease, err, cap)) return -1;
    pthread_mutex_lock(&c->mu);
    int64_t rev = claims_take(&c->owned, stream);
    pthread_mutex_unlock(&c->mu);
    if (!rev) return ssmd_errf(err, cap, "stream '%s' is not claimed by this node", stream);
    char *key = owner_key(stream);
    int r = key ? ssmd_etcd_delete_if_revision(c->loop_etcd, key, rev, err, cap) : -1;
    free(key);
    pthread_mutex_lock(&c->mu);
    if (r < 0) {
        claims_put(&c->owned, stream, rev); /* it stays: still this node's */
    } else {
        ssmd_cluster_ckpt_drop_locked(c, stream); /* a later one could not be stored now */
    }
    pthread_mutex_unlock(&c->mu);
    /* the checkpoint keys and file stay: the next owner resumes from them */
    if (r >= 0) ssmd_cluster_ckpt_released(c, stream, false);
    return r;
}

int ssmd_cluster_leave(ssmd_cluster *c, char *err, size_t cap)
{
    int64_t lease;
    if (!usable(c, &lease, err, cap)) return -1;
    char key[sizeof KEY_MEMBERS + 64];
    snprintf(key, sizeof key, "%s%s", KEY_MEMBERS, c->node);
    pthread_mutex_lock(&c->mu);
    c->leaving = true; /* from now on: not placed here, not registered again */
    pthread_mutex_unlock(&c->mu);
    /* only this run's entry (its lease): a newer daemon under this name keeps its own */
    ssmd_etcd_cmp cmp = { .key = key, .target = SSMD_ETCD_LEASE, .value = lease };
    ssmd_etcd_op op = { .kind = SSMD_ETCD_DELETE, .key = key };
    int r = ssmd_etcd_txn(c->loop_etcd, &cmp, 1, &op, 1, NULL, err, cap);
    if (r < 0) {
        pthread_mutex_lock(&c->mu);
        c->leaving = false;
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    /* r == 0: the entry is not this lease's any more (the lease ran out meanwhile and the
     * entry went with it; a registration racing with this one revokes its new lease when it
     * sees `leaving`): either way not listed under this run's lease */
    /* the member list without this node: the others' placement from now on */
    if (refresh_members(c, c->loop_etcd, err, cap) != 0) err[0] = '\0'; /* place() leaves it out anyway */
    pthread_mutex_lock(&c->mu);
    c->members_gen++; /* the loop re-checks every stream's placement */
    pthread_mutex_unlock(&c->mu);
    ssmd_log(SSMD_LOG_INFO, "cluster: node %s leaving: %s, its streams are handed over", c->node,
             r == 1 ? "member entry deleted" : "its member entry was gone already");
    return 0;
}

bool ssmd_cluster_stale_next(ssmd_cluster *c, char *stream, size_t cap)
{
    pthread_mutex_lock(&c->mu);
    bool any = c->stale.n > 0;
    if (any) snprintf(stream, cap, "%s", c->stale.v[--c->stale.n].name);
    pthread_mutex_unlock(&c->mu);
    return any;
}

void ssmd_cluster_release(ssmd_cluster *c, const char *stream)
{
    pthread_mutex_lock(&c->mu);
    int64_t rev = claims_take(&c->owned, stream);
    ssmd_cluster_ckpt_drop_locked(c, stream);
    if (rev && claims_put(&c->released, stream, rev) == 0) pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
}

json_t *ssmd_cluster_describe(ssmd_cluster *c)
{
    char err[512] = "";
    int64_t lease;
    bool ok = usable(c, &lease, err, sizeof err);
    ssmd_etcd_kv *mk = NULL, *ok_kvs = NULL;
    size_t n_mk = 0, n_ok = 0;
    /* fresh from etcd when it answers; the thread's last list otherwise */
    bool fresh = ok && ssmd_etcd_range(c->loop_etcd, KEY_MEMBERS, true, &mk, &n_mk, err, sizeof err) == 0 &&
                 ssmd_etcd_range(c->loop_etcd, KEY_OWNERS, true, &ok_kvs, &n_ok, err, sizeof err) == 0;
    size_t nm = 0;
    member *m = fresh ? members_parse(mk, n_mk, &nm) : NULL;
    json_t *members = json_array(), *owners = fresh ? json_array() : json_null();
    pthread_mutex_lock(&c->mu);
    const member *src = m ? m : c->members;
    size_t n_src = m ? nm : c->n_members;
    for (size_t i = 0; i < n_src; i++)
        json_array_append_new(members, json_pack("{s:s, s:s, s:s, s:s, s:i, s:b}", "node", src[i].node, "ingest",
                                                 src[i].ingest, "pub", src[i].pub, "control", src[i].control,
                                                 "max_streams", (int)src[i].max_streams, "self",
                                                 strcmp(src[i].node, c->node) == 0));
    json_t *owned = json_array();
    for (size_t i = 0; i < c->owned.n; i++) json_array_append_new(owned, json_string(c->owned.v[i].name));
    char lease_hex[32];
    snprintf(lease_hex, sizeof lease_hex, "%llx", (unsigned long long)c->lease);
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:i, s:o, s:o}", "node", c->node, "etcd", c->url, "endpoint",
                          ssmd_etcd_endpoint(c->loop_etcd), "healthy", c->healthy && c->lease != 0, "lease",
                          lease_hex, "ttl_s", (int)c->ttl_s, "members", members, "owned", owned);
    if (o && !(c->healthy && c->lease)) json_object_set_new(o, "error", json_string(c->error));
    if (o) json_object_set_new(o, "checkpoints", ssmd_cluster_ckpt_describe_locked(c));
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; fresh && i < n_ok; i++) {
        ssmd_cluster_owner ow;
        owner_from_value(&ow, ok_kvs[i].value);
        json_array_append_new(owners, json_pack("{s:s, s:s, s:s}", "stream", ok_kvs[i].key + strlen(KEY_OWNERS),
                                                "node", ow.node, "ingest", ow.ingest));
    }
    if (o) json_object_set_new(o, "owners", owners);
    else json_decref(owners);
    members_free(m, nm);
    ssmd_etcd_kvs_free(mk, n_mk);
    ssmd_etcd_kvs_free(ok_kvs, n_ok);
    return o;
}

json_t *ssmd_cluster_locate(ssmd_cluster *c, const char *stream)
{
    ssmd_cluster_owner o;
    const char *by = "placement";
    char err[512] = "", *key = owner_key(stream);
    int64_t lease;
    bool fresh = usable(c, &lease, err, sizeof err) && refresh_members(c, c->loop_etcd, err, sizeof err) == 0;
    bool checked = false;
    place(c, stream, &o);
    if (key && fresh) {
        ssmd_etcd_kv *kvs = NULL;
        size_t n = 0;
        if (ssmd_etcd_range(c->loop_etcd, key, false, &kvs, &n, err, sizeof err) == 0) {
            checked = true;
            if (n > 0) {
                owner_from_value(&o, kvs[0].value);
                by = "owner";
            }
        }
        ssmd_etcd_kvs_free(kvs, n);
    }
    free(key);
    json_t *r = json_pack("{s:s, s:s, s:s, s:s}", "stream", stream, "node", o.node, "ingest", o.ingest, "by", by);
    if (r) json_object_set_new(r, "checkpoint", fresh ? ssmd_cluster_ckpt_locate(c, stream) : json_null());
    if (r && !checked) /* by is "placement" from the last member list: no owner key was read */
        json_object_set_new(r, "unverified", json_string(err[0] ? err : "etcd unavailable"));
    return r;
}
