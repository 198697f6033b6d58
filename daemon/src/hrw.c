/* SPDX-License-Identifier: MIT */
#include "hrw.h"

#include <string.h>

static uint64_t fnv1a_bytes(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t ssmd_hrw_weight(const char *member, const char *stream)
{
    uint64_t h = fnv1a_bytes(0xcbf29ce484222325ull, member);
    h *= 0x100000001b3ull; /* the 0 byte between the names: h ^= 0 is a no-op */
    h = fnv1a_bytes(h, stream);
    /* splitmix64's finalizer: FNV's low-entropy high bits would make the
     * weights of similar member names correlated */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

int ssmd_hrw_pick(const char *stream, const char *const *members, size_t n)
{
    int best = -1;
    uint64_t best_w = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t w = ssmd_hrw_weight(members[i], stream);
        if (best < 0 || w > best_w || (w == best_w && strcmp(members[i], members[best]) < 0)) {
            best = (int)i;
            best_w = w;
        }
    }
    return best;
}
