/* SPDX-License-Identifier: MIT */
/* etcd v3 through its JSON gateway (etcd.h).  Each call is one HTTP POST of
 * a JSON body to http://HOST:PORT/v3/...; the gateway answers JSON with the
 * protobuf field names, int64 fields as strings and omitting fields that are
 * zero or false (a failed txn has no "succeeded", an expired lease's
 * keepalive no "TTL").  Errors come back as a non-2xx status with
 * {"error"|"message": ..., "code": N}. */
#include "etcd.h"
#include "errf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

enum { ETCD_MAX_ENDPOINTS = 8, ETCD_MAX_REPLY = 64 << 20 };

struct ssmd_etcd {
    CURL *curl;
    struct curl_slist *headers;
    char *endpoints[ETCD_MAX_ENDPOINTS];   /* "http://HOST:PORT" */
    int n_endpoints, current;
    long timeout_ms;
    char *buf;                             /* the reply being read */
    size_t len, cap;
};

int ssmd_etcd_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* Calls fn(host_port, len, user) for each endpoint of url; returns -1 with
 * err on a syntax error. */
static int url_each(const char *url, int (*fn)(const char *hp, size_t len, void *user), void *user, char *err,
                    size_t cap)
{
    static const char scheme[] = "etcd://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0) {
        ssmd_errf(err, cap, "cluster: expected etcd://HOST:PORT[,HOST:PORT...], got '%s'", url);
        return -1;
    }
    const char *p = url + sizeof scheme - 1;
    int n = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        bool port_ok = colon && colon > p && (size_t)(colon - p) + 1 < len;
        for (const char *q = colon ? colon + 1 : p; port_ok && q < p + len; q++)
            if (*q < '0' || *q > '9') port_ok = false;
        for (const char *q = p; port_ok && q < colon; q++)
            if (*q == '/' || *q == '@' || *q == ' ') port_ok = false;
        if (!port_ok || len > 255) {
            ssmd_errf(err, cap, "cluster: '%.*s' in '%s' is not HOST:PORT", (int)(len > 255 ? 255 : len), p, url);
            return -1;
        }
        long port = 0;
        for (const char *q = colon + 1; q < p + len && port <= 65535; q++) port = port * 10 + (*q - '0');
        if (port < 1 || port > 65535) {
            ssmd_errf(err, cap, "cluster: port '%.*s' in '%s' is not in 1..65535", (int)(p + len - colon - 1),
                      colon + 1, url);
            return -1;
        }
        if (++n > ETCD_MAX_ENDPOINTS) {
            ssmd_errf(err, cap, "cluster: more than %d etcd endpoints in '%s'", ETCD_MAX_ENDPOINTS, url);
            return -1;
        }
        if (fn && fn(p, len, user) != 0) {
            ssmd_errf(err, cap, "cluster: out of memory");
            return -1;
        }
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

int ssmd_etcd_url_check(const char *url, char *err, size_t cap)
{
    return url_each(url, NULL, NULL, err, cap);
}

static int add_endpoint(const char *hp, size_t len, void *user)
{
    ssmd_etcd *e = user;
    char *s = malloc(len + 8);
    if (!s) return -1;
    snprintf(s, len + 8, "http://%.*s", (int)len, hp);
    e->endpoints[e->n_endpoints++] = s;
    return 0;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *user)
{
    ssmd_etcd *e = user;
    size_t n = size * nmemb;
    if (e->len + n + 1 > ETCD_MAX_REPLY) return 0; /* aborts the transfer */
    if (e->len + n + 1 > e->cap) {
        size_t c = e->cap ? e->cap : 4096;
        while (c < e->len + n + 1) c *= 2;
        char *b = realloc(e->buf, c);
        if (!b) return 0;
        e->buf = b;
        e->cap = c;
    }
    memcpy(e->buf + e->len, p, n);
    e->len += n;
    e->buf[e->len] = '\0';
    return n;
}

ssmd_etcd *ssmd_etcd_create(const char *url, long timeout_ms, char *err, size_t cap)
{
    ssmd_etcd *e = calloc(1, sizeof *e);
    if (!e) {
        ssmd_errf(err, cap, "cluster: out of memory");
        return NULL;
    }
    e->timeout_ms = timeout_ms;
    if (url_each(url, add_endpoint, e, err, cap) != 0) goto fail;
    e->curl = curl_easy_init();
    e->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!e->curl || !e->headers) {
        ssmd_errf(err, cap, "cluster: cannot create a libcurl handle");
        goto fail;
    }
    curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, e->headers);
    curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS time-outs */
    curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e->curl, CURLOPT_PROTOCOLS_STR, "http");
    return e;
fail:
    ssmd_etcd_destroy(e);
    return NULL;
}

void ssmd_etcd_destroy(ssmd_etcd *e)
{
    if (!e) return;
    if (e->curl) curl_easy_cleanup(e->curl);
    curl_slist_free_all(e->headers);
    for (int i = 0; i < e->n_endpoints; i++) free(e->endpoints[i]);
    free(e->buf);
    free(e);
}

const char *ssmd_etcd_endpoint(const ssmd_etcd *e)
{
    return e->endpoints[e->current];
}

/* POSTs body to path on the endpoints in turn; returns the parsed reply
 * object (caller decrefs) or NULL with err. */
static json_t *call(ssmd_etcd *e, const char *path, json_t *body, char *err, size_t cap)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        ssmd_errf(err, cap, "etcd: out of memory");
        return NULL;
    }
    json_t *reply = NULL;
    for (int attempt = 0; attempt < e->n_endpoints && !reply; attempt++) {
        int k = (e->current + attempt) % e->n_endpoints;
        char url[512];
        snprintf(url, sizeof url, "%s%s", e->endpoints[k], path);
        e->len = 0;
        if (e->buf) e->buf[0] = '\0';
        curl_easy_setopt(e->curl, CURLOPT_URL, url);
        curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, text);
        CURLcode rc = curl_easy_perform(e->curl);
        long status = 0;
        curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK) {
            ssmd_errf(err, cap, "etcd at %s: %s", e->endpoints[k], curl_easy_strerror(rc));
            continue;
        }
        json_error_t je;
        json_t *j = json_loadb(e->buf ? e->buf : "", e->len, 0, &je);
        if (status / 100 != 2 || !json_is_object(j)) {
            const char *m = json_string_value(json_object_get(j, "message"));
            if (!m) m = json_string_value(json_object_get(j, "error"));
            ssmd_errf(err, cap, "etcd at %s: %s: HTTP %ld%s%s", e->endpoints[k], path, status, m ? ": " : "",
                      m ? m : "");
            json_decref(j);
            continue;
        }
        e->current = k;
        reply = j;
    }
    free(text);
    return reply;
}

/* An int64 field, which the gateway writes as a decimal string (or omits when 0). */
static int64_t get_i64(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) return (int64_t)json_integer_value(v);
    const char *s = json_string_value(v);
    return s ? strtoll(s, NULL, 10) : 0;
}

static json_t *i64_string(int64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)v);
    return json_string(s);
}

static json_t *b64_bytes(const void *p, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *b = malloc(cap);
    if (!b) return NULL;
    ssmd_base64_encode(b, cap, p, n);
    json_t *j = json_string(b);
    free(b);
    return j;
}

static json_t *b64_string(const char *s)
{
    return b64_bytes(s, strlen(s));
}

/* A base64 field decoded into a NUL-terminated malloc'd buffer ("" when
 * absent); *len (may be NULL) gets the byte count. */
static char *b64_field(const json_t *o, const char *key, size_t *len)
{
    const char *s = json_string_value(json_object_get(o, key));
    size_t n = s ? strlen(s) : 0;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    long m = s ? ssmd_base64_decode(out, n + 1, s, n) : 0;
    if (m < 0) m = 0;
    out[m] = '\0';
    if (len) *len = (size_t)m;
    return out;
}

static int kv_from_json(ssmd_etcd_kv *kv, const json_t *o)
{
    kv->key = b64_field(o, "key", NULL);
    kv->value = b64_field(o, "value", &kv->value_len);
    kv->lease = get_i64(o, "lease");
    kv->mod_revision = get_i64(o, "mod_revision");
    return kv->key && kv->value ? 0 : -1;
}

void ssmd_etcd_kv_clear(ssmd_etcd_kv *kv)
{
    if (!kv) return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

void ssmd_etcd_kvs_free(ssmd_etcd_kv *kvs, size_t n)
{
    for (size_t i = 0; kvs && i < n; i++) ssmd_etcd_kv_clear(&kvs[i]);
    free(kvs);
}

int ssmd_etcd_lease_grant(ssmd_etcd *e, long ttl_s, int64_t *id, char *err, size_t cap)
{
    json_t *r = call(e, "/v3/lease/grant", json_pack("{s:o}", "TTL", i64_string(ttl_s)), err, cap);
    if (!r) return -1;
    *id = get_i64(r, "ID");
    const char *m = json_string_value(json_object_get(r, "error"));
    json_decref(r);
    if (*id == 0) {
        ssmd_errf(err, cap, "etcd at %s: lease grant refused%s%s", ssmd_etcd_endpoint(e), m ? ": " : "", m ? m : "");
        return -1;
    }
    return 0;
}

long ssmd_etcd_lease_keepalive(ssmd_etcd *e, int64_t id, char *err, size_t cap)
{
    /* a stream on the gateway: one request body, one {"result": ...} line */
    json_t *r = call(e, "/v3/lease/keepalive", json_pack("{s:o}", "ID", i64_string(id)), err, cap);
    if (!r) return -1;
    json_t *res = json_object_get(r, "result");
    long ttl = res ? (long)get_i64(res, "TTL") : -1;
    json_decref(r);
    if (ttl < 0) ssmd_errf(err, cap, "etcd at %s: keepalive reply without a result", ssmd_etcd_endpoint(e));
    return ttl;
}

int ssmd_etcd_lease_revoke(ssmd_etcd *e, int64_t id, char *err, size_t cap)
{
    json_t *r = call(e, "/v3/lease/revoke", json_pack("{s:o}", "ID", i64_string(id)), err, cap);
    json_decref(r);
    return r ? 0 : -1;
}

static json_t *put_request_bytes(const char *key, const void *value, size_t len, int64_t lease)
{
    json_t *o = json_pack("{s:o, s:o}", "key", b64_string(key), "value", b64_bytes(value, len));
    if (o && lease) json_object_set_new(o, "lease", i64_string(lease));
    return o;
}

static json_t *put_request(const char *key, const char *value, int64_t lease)
{
    return put_request_bytes(key, value, strlen(value), lease);
}

int ssmd_etcd_put(ssmd_etcd *e, const char *key, const char *value, int64_t lease, char *err, size_t cap)
{
    json_t *r = call(e, "/v3/kv/put", put_request(key, value, lease), err, cap);
    json_decref(r);
    return r ? 0 : -1;
}

static int kvs_from_array(const json_t *arr, ssmd_etcd_kv **kvs, size_t *n, char *err, size_t cap)
{
    size_t m = json_array_size(arr);
    *kvs = calloc(m ? m : 1, sizeof **kvs);
    *n = 0;
    if (!*kvs) goto oom;
    for (size_t i = 0; i < m; i++) {
        if (kv_from_json(&(*kvs)[i], json_array_get(arr, i)) != 0) {
            *n = i + 1;
            ssmd_etcd_kvs_free(*kvs, *n);
            goto oom;
        }
    }
    *n = m;
    return 0;
oom:
    ssmd_errf(err, cap, "etcd: out of memory");
    return -1;
}

/* The end of the key range "every key starting with prefix": the prefix with
 * its last byte incremented (etcd's clientv3.GetPrefixRangeEnd). */
static json_t *prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    char *s = strdup(prefix);
    if (!s) return NULL;
    while (n > 0 && (unsigned char)s[n - 1] == 0xff) n--;
    json_t *j;
    if (n == 0) {
        j = json_string("AA=="); /* "\0": every key */
    } else {
        s[n - 1]++;
        s[n] = '\0';
        j = b64_string(s);
    }
    free(s);
    return j;
}

int ssmd_etcd_range(ssmd_etcd *e, const char *key, bool prefix, ssmd_etcd_kv **kvs, size_t *n, char *err,
                    size_t cap)
{
    json_t *req = json_pack("{s:o}", "key", b64_string(key));
    if (req && prefix) json_object_set_new(req, "range_end", prefix_end(key));
    json_t *r = call(e, "/v3/kv/range", req, err, cap);
    if (!r) return -1;
    int rc = kvs_from_array(json_object_get(r, "kvs"), kvs, n, err, cap);
    json_decref(r);
    return rc;
}

/* Sends a txn: compare, success ops, failure ops (arrays); returns the reply
 * (caller decrefs), *succeeded set. */
static json_t *txn(ssmd_etcd *e, json_t *compare, json_t *success, json_t *failure, bool *succeeded, char *err,
                   size_t cap)
{
    json_t *req = json_pack("{s:[o], s:[o]}", "compare", compare, "success", success);
    if (req && failure) json_object_set_new(req, "failure", json_pack("[o]", failure));
    json_t *r = call(e, "/v3/kv/txn", req, err, cap);
    if (r) *succeeded = json_is_true(json_object_get(r, "succeeded"));
    return r;
}

static int64_t reply_revision(const json_t *r)
{
    return get_i64(json_object_get(r, "header"), "revision");
}

int ssmd_etcd_create_if_absent(ssmd_etcd *e, const char *key, const char *value, int64_t lease,
                               int64_t *revision, ssmd_etcd_kv *existing, char *err, size_t cap)
{
    bool ok = false;
    json_t *r = txn(e,
                    json_pack("{s:o, s:s, s:s, s:s}", "key", b64_string(key), "target", "CREATE", "result", "EQUAL",
                              "create_revision", "0"),
                    json_pack("{s:o}", "request_put", put_request(key, value, lease)),
                    json_pack("{s:{s:o}}", "request_range", "key", b64_string(key)), &ok, err, cap);
    if (!r) return -1;
    memset(existing, 0, sizeof *existing);
    int rc = 1;
    if (ok) {
        *revision = reply_revision(r);
    } else {
        json_t *kvs = json_object_get(json_object_get(json_array_get(json_object_get(r, "responses"), 0),
                                                      "response_range"), "kvs");
        if (json_array_size(kvs) < 1) {
            /* deleted between the compare and the range: cannot happen in one
             * txn, but a reply without it is not one we understand */
            ssmd_errf(err, cap, "etcd at %s: txn on %s failed without the key", ssmd_etcd_endpoint(e), key);
            rc = -1;
        } else if (kv_from_json(existing, json_array_get(kvs, 0)) != 0) {
            ssmd_errf(err, cap, "etcd: out of memory");
            rc = -1;
        } else {
            rc = 0;
        }
    }
    json_decref(r);
    return rc;
}

int ssmd_etcd_put_if_revision(ssmd_etcd *e, const char *key, const char *value, int64_t lease,
                              int64_t mod_revision, int64_t *revision, char *err, size_t cap)
{
    bool ok = false;
    json_t *r = txn(e,
                    json_pack("{s:o, s:s, s:s, s:o}", "key", b64_string(key), "target", "MOD", "result", "EQUAL",
                              "mod_revision", i64_string(mod_revision)),
                    json_pack("{s:o}", "request_put", put_request(key, value, lease)), NULL, &ok, err, cap);
    if (!r) return -1;
    if (ok) *revision = reply_revision(r);
    json_decref(r);
    return ok ? 1 : 0;
}

int ssmd_etcd_delete_if_revision(ssmd_etcd *e, const char *key, int64_t mod_revision, char *err, size_t cap)
{
    bool ok = false;
    json_t *r = txn(e,
                    json_pack("{s:o, s:s, s:s, s:o}", "key", b64_string(key), "target", "MOD", "result", "EQUAL",
                              "mod_revision", i64_string(mod_revision)),
                    json_pack("{s:{s:o}}", "request_delete_range", "key", b64_string(key)), NULL, &ok, err, cap);
    if (!r) return -1;
    json_decref(r);
    return ok ? 1 : 0;
}

int ssmd_etcd_txn(ssmd_etcd *e, const ssmd_etcd_cmp *cmp, size_t n_cmp, const ssmd_etcd_op *ops, size_t n_ops,
                  int64_t *revision, char *err, size_t cap)
{
    static const char *const target[] = { [SSMD_ETCD_MOD] = "MOD", [SSMD_ETCD_CREATE] = "CREATE",
                                          [SSMD_ETCD_LEASE] = "LEASE" };
    static const char *const field[] = { [SSMD_ETCD_MOD] = "mod_revision", [SSMD_ETCD_CREATE] = "create_revision",
                                         [SSMD_ETCD_LEASE] = "lease" };
    json_t *compare = json_array(), *success = json_array();
    for (size_t i = 0; i < n_cmp; i++)
        json_array_append_new(compare, json_pack("{s:o, s:s, s:s, s:o}", "key", b64_string(cmp[i].key), "target",
                                                 target[cmp[i].target], "result", "EQUAL", field[cmp[i].target],
                                                 i64_string(cmp[i].value)));
    for (size_t i = 0; i < n_ops; i++) {
        const ssmd_etcd_op *op = &ops[i];
        json_t *o;
        if (op->kind == SSMD_ETCD_PUT) {
            o = json_pack("{s:o}", "request_put", put_request_bytes(op->key, op->value, op->value_len, op->lease));
        } else {
            json_t *d = json_pack("{s:o}", "key", b64_string(op->key));
            if (d && op->kind == SSMD_ETCD_DELETE_PREFIX) json_object_set_new(d, "range_end", prefix_end(op->key));
            o = json_pack("{s:o}", "request_delete_range", d);
        }
        json_array_append_new(success, o);
    }
    json_t *req = json_pack("{s:o, s:o}", "compare", compare, "success", success);
    json_t *r = call(e, "/v3/kv/txn", req, err, cap);
    if (!r) return -1;
    bool ok = json_is_true(json_object_get(r, "succeeded"));
    if (ok && revision) *revision = reply_revision(r);
    json_decref(r);
    return ok ? 1 : 0;
}

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

long ssmd_base64_encode(char *out, size_t cap, const void *in, size_t n)
{
    const unsigned char *p = in;
    size_t need = 4 * ((n + 2) / 3);
    if (cap < need + 1) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[o++] = b64_alphabet[v >> 18 & 63];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return (long)o;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

long ssmd_base64_decode(void *out, size_t cap, const char *in, size_t n)
{
    unsigned char *o = out;
    size_t k = 0;
    if (n % 4) return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (in[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad || (v[j] = b64_value(in[i + j])) < 0) {
                return -1;
            }
        }
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        unsigned char b[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w };
        for (int j = 0; j < 3 - pad; j++) {
            if (k >= cap) return -1;
            o[k++] = b[j];
        }
    }
    return (long)k;
}
