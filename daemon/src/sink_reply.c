/* The reply sink: a push stream's processed audio goes back to the client
 * that pushed it, on the ingest ROUTER socket addressed by its identity
 * (st->owner), as <stream>/audio/ messages.  Loop thread; never blocks: a
 * full queue drops the message and counts replies_dropped. */
#include "srv.h"

#include <stdlib.h>
#include <string.h>

static int reply_audio(ssmd_srv *s, ssmd_srv_stream *st, void *self, const float *x, size_t n, uint32_t flags)
{
    (void)self;
    if (!s->t.ingest) return 0;
    char topic[SSMD_STREAM_NAME_MAX + 16];
    ssmd_topic_format(topic, sizeof topic, st->name, SSMD_KIND_AUDIO);
    ssmd_header h = { .kind = SSMD_KIND_AUDIO, .dtype = SSMD_DTYPE_F32, .flags = flags,
                      .sample_rate_hz = (uint32_t)st->rate_hz, .rows = (uint32_t)n, .cols = 1,
                      .hop_samples = (uint32_t)s->fe.hop_samples, .seq = st->seq[0]++,
                      .first_sample = st->out_samples, .epoch = s->epoch };
    if (ssmd_transport_send(s->t.ingest, st->owner, st->owner_len, topic, &h, x, n * sizeof(float)))
        s->c.replies_dropped++;
    return 0;
}

void ssmd_reply_meta(ssmd_srv *s, ssmd_srv_stream *st)
{
    char *text = ssmd_pub_meta_json(s, st);
    if (!text || !s->t.ingest) {
        free(text);
        return;
    }
    char topic[SSMD_STREAM_NAME_MAX + 16];
    ssmd_topic_format(topic, sizeof topic, st->name, SSMD_KIND_META);
    ssmd_header h = { .kind = SSMD_KIND_META, .dtype = SSMD_DTYPE_UTF8, .sample_rate_hz = (uint32_t)st->rate_hz,
                      .rows = 1, .cols = (uint32_t)strlen(text), .hop_samples = (uint32_t)s->fe.hop_samples,
                      .epoch = s->epoch };
    if (ssmd_transport_send(s->t.ingest, st->owner, st->owner_len, topic, &h, text, strlen(text)))
        s->c.replies_dropped++;
    free(text);
}

const ssmd_sink_ops ssmd_sink_reply = { .name = "reply", .audio = reply_audio };
