/* SPDX-License-Identifier: MIT */
/* Checkpoints (checkpoint.h): the format, the etcd description, the files;
 * and the server's side (srv.h): when a stream's checkpoint is due, its
 * acknowledgement, and a stream that resumes from one.
 *
 * Design note.  The loop thread only copies: at the first frame boundary
 * at or after each multiple of checkpoint_s seconds of a stream's input it
 * saves the stream (a memcpy of its state, tens of kB) and hands the copy to
 * the cluster thread (cluster.h), which stores it in etcd or the checkpoint
 * directory and reports back; the loop then tells the stream's clients (a
 * "checkpoint" event).  No model step waits for etcd or a disk.  Because the
 * due points are multiples of the period in input samples, not wall-clock
 * ticks, the input sample of every checkpoint is fixed by the input alone
 * (a stream pushed faster than real time checkpoints as often in its audio
 * as a real-time one); a checkpoint not yet stored when the next is due is
 * replaced by it (cluster.h), so etcd sees at most its own pace. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "errf.h"
#include "srv.h"
#include "ssmd/protocol.h"

uint64_t ssmd_ckpt_fnv1a64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

size_t ssmd_ckpt_bytes(const ssmd_stream *s)
{
    size_t n = ssmd_stream_save_bytes(s);
    return n ? SSMD_CKPT_HEADER + n : 0;
}

long ssmd_ckpt_encode(void *buf, size_t cap, const ssmd_stream *s, const ssmd_ckpt_counters *c)
{
    if (cap < SSMD_CKPT_HEADER) return -1;
    uint8_t *p = buf;
    memset(p, 0, SSMD_CKPT_HEADER);
    memcpy(p, "SSMDCKPT", 8);
    ssmd_put_u32(p + 8, 1);
    ssmd_put_u64(p + 16, c->input_sample);
    ssmd_put_u64(p + 24, c->output_sample);
    ssmd_put_u64(p + 32, c->frames);
    ssmd_put_u64(p + 40, c->resets);
    ssmd_put_u64(p + 48, c->vad_quiet_frames);
    long n = ssmd_stream_save(s, p + SSMD_CKPT_HEADER, cap - SSMD_CKPT_HEADER);
    return n < 0 ? -1 : SSMD_CKPT_HEADER + n;
}

int ssmd_ckpt_decode(ssmd_stream *s, const void *buf, size_t n, ssmd_ckpt_counters *c, char *err, size_t cap)
{
    const uint8_t *p = buf;
    if (n < SSMD_CKPT_HEADER || memcmp(p, "SSMDCKPT", 8) != 0)
        return ssmd_errf(err, cap, "not a checkpoint (%zu bytes, bad magic)", n);
    if (ssmd_get_u32(p + 8) != 1) return ssmd_errf(err, cap, "checkpoint version %u, this build reads 1",
                                                   ssmd_get_u32(p + 8));
    ssmd_ckpt_counters k = { .input_sample = ssmd_get_u64(p + 16), .output_sample = ssmd_get_u64(p + 24),
                             .frames = ssmd_get_u64(p + 32), .resets = ssmd_get_u64(p + 40),
                             .vad_quiet_frames = ssmd_get_u64(p + 48) };
    char why[256];
    if (ssmd_stream_load(s, p + SSMD_CKPT_HEADER, n - SSMD_CKPT_HEADER, why, sizeof why) != 0)
        return ssmd_errf(err, cap, "%s", why);
    ssmd_stream_stats st;
    ssmd_stream_stats_get(s, &st);
    if (st.samples_in != k.input_sample || st.samples_out != k.output_sample || st.frames != k.frames)
        return ssmd_errf(err, cap, "the checkpoint's indices contradict its stream state");
    *c = k;
    return 0;
}

/* ---- the description ------------------------------------------------------ */

static void hex64(char *out, size_t cap, uint64_t v)
{
    snprintf(out, cap, "0x%016llx", (unsigned long long)v);
}

char *ssmd_ckpt_info_json(const ssmd_ckpt_info *m)
{
    char hash[24], sum[24];
    hex64(hash, sizeof hash, m->model_hash);
    hex64(sum, sizeof sum, m->checksum);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:I, s:s, s:s}", "stream", m->stream, "node",
                          m->node, "epoch", m->epoch, "input_sample", (json_int_t)m->input_sample, "output_sample",
                          (json_int_t)m->output_sample, "sample_rate_hz", (json_int_t)m->sample_rate_hz,
                          "model_hash", hash, "time_ms", (json_int_t)m->time_ms, "bytes", (json_int_t)m->bytes,
                          "checksum", sum, "stored", m->path[0] ? "file" : "etcd");
    if (o && m->path[0]) json_object_set_new(o, "path", json_string(m->path));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static int get_u64_field(json_t *o, const char *key, uint64_t *v)
{
    json_t *j = json_object_get(o, key);
    if (json_is_integer(j) && json_integer_value(j) >= 0) {
        *v = (uint64_t)json_integer_value(j);
        return 0;
    }
    const char *s = json_string_value(j);
    char *end;
    if (!s || strncmp(s, "0x", 2) != 0) return -1;
    errno = 0;
    unsigned long long x = strtoull(s + 2, &end, 16);
    if (errno || *end || end == s + 2) return -1;
    *v = x;
    return 0;
}

int ssmd_ckpt_info_parse(ssmd_ckpt_info *m, const char *json, size_t n, char *err, size_t cap)
{
    memset(m, 0, sizeof *m);
    json_error_t je;
    json_t *o = json_loadb(json, n, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return ssmd_errf(err, cap, "checkpoint description is not a JSON object");
    }
    const char *stream = json_string_value(json_object_get(o, "stream"));
    const char *node = json_string_value(json_object_get(o, "node"));
    const char *epoch = json_string_value(json_object_get(o, "epoch"));
    const char *stored = json_string_value(json_object_get(o, "stored"));
    const char *path = json_string_value(json_object_get(o, "path"));
    uint64_t rate = 0;
    int bad = !stream || !node || !stored || strlen(stream) >= sizeof m->stream || strlen(node) >= sizeof m->node;
    bad |= get_u64_field(o, "input_sample", &m->input_sample) | get_u64_field(o, "output_sample", &m->output_sample);
    bad |= get_u64_field(o, "sample_rate_hz", &rate) | get_u64_field(o, "model_hash", &m->model_hash);
    bad |= get_u64_field(o, "time_ms", &m->time_ms) | get_u64_field(o, "bytes", &m->bytes);
    bad |= get_u64_field(o, "checksum", &m->checksum);
    if (!bad && strcmp(stored, "file") == 0) bad = !path || !path[0] || strlen(path) >= sizeof m->path;
    else if (!bad) bad = strcmp(stored, "etcd") != 0;
    if (!bad) {
        snprintf(m->stream, sizeof m->stream, "%s", stream);
        snprintf(m->node, sizeof m->node, "%s", node);
        snprintf(m->epoch, sizeof m->epoch, "%s", epoch ? epoch : "");
        if (strcmp(stored, "file") == 0) snprintf(m->path, sizeof m->path, "%s", path);
        m->sample_rate_hz = (long)rate;
    }
    json_decref(o);
    return bad ? ssmd_errf(err, cap, "checkpoint description lacks a field or has a bad one") : 0;
}

/* ---- files ---------------------------------------------------------------- */

int ssmd_ckpt_dir_check(const char *dir, char *err, size_t cap)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) return ssmd_errf(err, cap, "'%s': %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return ssmd_errf(err, cap, "'%s' is not a directory", dir);
    char probe[SSMD_CKPT_PATH_MAX];
    if ((size_t)snprintf(probe, sizeof probe, "%s/.ssmd-probe.%ld", dir, (long)getpid()) >= sizeof probe - 200)
        return ssmd_errf(err, cap, "'%s': path too long", dir);
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return ssmd_errf(err, cap, "'%s': cannot create files there: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ssmd_ckpt_dir_sync(const char *dir, char *err, size_t cap)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        int e = errno;
        if (dfd >= 0) close(dfd);
        return ssmd_errf(err, cap, "checkpoint_dir %s: %s", dir, strerror(e));
    }
    close(dfd);
    return 0;
}

int ssmd_ckpt_file_write(const char *dir, ssmd_ckpt_info *m, const void *buf, size_t n, bool sync_dir, char *err,
                         size_t cap)
{
    char path[SSMD_CKPT_PATH_MAX], tmp[SSMD_CKPT_PATH_MAX];
    int a = snprintf(path, sizeof path, "%s/%s.%llu.ckpt", dir, m->stream, (unsigned long long)m->input_sample);
    int b = snprintf(tmp, sizeof tmp, "%s/.%s.%llu.%s.tmp", dir, m->stream, (unsigned long long)m->input_sample,
                     m->node);
    if (a < 0 || b < 0 || (size_t)a >= sizeof path || (size_t)b >= sizeof tmp)
        return ssmd_errf(err, cap, "checkpoint_dir %s: path too long", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ssmd_errf(err, cap, "checkpoint file %s: %s", tmp, strerror(errno));
    if (write_all(fd, buf, n) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return ssmd_errf(err, cap, "checkpoint file %s: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ssmd_errf(err, cap, "checkpoint file %s: %s", path, strerror(e));
    }
    if (sync_dir && ssmd_ckpt_dir_sync(dir, err, cap) != 0) { /* the rename itself must survive a crash */
        unlink(path);
        return -1;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    return 0;
}

void *ssmd_ckpt_file_read(const ssmd_ckpt_info *m, char *err, size_t cap)
{
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ssmd_errf(err, cap, "checkpoint file %s: %s", m->path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    char *buf = NULL;
    if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size != m->bytes) {
        ssmd_errf(err, cap, "checkpoint file %s: %lld bytes, its description says %llu", m->path,
                  (long long)sb.st_size, (unsigned long long)m->bytes);
        goto out;
    }
    buf = malloc(m->bytes ? m->bytes : 1);
    size_t got = 0;
    while (buf && got < m->bytes) {
        ssize_t r = read(fd, buf + got, m->bytes - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    if (!buf || got != m->bytes) {
        ssmd_errf(err, cap, "checkpoint file %s: %s", m->path, buf ? "short read" : "out of memory");
        free(buf);
        buf = NULL;
    } else if (ssmd_ckpt_fnv1a64(buf, got) != m->checksum) {
        ssmd_errf(err, cap, "checkpoint file %s: checksum mismatch (damaged or replaced)", m->path);
        free(buf);
        buf = NULL;
    }
out:
    close(fd);
    return buf;
}

/* ---- the server's side (srv.h) -------------------------------------------- */

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double age_s(uint64_t time_ms)
{
    return ((double)unix_ms() - (double)time_ms) / 1e3;
}

void ssmd_srv_checkpoint_arm(ssmd_srv *s, ssmd_srv_stream *st)
{
    st->ckpt_period = 0;
    if (!s->cluster || s->cfg->checkpoint_s <= 0 || !st->claimed || !st->st || ssmd_stream_save_bytes(st->st) == 0)
        return;
    st->ckpt_period = (uint64_t)s->cfg->checkpoint_s * (uint64_t)st->rate_hz;
    ssmd_stream_stats ss;
    ssmd_stream_stats_get(st->st, &ss);
    st->ckpt_next = (ss.samples_in / st->ckpt_period + 1) * st->ckpt_period;
}

void ssmd_srv_checkpoint_due(ssmd_srv *s, ssmd_srv_stream *st)
{
    ssmd_stream_stats ss;
    ssmd_stream_stats_get(st->st, &ss);
    /* a stream whose client said end-of-stream ends soon, and its keys with it */
    if (ss.samples_in < st->ckpt_next || st->held || st->eos || !ssmd_stream_savable(st->st)) return;
    st->ckpt_next = (ss.samples_in / st->ckpt_period + 1) * st->ckpt_period;
    if (st->moving && !st->move_taken) { /* the checkpoint forced for a hand-over */
        st->move_taken = true;
        st->move_in = ss.samples_in;
    }
    size_t n = ssmd_ckpt_bytes(st->st);
    void *buf = malloc(n);
    ssmd_ckpt_counters k = { .input_sample = ss.samples_in, .output_sample = ss.samples_out, .frames = ss.frames,
                             .resets = st->resets, .vad_quiet_frames = st->vad_quiet_frames };
    if (!buf || ssmd_ckpt_encode(buf, n, st->st, &k) != (long)n) {
        free(buf);
        ssmd_log(SSMD_LOG_WARN, "stream %s: checkpoint at input sample %llu skipped (%s)", st->name,
                 (unsigned long long)ss.samples_in, buf ? "the stream could not be saved" : "out of memory");
        return;
    }
    ssmd_ckpt_info m;
    memset(&m, 0, sizeof m);
    snprintf(m.stream, sizeof m.stream, "%s", st->name);
    m.input_sample = ss.samples_in;
    m.output_sample = ss.samples_out;
    m.sample_rate_hz = st->rate_hz;
    m.model_hash = ssm_model_hash(s->model);
    m.time_ms = unix_ms();
    m.bytes = n;
    ssmd_cluster_checkpoint(s->cluster, &m, buf, n);
}

/* The checkpoint forced for st's move (ck) is stored: st's owner key goes
 * (its checkpoint stays), its client is told where to push it from ck's
 * input sample on (a "moved" event: PUB and the client) and the stream
 * closes here without its end flushed; the member it goes to resumes it from
 * ck when the client replays.  A placement that changed back, or an etcd
 * that does not answer, leaves the stream here. */
static void handover(ssmd_srv *s, ssmd_srv_stream *st, const ssmd_ckpt_info *ck)
{
    ssmd_cluster_owner o;
    char err[512];
    int r = -1;
    if (ssmd_cluster_placed_elsewhere(s->cluster, st->name, &o))
        r = ssmd_cluster_handover(s->cluster, st->name, err, sizeof err);
    else
        snprintf(err, sizeof err, "its placement is this node again");
    st->move_taken = false;
    if (r < 0 && ssmd_cluster_placed_elsewhere(s->cluster, st->name, &o)) {
        /* etcd did not answer: tried again after another checkpoint, a second from now */
        ssmd_log(SSMD_LOG_WARN, "stream %s: not handed over yet (%s); trying again in 1 s", st->name, err);
        st->move_after_s = ssmd_now_s() + 1.0;
        if (!s->moves_retry || st->move_after_s < s->moves_retry_s) s->moves_retry_s = st->move_after_s;
        s->moves_retry = true;
        return;
    }
    st->moving = false;
    if (r < 0) {
        ssmd_log(SSMD_LOG_WARN, "stream %s: not handed over (%s); it stays on this node", st->name, err);
        return;
    }
    char msg[1400];
    snprintf(msg, sizeof msg, "stream '%s' moved to node %s (its placement since the member list changed): push "
             "it from input sample %llu on to %s", st->name, o.node, (unsigned long long)ck->input_sample, o.ingest);
    json_t *ev = json_pack("{s:s, s:s, s:I, s:I, s:{s:s, s:s}, s:s}", "event", "moved", "stream", st->name,
                           "input_sample", (json_int_t)ck->input_sample, "output_sample",
                           (json_int_t)ck->output_sample, "owner", "node", o.node, "ingest", o.ingest, "message", msg);
    char *text = ev ? ssmd_srv_event_json(s, st, ev) : NULL;
    if (text) ssmd_reply_event(s, st, text);
    free(text);
    ssmd_log(SSMD_LOG_INFO, "stream %s: handed over to node %s at input sample %llu", st->name, o.node,
             (unsigned long long)ck->input_sample);
    s->c.cluster_handed_over++;
    st->claimed = false; /* closing it releases nothing: the next owner resumes from the checkpoint */
    st->eos = st->ended = true;
}

void ssmd_srv_checkpoint_acks(ssmd_srv *s)
{
    size_t n = 0;
    ssmd_ckpt_info *v = ssmd_cluster_checkpoint_acks(s->cluster, &n);
    for (size_t i = 0; i < n; i++) {
        ssmd_srv_stream *st = ssmd_srv_stream_find(s, v[i].stream);
        if (!st || !st->ckpt_period || st->ended || v[i].input_sample > st->in_samples) continue;
        st->ckpt_stored = true;
        st->ckpt_in = v[i].input_sample;
        st->ckpt_out = v[i].output_sample;
        st->ckpt_time_ms = v[i].time_ms;
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "event", "checkpoint", "stream", st->name,
                              "input_sample", (json_int_t)v[i].input_sample, "output_sample",
                              (json_int_t)v[i].output_sample, "bytes", (json_int_t)v[i].bytes, "stored",
                              v[i].path[0] ? "file" : "etcd");
        char *text = o ? ssmd_srv_event_json(s, st, o) : NULL;
        if (text && st->src == &ssmd_source_push) ssmd_reply_event(s, st, text);
        free(text);
        if (st->moving && st->move_taken && v[i].input_sample >= st->move_in) handover(s, st, &v[i]);
    }
    free(v);
}

void ssmd_srv_checkpoint_stale(ssmd_srv *s)
{
    char name[SSMD_STREAM_NAME_MAX + 1];
    while (ssmd_cluster_stale_next(s->cluster, name, sizeof name)) {
        ssmd_srv_stream *st = ssmd_srv_stream_find(s, name);
        if (!st || !st->claimed || st->stale) continue; /* ended meanwhile */
        st->claimed = false; /* closing it releases nothing: the owner key and checkpoint are the other member's */
        st->stale = true;
        st->moving = false;
        st->eos = st->ended = true; /* reap_streams closes it: no end event, no output flushed */
        s->c.cluster_stale_closed++;
    }
}

/* A pushed stream that can move exactly: claimed here, checkpointed, its
 * client follows moves, not ending. */
static bool movable(const ssmd_srv_stream *st)
{
    return st->used && st->claimed && st->client_follows && st->ckpt_period && !st->eos && !st->ended;
}

/* Starts st's hand-over to o: a checkpoint forced at once (a stream between
 * frames, an idle one too, is saved now; else after its next frame), the
 * hand-over when it is stored (ssmd_srv_checkpoint_acks). */
static void move_start(ssmd_srv *s, ssmd_srv_stream *st, const ssmd_cluster_owner *o, const char *why)
{
    st->moving = true;
    st->move_taken = false;
    st->ckpt_next = 0;
    ssmd_srv_checkpoint_due(s, st);
    ssmd_log(SSMD_LOG_INFO, "stream %s: placed on node %s now (%s): handing it over at a checkpoint", st->name,
             o->node, why);
}

int ssmd_srv_checkpoint_drain_begin(ssmd_srv *s)
{
    int n = 0;
    for (int i = 0; i < s->max_streams; i++) n += movable(&s->streams[i]);
    if (n == 0) return 0;
    char err[512];
    if (ssmd_cluster_leave(s->cluster, err, sizeof err) != 0) {
        ssmd_log(SSMD_LOG_WARN, "stopping: %d stream%s not handed over (%s); they end here", n, n == 1 ? "" : "s",
                 err);
        return 0;
    }
    int elsewhere = 0;
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        ssmd_cluster_owner o;
        if (!movable(st) || !ssmd_cluster_placed_elsewhere(s->cluster, st->name, &o)) continue;
        elsewhere++;
        if (!st->moving) move_start(s, st, &o, "this node is leaving");
    }
    if (elsewhere == 0) {
        ssmd_log(SSMD_LOG_INFO, "stopping: no other member to hand %d stream%s to; they end here", n,
                 n == 1 ? "" : "s");
        return 0;
    }
    ssmd_log(SSMD_LOG_INFO, "stopping: handing %d stream%s over to the other members first", elsewhere,
             elsewhere == 1 ? "" : "s");
    s->members_gen_seen = ssmd_cluster_members_gen(s->cluster); /* the moves are started above */
    return elsewhere;
}

int ssmd_srv_checkpoint_drain_left(ssmd_srv *s)
{
    int n = 0;
    for (int i = 0; i < s->max_streams; i++) n += movable(&s->streams[i]) && s->streams[i].moving;
    return n;
}

void ssmd_srv_checkpoint_rebalance(ssmd_srv *s)
{
    uint64_t gen = ssmd_cluster_members_gen(s->cluster);
    double now = ssmd_now_s();
    if (s->moves_retry && now >= s->moves_retry_s) {
        /* hand-overs that etcd did not answer: another checkpoint, then another try */
        s->moves_retry = false;
        for (int i = 0; i < s->max_streams; i++) {
            ssmd_srv_stream *st = &s->streams[i];
            if (!st->used || !st->moving || st->move_taken || st->ended) continue;
            if (now < st->move_after_s) {
                s->moves_retry = true;
                s->moves_retry_s = st->move_after_s;
                continue;
            }
            st->ckpt_next = 0;
            ssmd_srv_checkpoint_due(s, st);
        }
    }
    if (gen != s->members_gen_seen) {
        /* the hand-overs wait SSMD_MOVE_DELAY_S: subscribers (ClusterSubscriber, ssm-sub
         * --cluster) re-read the member list every second, and a member they are not yet
         * connected to would publish a moved stream's first output to nobody */
        s->members_gen_seen = gen;
        s->rebalance_due = true;
        s->rebalance_s = now + SSMD_MOVE_DELAY_S;
        return;
    }
    if (!s->rebalance_due || now < s->rebalance_s) return;
    s->rebalance_due = false;
    for (int i = 0; i < s->max_streams; i++) {
        ssmd_srv_stream *st = &s->streams[i];
        ssmd_cluster_owner o;
        if (!st->used || !st->claimed || !st->client_follows || !st->ckpt_period || st->eos || st->ended ||
            st->moving ||
            !ssmd_cluster_placed_elsewhere(s->cluster, st->name, &o))
            continue;
        move_start(s, st, &o, "the member list changed");
    }
}

void ssmd_srv_checkpoint_resume(ssmd_srv *s, ssmd_srv_stream *st, ssmd_cluster_found *f)
{
    if (!f->present) return;
    const ssmd_ckpt_info *m = &f->info;
    char why[700] = "";
    void *file = NULL, *data = f->data;
    size_t n = f->n;
    if (f->error[0]) {
        snprintf(why, sizeof why, "%s", f->error);
    } else if (m->sample_rate_hz != st->rate_hz) {
        snprintf(why, sizeof why, "it is of a stream at %ld Hz and this push is at %d Hz", m->sample_rate_hz,
                 st->rate_hz);
    } else if (m->model_hash != ssm_model_hash(s->model)) {
        snprintf(why, sizeof why, "it was taken with another model (hash 0x%016llx, this one 0x%016llx)",
                 (unsigned long long)m->model_hash, (unsigned long long)ssm_model_hash(s->model));
    } else if (m->path[0]) {
        data = file = ssmd_ckpt_file_read(m, why, sizeof why);
        n = (size_t)m->bytes;
    } else if (n != m->bytes || ssmd_ckpt_fnv1a64(data, n) != m->checksum) {
        snprintf(why, sizeof why, "its state in etcd does not match its description's size and checksum");
    }
    ssmd_ckpt_counters k;
    if (!why[0]) ssmd_ckpt_decode(st->st, data, n, &k, why, sizeof why);
    free(file);
    if (why[0]) {
        ssmd_errf(st->resume_error, sizeof st->resume_error, "checkpoint at input sample %llu from node %s not used: %s",
                  (unsigned long long)m->input_sample, m->node[0] ? m->node : "?", why); /* cut to fit */
        ssmd_log(SSMD_LOG_WARN, "stream %s: %s; it starts afresh", st->name, st->resume_error);
        return;
    }
    st->resumed = true;
    st->resumed_in = k.input_sample;
    st->resumed_out = k.output_sample;
    st->resumed_time_ms = m->time_ms;
    snprintf(st->resumed_node, sizeof st->resumed_node, "%s", m->node);
    st->in_samples = k.input_sample;
    st->out_samples = k.output_sample;
    st->frames = k.frames;
    st->resets = k.resets;
    st->vad_quiet_frames = k.vad_quiet_frames;
    st->ckpt_stored = true; /* the stored checkpoint is this one until the next */
    st->ckpt_in = k.input_sample;
    st->ckpt_out = k.output_sample;
    st->ckpt_time_ms = m->time_ms;
    if (m->path[0]) ssmd_cluster_checkpoint_adopt(s->cluster, st->name, m->path);
    ssmd_log(SSMD_LOG_INFO, "stream %s: resumed from node %s's checkpoint at input sample %llu (output sample %llu, "
             "taken %.1f s ago): its client pushes from there", st->name, m->node, (unsigned long long)k.input_sample,
             (unsigned long long)k.output_sample, age_s(m->time_ms));
}

void ssmd_srv_checkpoint_json(ssmd_srv *s, const ssmd_srv_stream *st, json_t *o)
{
    if (!o || !s->cluster || s->cfg->checkpoint_s <= 0 || st->src != &ssmd_source_push || !st->st) return;
    /* (a pushed stream opens only once claimed: its first meta, published as
     * it opens, already says what ssmd_srv_checkpoint_arm will decide) */
    bool on = ssmd_stream_save_bytes(st->st) > 0;
    json_object_set_new(o, "checkpoint_s", json_integer(on ? (json_int_t)s->cfg->checkpoint_s : 0));
    if (!on) {
        char why[200];
        snprintf(why, sizeof why, "the stream is at %d Hz and the model at %d Hz: a resampling stream is not "
                 "checkpointed", st->rate_hz, s->fe.sample_rate_hz);
        json_object_set_new(o, "checkpoint_off", json_string(why));
    }
    json_object_set_new(o, "checkpoint", st->ckpt_stored
                            ? json_pack("{s:I, s:I, s:f}", "input_sample", (json_int_t)st->ckpt_in, "output_sample",
                                        (json_int_t)st->ckpt_out, "age_s", age_s(st->ckpt_time_ms))
                            : json_null());
    if (st->resumed)
        json_object_set_new(o, "resumed", json_pack("{s:I, s:I, s:s, s:f, s:I}", "input_sample",
                                                    (json_int_t)st->resumed_in, "output_sample",
                                                    (json_int_t)st->resumed_out, "node", st->resumed_node,
                                                    "age_s", age_s(st->resumed_time_ms), "replay_skipped",
                                                    (json_int_t)st->replay_skipped));
    if (st->resume_error[0]) json_object_set_new(o, "resume_error", json_string(st->resume_error));
}

int ssmd_srv_checkpoint_check(ssmd_srv *s)
{
    const ssmd_config *cfg = s->cfg;
    char name[400], err[700];
    if (cfg->checkpoint_s <= 0) return 0;
    if (!cfg->cluster[0]) {
        fprintf(stderr, "ssmd: %s: checkpoints are stored in the cluster's etcd: it needs --cluster\n",
                ssmd_config_where(cfg, "checkpoint_s", name, sizeof name));
        return -1;
    }
    if (s->token_mode) return 0; /* refused as a cluster member with its own line */
    if (cfg->checkpoint_dir[0] && ssmd_ckpt_dir_check(cfg->checkpoint_dir, err, sizeof err) != 0) {
        fprintf(stderr, "ssmd: %s: %s\n", ssmd_config_where(cfg, "checkpoint_dir", name, sizeof name), err);
        return -1;
    }
    /* the size of every checkpoint of this model: a stream at its rate */
    ssmd_stream_config sc = { .in_rate_hz = s->fe.sample_rate_hz, .align_output = true, .max_prepared = 1 };
    ssmd_stream *t = ssmd_stream_create(s->model, &s->fe, s->mb, &sc, err, sizeof err);
    size_t bytes = t ? ssmd_ckpt_bytes(t) : 0;
    ssmd_stream_destroy(t);
    if (!t) {
        fprintf(stderr, "ssmd: checkpoint_s: %s\n", err);
        return -1;
    }
    if (bytes > (size_t)cfg->checkpoint_inline_bytes && !cfg->checkpoint_dir[0]) {
        fprintf(stderr, "ssmd: %s: this model's checkpoints are %zu bytes, more than %ld: raise it (at most 1048576) "
                "or name a --checkpoint-dir for them\n", ssmd_config_where(cfg, "checkpoint_inline_bytes", name, sizeof name),
                bytes, cfg->checkpoint_inline_bytes);
        return -1;
    }
    ssmd_log(SSMD_LOG_INFO, "checkpoints: every %ld s of each owned stream's audio (streams at %d Hz), %zu bytes "
             "each, stored in %s", cfg->checkpoint_s, s->fe.sample_rate_hz, bytes,
             bytes > (size_t)cfg->checkpoint_inline_bytes ? cfg->checkpoint_dir : "etcd");
    return 0;
}
