/* SPDX-License-Identifier: MIT */
#include "hrw.h"

#include <string.h>

static uint64_t fnv1a_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

size_t ssmd_hrw_key_len(const char *stream)
{
    size_t n = strlen(stream), i = n;
    while (i > 0 && stream[i - 1] >= '0' && stream[i - 1] <= '9') i--;
    return (i < n && i > 1 && stream[i - 1] == '.') ? i - 1 : n;
}

static uint64_t weight_n(const char *member, const char *key, size_t n)
{
    uint64_t h = fnv1a_bytes(0xcbf29ce484222325ull, member, strlen(member));
    h *= 0x100000001b3ull; /* the 0 byte between the names: h ^= 0 is a no-op */
    h = fnv1a_bytes(h, key, n);
    /* splitmix64's finalizer: FNV's low-entropy high bits would make the
     * weights of similar member names correlated */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

uint64_t ssmd_hrw_weight(const char *member, const char *stream)
{
    return weight_n(member, stream, strlen(stream));
}

int ssmd_hrw_pick(const char *stream, const char *const *members, size_t n)
{
    int best = -1;
    uint64_t best_w = 0;
    size_t key = ssmd_hrw_key_len(stream);
    for (size_t i = 0; i < n; i++) {
        uint64_t w = weight_n(members[i], stream, key);
        if (best < 0 || w > best_w || (w == best_w && strcmp(members[i], members[best]) < 0)) {
            best = (int)i;
            best_w = w;
        }
    }
    return best;
}
