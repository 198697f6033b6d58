/* SPDX-License-Identifier: MIT */
/* ssm-push --cluster: placement by etcd and the input kept for a replay
 * (push_cluster.h).  The keys and the weight are the daemon's
 * (docs/cluster.md, "What is written to etcd", "Placement"). */
#include "push_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hrw.h"

enum { CLUSTER_MAX_MEMBERS = 4096 };

/* {"node":..., "ingest":..., "epoch":...} of a member or owner key into t
 * (fields absent stay ""); 0, or -1 when value is not such an object. */
static int target_from_json(const char *value, size_t len, push_target *t)
{
    json_error_t jerr;
    json_t *j = json_loadb(value, len, 0, &jerr);
    const char *node = json_string_value(json_object_get(j, "node"));
    const char *ingest = json_string_value(json_object_get(j, "ingest"));
    const char *epoch = json_string_value(json_object_get(j, "epoch"));
    int ok = node && ingest && strlen(node) < sizeof t->node && strlen(ingest) < sizeof t->ingest;
    if (ok) {
        snprintf(t->node, sizeof t->node, "%s", node);
        snprintf(t->ingest, sizeof t->ingest, "%s", ingest);
        snprintf(t->epoch, sizeof t->epoch, "%s", epoch ? epoch : "");
    }
    json_decref(j);
    return ok ? 0 : -1;
}

void push_cluster_member_epoch(ssmd_etcd *e, const char *node, char *out, size_t cap, int64_t *lease)
{
    if (lease) *lease = 0;
    char key[128], err[256];
    ssmd_etcd_kv *kvs = NULL;
    size_t n = 0;
    push_target m;
    out[0] = '\0';
    snprintf(key, sizeof key, "/ssmd/members/%s", node);
    if (ssmd_etcd_range(e, key, false, &kvs, &n, err, sizeof err) == 0 && n == 1 &&
        target_from_json(kvs[0].value, kvs[0].value_len, &m) == 0) {
        snprintf(out, cap, "%s", m.epoch);
        if (lease) *lease = kvs[0].lease;
    }
    ssmd_etcd_kvs_free(kvs, n);
}

int push_cluster_locate(ssmd_etcd *e, const char *stream, push_target *out, char *err, size_t cap)
{
    char key[128];
    ssmd_etcd_kv *kvs = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    snprintf(key, sizeof key, "/ssmd/owners/%s", stream);
    if (ssmd_etcd_range(e, key, false, &kvs, &n, err, cap) != 0) return -1;
    int owned = n == 1 && target_from_json(kvs[0].value, kvs[0].value_len, out) == 0;
    ssmd_etcd_kvs_free(kvs, n);
    if (owned) {
        out->by_owner = 1;
        push_cluster_member_epoch(e, out->node, out->epoch, sizeof out->epoch, &out->lease);
        return 1;
    }
    if (ssmd_etcd_range(e, "/ssmd/members/", true, &kvs, &n, err, cap) != 0) return -1;
    push_target *m = calloc(n ? n : 1, sizeof *m);
    const char **names = calloc(n ? n : 1, sizeof *names);
    size_t k = 0;
    for (size_t i = 0; m && names && i < n && k < CLUSTER_MAX_MEMBERS; i++)
        if (target_from_json(kvs[i].value, kvs[i].value_len, &m[k]) == 0) {
            m[k].lease = kvs[i].lease;
            names[k] = m[k].node;
            k++;
        }
    ssmd_etcd_kvs_free(kvs, n);
    int rc = 0;
    if (!m || !names) {
        snprintf(err, cap, "out of memory for %zu members", n);
        rc = -1;
    } else if (k > 0) {
        *out = m[ssmd_hrw_pick(stream, names, k)];
        rc = 1;
    }
    free(m);
    free(names);
    return rc;
}

int push_cluster_member_pubs(ssmd_etcd *e, char **pubs, size_t max, char *err, size_t cap)
{
    ssmd_etcd_kv *kvs = NULL;
    size_t n = 0, k = 0;
    if (ssmd_etcd_range(e, "/ssmd/members/", true, &kvs, &n, err, cap) != 0) return -1;
    for (size_t i = 0; i < n && k < max; i++) {
        json_error_t jerr;
        json_t *j = json_loadb(kvs[i].value, kvs[i].value_len, 0, &jerr);
        const char *pub = json_string_value(json_object_get(j, "pub"));
        if (pub && *pub && (pubs[k] = strdup(pub)) != NULL) k++;
        json_decref(j);
    }
    ssmd_etcd_kvs_free(kvs, n);
    return (int)k;
}

int push_cluster_same(const push_target *t, const push_target *dead)
{
    if (strcmp(t->node, dead->node) != 0) return 0;
    if (t->lease && dead->lease) return t->lease == dead->lease; /* registered again: usable */
    if (t->epoch[0] && dead->epoch[0]) return strcmp(t->epoch, dead->epoch) == 0;
    return strcmp(t->ingest, dead->ingest) == 0;
}

int push_kept_append(push_kept *k, const float *x, size_t n)
{
    if (k->n + n > k->cap) {
        size_t cap = k->cap ? k->cap : 65536;
        while (cap < k->n + n) cap *= 2;
        float *p = realloc(k->x, cap * sizeof *p);
        if (!p) return -1;
        k->x = p;
        k->cap = cap;
    }
    memcpy(k->x + k->n, x, n * sizeof *x);
    k->n += n;
    return 0;
}

void push_kept_trim(push_kept *k, uint64_t upto)
{
    if (upto <= k->from) return;
    size_t drop = upto - k->from < k->n ? (size_t)(upto - k->from) : k->n;
    memmove(k->x, k->x + drop, (k->n - drop) * sizeof *k->x);
    k->n -= drop;
    k->from += drop;
}

const float *push_kept_at(const push_kept *k, uint64_t at)
{
    return k->x + (at - k->from);
}

void push_kept_free(push_kept *k)
{
    free(k->x);
    memset(k, 0, sizeof *k);
}
