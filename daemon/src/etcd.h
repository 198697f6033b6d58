/* SPDX-License-Identifier: MIT */
/* A small client of etcd's v3 API through its JSON gateway (HTTP POST of
 * JSON to /v3/..., keys and values base64, 64-bit integers as decimal
 * strings), with libcurl and jansson: the calls cluster mode needs and no
 * more (docs/cluster.md).  etcd 3.4 (Debian's etcd-server) serves the
 * gateway on its client URL.
 *
 * Threads: one handle belongs to one thread (a libcurl easy handle is not
 * thread-safe); each thread that talks to etcd creates its own.  Every call
 * blocks for at most the handle's timeout per endpoint tried.  Call
 * ssmd_etcd_global_init once before any thread exists.  Allocates. */
#ifndef SSMD_ETCD_H
#define SSMD_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ssmd_etcd ssmd_etcd;

/** One key of a range reply (strings NUL-terminated, owned by the array;
 *  value may hold any bytes: value_len counts them, the NUL is extra). */
typedef struct ssmd_etcd_kv {
    char *key, *value;
    size_t value_len;
    int64_t lease;        /**< 0 when the key has none */
    int64_t mod_revision; /**< revision of its last change */
} ssmd_etcd_kv;

/** libcurl's global set-up; once, before threads start.  Returns 0 or -1. */
int ssmd_etcd_global_init(void);

/** Checks an etcd URL list, "etcd://HOST:PORT[,HOST:PORT...]" (at most 8
 *  endpoints).  Returns 0, or -1 with one line in err. */
int ssmd_etcd_url_check(const char *url, char *err, size_t cap);

/** A handle on the etcd endpoints of url (ssmd_etcd_url_check's syntax);
 *  each request tries the endpoint that answered last, then the others,
 *  each for at most timeout_ms.  Returns NULL with one line in err. */
ssmd_etcd *ssmd_etcd_create(const char *url, long timeout_ms, char *err, size_t cap);
void ssmd_etcd_destroy(ssmd_etcd *e);
/** The endpoint that answered last ("http://HOST:PORT"), for messages. */
const char *ssmd_etcd_endpoint(const ssmd_etcd *e);

/* Every call below returns -1 with one line in err when no endpoint answered
 * or the answer was an error (that line names the endpoint). */

/** Grants a lease of ttl_s seconds into *id.  Returns 0. */
int ssmd_etcd_lease_grant(ssmd_etcd *e, long ttl_s, int64_t *id, char *err, size_t cap);
/** Renews lease id once.  Returns its TTL in seconds (> 0), 0 when the lease
 *  no longer exists (expired or revoked). */
long ssmd_etcd_lease_keepalive(ssmd_etcd *e, int64_t id, char *err, size_t cap);
/** Revokes lease id: every key attached to it is deleted.  Returns 0. */
int ssmd_etcd_lease_revoke(ssmd_etcd *e, int64_t id, char *err, size_t cap);
/** Puts key = value, attached to lease (0: none).  Returns 0. */
int ssmd_etcd_put(ssmd_etcd *e, const char *key, const char *value, int64_t lease, char *err, size_t cap);
/** The key, or with prefix every key that starts with it, into *kvs (*n of
 *  them, free with ssmd_etcd_kvs_free).  Returns 0. */
int ssmd_etcd_range(ssmd_etcd *e, const char *key, bool prefix, ssmd_etcd_kv **kvs, size_t *n, char *err,
                    size_t cap);
void ssmd_etcd_kvs_free(ssmd_etcd_kv *kvs, size_t n);
/** Frees the strings of one kv (not kv itself) and zeroes it. */
void ssmd_etcd_kv_clear(ssmd_etcd_kv *kv);
/** One transaction: when key does not exist, puts key = value attached to
 *  lease and returns 1 (*revision: the put's revision); otherwise returns 0
 *  and the key as it is in *existing (release with ssmd_etcd_kv_clear). */
int ssmd_etcd_create_if_absent(ssmd_etcd *e, const char *key, const char *value, int64_t lease,
                               int64_t *revision, ssmd_etcd_kv *existing, char *err, size_t cap);
/** One transaction: when key's mod_revision is still mod_revision, puts key =
 *  value attached to lease and returns 1 (*revision: the put's); 0 when the
 *  key changed (or went) meanwhile. */
int ssmd_etcd_put_if_revision(ssmd_etcd *e, const char *key, const char *value, int64_t lease,
                              int64_t mod_revision, int64_t *revision, char *err, size_t cap);
/** One transaction: deletes key when its mod_revision is still mod_revision.
 *  Returns 1 deleted, 0 when it changed or went meanwhile. */
int ssmd_etcd_delete_if_revision(ssmd_etcd *e, const char *key, int64_t mod_revision, char *err, size_t cap);

/** What a compare of ssmd_etcd_txn looks at: the key's mod_revision, its
 *  create_revision (0: the key does not exist) or its lease (0: none or no
 *  key). */
typedef enum ssmd_etcd_target {
    SSMD_ETCD_MOD = 0,
    SSMD_ETCD_CREATE,
    SSMD_ETCD_LEASE,
} ssmd_etcd_target;

/** One compare of a transaction: key's target EQUAL value. */
typedef struct ssmd_etcd_cmp {
    const char *key;
    ssmd_etcd_target target;
    int64_t value;
} ssmd_etcd_cmp;

typedef enum ssmd_etcd_op_kind {
    SSMD_ETCD_PUT = 0,       /**< key = value (value_len bytes), attached to lease (0: none) */
    SSMD_ETCD_DELETE,        /**< key */
    SSMD_ETCD_DELETE_PREFIX, /**< every key starting with key */
} ssmd_etcd_op_kind;

/** One operation of a transaction. */
typedef struct ssmd_etcd_op {
    ssmd_etcd_op_kind kind;
    const char *key;
    const void *value;
    size_t value_len;
    int64_t lease;
} ssmd_etcd_op;

/** One transaction: when every compare holds (none: always), runs ops in
 *  order and returns 1 (*revision, may be NULL: the transaction's revision);
 *  0 when a compare failed (nothing changed).  The request carries the
 *  values in base64: etcd refuses one beyond its --max-request-bytes (1.5 MiB
 *  by default) with an error. */
int ssmd_etcd_txn(ssmd_etcd *e, const ssmd_etcd_cmp *cmp, size_t n_cmp, const ssmd_etcd_op *ops, size_t n_ops,
                  int64_t *revision, char *err, size_t cap);

/** Base64 (RFC 4648, padded) of n bytes into out (cap >= 4 * ((n + 2) / 3) + 1).
 *  Returns the length written, or -1 when cap is too small. */
long ssmd_base64_encode(char *out, size_t cap, const void *in, size_t n);
/** Decodes padded base64 text of length n into out (cap bytes).  Returns the
 *  byte count, or -1 on a malformed text or a short out. */
long ssmd_base64_decode(void *out, size_t cap, const char *in, size_t n);

#endif /* SSMD_ETCD_H */
