/* SPDX-License-Identifier: MIT */
/* The server's shared state and the two interfaces its rooms meet at
 * (internal to daemon/src/; see docs/architecture.md for the map).
 *
 *   sources (source_*.c) ──pull──▶ per-stream pending input
 *                                        │
 *                    engine (engine.c): batch the streams with a frame
 *                    ready, ssm_step, hand every result to the stream's sinks
 *                                        │
 *   sinks (sink_*.c)   ◀──audio / frame / event── each stream's sink list
 *
 * A source fills streams through ssmd_srv_stream_append (or, for the
 * generator, emits samples itself through ssmd_srv_emit_audio); a sink sees a
 * stream's audio, per-frame outputs and events and nothing else.  The loop
 * (server.c) calls the sources through ssmd_source_ops only and the engine
 * calls the sinks through ssmd_sink_ops only, so neither knows which source or
 * sink it talks to.
 *
 * Threads: everything here belongs to the loop thread (server.h).  Only the
 * capture device's ring (audio_device.h) is shared with PortAudio's callback.
 * Allocation: at start-up (buffers sized for max_streams) and when a stream
 * opens or closes; never per frame. */
#ifndef SSMD_SRV_H
#define SSMD_SRV_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "audio_device.h"
#include "cluster.h"
#include "config.h"
#include "dsp/audio_file.h"
#include "dsp/features.h"
#include "frontend.h"
#include "generate.h"
#include "log.h"
#include "server.h"
#include "ssm/model.h"
#include "ssmd/protocol.h"
#include "stream.h"
#include "transport.h"

enum { SSMD_OUT_CHUNK = 4096, SSMD_FILE_CHUNK = 4096, SSMD_PENDING_SECONDS = 4, SSMD_POLL_MS = 4 };
/** A clean stop in cluster mode waits at most this long (seconds) for its
 *  streams to be handed over to the other members (ssmd_srv_checkpoint_drain_begin);
 *  a hand-over takes one checkpoint and two etcd requests, milliseconds. */
enum { SSMD_DRAIN_S = 5 };
/** After the member list changed (a member joined or came back), running
 *  streams placed on another member now are handed over this many seconds
 *  later (ssmd_srv_checkpoint_rebalance): the cluster-aware subscribers
 *  re-read the list every second and connect to the newcomer meanwhile. */
enum { SSMD_MOVE_DELAY_S = 3 };
enum { SSMD_SINKS_MAX = 4, SSMD_FILE_MAX_STREAMS = 64 };
/* Work per loop iteration while the sockets are served, so that a control
 * request waits for at most about their sum (plus one batch step): reading
 * pushed messages stops after SSMD_INGEST_BUDGET_MS (the rest wait in the
 * socket), stepping after SSMD_ENGINE_BUDGET_MS (the frames wait in their
 * stream's pending input).  Nothing is dropped; only the order of work
 * between the streams changes, never the samples of any stream. */
enum { SSMD_INGEST_BUDGET_MS = 5, SSMD_ENGINE_BUDGET_MS = 10 };

typedef struct ssmd_srv ssmd_srv;
typedef struct ssmd_srv_stream ssmd_srv_stream;
typedef struct ssmd_control ssmd_control;

/* SSMD_CONTROL_TRACE: when set in the environment, status replies carry the
 * answering thread's timestamps (CLOCK_MONOTONIC ns) and CPU time, so
 * bench/soak.py --control-trace can tell where a round trip went. */
typedef struct ssmd_control_trace {
    uint64_t empty_ns, empty_cpu_ns;  /* the last look at its socket that found it empty */
    uint64_t read_ns, read_cpu_ns;    /* when the request being answered was read */
} ssmd_control_trace;

/* ---- sinks ------------------------------------------------------------ */

/** One frame's outputs of one stream, as the engine hands them to sinks.
 *  Pointers are into the engine's batch buffers, valid during the call. */
typedef struct ssmd_frame_out {
    uint64_t first_sample;      /**< first input sample of the frame, stream rate */
    uint64_t head_first_sample; /**< the same for the frame vad and mask describe: lookahead_frames
                                     frames earlier (frontend.h); equal to first_sample without */
    uint32_t flags;             /**< SSMD_FLAG_* (state reset) */
    const float *features;      /**< {n_features} */
    uint32_t n_features;
    const float *vad;           /**< {1}, NULL when the model has no vad head or while the heads
                                     still describe frames before the input (lookahead) */
    const float *mask;          /**< {n_bins}, NULL unless publish_mask (or as vad) */
    uint32_t n_bins;
    const float *embedding;     /**< {d_model}, NULL unless publish_embedding */
    uint32_t d_model;
} ssmd_frame_out;

/** Where a stream's results go.  Every hook may be NULL.  self is what was
 *  given to ssmd_srv_stream_attach.  Hooks run on the loop thread; audio
 *  runs once per engine pass and stream (the frames the pass computed, at
 *  most SSMD_OUT_CHUNK samples a call), frame per frame; neither may
 *  allocate. */
typedef struct ssmd_sink_ops {
    const char *name;
    /** n output samples at the stream's rate (n may be 0: a bare
     *  end-of-stream marker); first sample index st->out_samples.  Returns 0,
     *  or -1 on a failure that must end the run (logged). */
    int (*audio)(ssmd_srv *s, ssmd_srv_stream *st, void *self, const float *x, size_t n, uint32_t flags);
    /** One model step's outputs for the stream. */
    void (*frame)(ssmd_srv *s, ssmd_srv_stream *st, void *self, const ssmd_frame_out *f);
    /** An event of the stream, as compact JSON text. */
    void (*event)(ssmd_srv *s, ssmd_srv_stream *st, void *self, const char *json);
    /** The stream is held (st->held, set by this sink's audio hook when its
     *  output cannot leave yet): retry what the sink keeps.  Returns true
     *  when nothing is kept any more (the engine then runs the stream again). */
    bool (*flush)(ssmd_srv *s, ssmd_srv_stream *st, void *self);
    /** The stream ended normally: finalise (close a file).  Returns 0, or -1
     *  (logged; the run's exit status becomes 1). */
    int (*finish)(ssmd_srv *s, ssmd_srv_stream *st, void *self);
    /** The stream is being closed: release self (an unfinished file is deleted). */
    void (*destroy)(void *self);
} ssmd_sink_ops;

extern const ssmd_sink_ops ssmd_sink_pub;    /* sink_pub.c: <stream>/<kind>/ topics */
extern const ssmd_sink_ops ssmd_sink_reply;  /* sink_reply.c: audio back to the pushing client;
                                                self from ssmd_sink_reply_create */
extern const ssmd_sink_ops ssmd_sink_file;   /* sink_file.c: self from ssmd_file_mux_channel */
extern const ssmd_sink_ops ssmd_sink_device; /* sink_device.c: self is an ssmd_playback */

/** The output file of one or more streams: stream k writes channel k of an
 *  interleaved file (a split stereo input gives a stereo output).  Opaque. */
typedef struct ssmd_file_mux ssmd_file_mux;

/** Opens path for `channels` streams at the input in's sample rate, in the
 *  sample format format_name names ("pcm16", "pcm24", "float": --output-format,
 *  ssmd/output_format.h; NULL or "" = the shared default; the codec for
 *  .ogg/.opus/.mp3); expected_frames per channel, 0 = unknown, lets a .wav be
 *  plain PCM RIFF, see dsp_audio_write_format).  Returns 0, or -1 after one line
 *  on stderr.  Allocates every buffer (start-up).  Attach channel k with
 *  ssmd_srv_stream_attach(st, &ssmd_sink_file, ssmd_file_mux_channel(m, k))
 *  for every k; from then on the streams own the mux: the file is finalised
 *  once every channel's stream finished and deleted when a stream is
 *  destroyed before (a failed run).  Before any attach, free it with
 *  ssmd_file_mux_discard. */
int ssmd_file_mux_open(ssmd_file_mux **out, const char *path, const char *format_name, const dsp_audio_info *in,
                       int channels, int64_t expected_frames);
/** The sink self of channel k (0 <= k < channels). */
void *ssmd_file_mux_channel(ssmd_file_mux *m, int k);
/** Deletes the file and frees a mux none of whose channels was attached. */
void ssmd_file_mux_discard(ssmd_file_mux *m);

/** The reply sink's per-stream state (one held message); NULL when out of
 *  memory.  Released by the sink's destroy.  Allocates (stream open). */
void *ssmd_sink_reply_create(void);
/** Samples the reply sink keeps for a held stream (0 when none). */
size_t ssmd_sink_reply_held_samples(const void *self);

/* ---- sources ---------------------------------------------------------- */

/** Where streams come from.  Hooks other than name and pull may be NULL.
 *  Hooks run on the loop thread. */
typedef struct ssmd_source_ops {
    const char *name; /**< the stream's "source" in meta/ and replies */
    /** Opens the source and its streams (after the sockets).  Returns 0, or
     *  -1 after one line on stderr (exit status 2). */
    int (*open)(ssmd_srv *s);
    /** Moves what input is available into the streams (once per loop
     *  iteration); sets *busy when more is ready at once.  stopping: the run
     *  is finishing its streams.  Returns 0, or -1 on a runtime failure. */
    int (*pull)(ssmd_srv *s, bool stopping, bool *busy);
    /** How long the loop may wait for sockets before calling pull again, ms. */
    int (*poll_ms)(const ssmd_srv *s);
    /** True once this source is complete and the run should end. */
    bool (*at_end)(const ssmd_srv *s);
    /** Called once per loop iteration after the engine ran (progress). */
    void (*tick)(ssmd_srv *s);
    /** A stream of this source ended: log its summary (may set *rc = 1). */
    void (*stream_ended)(ssmd_srv *s, ssmd_srv_stream *st, int *rc);
    /** The stream's description for <stream>/meta/ (malloc'd JSON), when the
     *  source has its own (the audio pipeline's otherwise). */
    char *(*meta_json)(ssmd_srv *s, ssmd_srv_stream *st);
    /** The model state of a stream without an audio pipeline (st->st NULL). */
    ssm_state *(*state)(ssmd_srv *s, ssmd_srv_stream *st);
    /** Releases what open (or setup) acquired; safe to call when never opened. */
    void (*close)(ssmd_srv *s);
    /** The source holds its input back until wait_subscribers subscriptions
     *  arrived; its streams' meta and start event are held back with it, so
     *  the subscribers waited for receive them (ssmd_pub_handle_subscriptions). */
    bool waits_for_subscribers;
} ssmd_source_ops;

extern const ssmd_source_ops ssmd_source_file;     /* source_file.c */
extern const ssmd_source_ops ssmd_source_mic;      /* source_mic.c */
extern const ssmd_source_ops ssmd_source_push;     /* source_push.c */
extern const ssmd_source_ops ssmd_source_generate; /* source_gen.c */

/* ---- the state ---------------------------------------------------------- */

struct ssmd_srv_stream {
    bool used, finished, ended, eos_sent, meta_due;
    bool start_due;               /* meta and start event held back until wait_subscribers arrived */
    char name[SSMD_STREAM_NAME_MAX + 1];
    const ssmd_source_ops *src;
    int rate_hz;
    int gen_index;                /* generated streams: the generator's stream (st is NULL) */
    ssmd_stream *st;              /* the audio pipeline; NULL for generated streams */
    float *pend;
    size_t pend_pos, pend_len, pend_cap;
    float *out;                   /* {SSMD_OUT_CHUNK}: output popped in this engine pass and not yet
                                     emitted (engine.c); empty between passes */
    size_t out_len;
    bool eos;                     /* no more input will come */
    bool held;                    /* a sink cannot pass the output on yet (sink_reply.c):
                                     the engine runs nothing for the stream until flushed */
    double t_held;                /* when it became held (monotonic s) */
    uint64_t seq[9];              /* per kind */
    uint64_t in_samples;          /* input samples accepted */
    uint64_t out_samples;         /* output samples emitted */
    uint64_t frames, resets, dropped_samples;
    uint64_t in_clipped;          /* input samples beyond full scale (|x| > 1, finite) */
    uint64_t in_nonfinite;        /* input samples that were NaN or +-Inf, zeroed (by the file
                                     reader, the push source or ssmd_srv_stream_append) */
    uint64_t out_clipped;         /* output samples beyond full scale: clipped by any integer
                                     encoding (an int16 file, a client's conversion) */
    bool out_file_int;            /* the file sink writes an integer encoding (clips) */
    uint32_t flags_next;          /* flags for the next audio message */
    bool claimed;                 /* cluster mode: this daemon owns the stream in etcd (cluster.h);
                                     released when it closes */
    /* cluster checkpoints (checkpoint.c) */
    uint64_t ckpt_period;         /* input samples between checkpoints; 0: this stream has none */
    uint64_t ckpt_next;           /* the input sample at or after which the next is due */
    bool ckpt_stored;             /* ckpt_in/out/time_ms describe the last checkpoint stored */
    uint64_t ckpt_in, ckpt_out, ckpt_time_ms;
    bool resumed;                 /* the stream started from a checkpoint (resumed_*) */
    uint64_t resumed_in, resumed_out, resumed_time_ms;
    char resumed_node[65];
    char resume_error[256];       /* a checkpoint was found but not used: why ("" otherwise) */
    bool client_follows;          /* push streams: the client sets SSMD_FLAG_FOLLOWS (it follows a move) */
    bool moving;                  /* its placement is another member now (one joined): a checkpoint
                                     is forced, and once stored the stream is handed over to it */
    bool stale;                   /* another member claimed it while this one's lease was lost: closed
                                     without its end (ssmd_srv_checkpoint_stale) */
    bool move_taken;              /* the forced checkpoint was taken, at input sample move_in */
    uint64_t move_in;
    double move_after_s;          /* a hand-over etcd did not answer: the next try, not before */
    uint64_t replay_skipped;      /* resumed: pushed samples before the resume point, dropped */
    uint8_t owner[256];           /* push streams: the client's identity */
    size_t owner_len;
    uint64_t push_seq_next;       /* push streams: the seq and first_sample the next message must */
    uint64_t push_sample_next;    /* carry (source_push.c: the messages are contiguous) */
    bool push_broken;             /* a message was refused as discontinuous since the last one accepted */
    uint32_t push_cols;           /* push streams: the channel count of its messages (0 until one is accepted) */
    bool push_accepted;           /* a message of the stream was accepted (a resumed stream's first one
                                   * may start anywhere up to the resume point) */
    uint64_t clock_ns, clock_sample; /* wall clock of input sample clock_sample (mic) */
    double t_open;                   /* when the stream started (monotonic s) */
    double t_last_in;                /* last input (push streams: idle timeout) */
    double vad_sum;                  /* over the vad_frames rows that describe frames of the input */
    uint64_t vad_frames;
    uint64_t vad_quiet_frames;       /* consecutive frames with voice activity below --vad-gate */
    struct { const ssmd_sink_ops *ops; void *self; } sinks[SSMD_SINKS_MAX];
    int n_sinks;
};

/* The run's counters (status).  The loop thread writes them; the control
 * thread reads them while it runs (control.c answers status there), so each is
 * atomic: a reply holds every increment made before the request was read,
 * for example the bad message whose error the client received first. */
typedef struct ssmd_srv_counters {
    _Atomic uint64_t frames, dropped_samples, published, publish_dropped, bad_messages, bad_requests,
        state_resets, nonfinite_samples, replies_dropped, subscriptions, capture_dropped,
        device_failures, monitor_dropped, input_clipped, output_clipped,
        reply_stalls,       /* times a push stream was held because its client did not read */
        push_lost_samples,  /* pushed samples discarded: a client held for push_idle_s, or at shutdown */
        cluster_refused,    /* new pushed streams refused in cluster mode (NOT_OWNER, CLUSTER_UNAVAILABLE) */
        cluster_handed_over, /* streams handed over to a member that joined (checkpoint.c) */
        cluster_stale_closed, /* streams closed because another member claimed them while this
                                 one's lease was lost (checkpoint.c) */
        push_discontinuities; /* pushed messages refused because their seq or first_sample did not
                                 continue their stream (DISCONTINUITY) */
    _Atomic uint64_t live_frames, bulk_frames; /* frames stepped in live batches and in bulk ones (engine.c) */
    _Atomic uint64_t ingest_blocked_ns; /* the ingest socket left unread because a stream had no room
                                           (every client's messages waited: head-of-line blocking) */
    _Atomic uint64_t capture_ns;        /* the loop's time moving captured frames into the mic streams */
} ssmd_srv_counters;

struct ssmd_srv {
    ssmd_config *cfg;
    const char *model_path;
    volatile sig_atomic_t *stop;
    const ssmd_server_control *ctl;
    bool stop_requested;
    bool engine_backlog; /* the engine stopped at its budget with frames ready */
    bool token_mode;                  /* generating from a token model: no audio pipeline */
    ssm_model *model;
    ssmd_frontend fe;
    dsp_melbank *mb;
    ssmd_stream_shared *stream_shared; /* the audio streams' STFT and scratch (loop thread) */
    ssm_runner *runner;               /* the audio pipeline's; NULL in token mode */
    const ssm_runner *compute_runner; /* the one that steps (status reports) */
    ssmd_transport t;
    ssmd_cluster *cluster;            /* --cluster: membership and stream ownership; NULL standalone */
    uint64_t members_gen_seen;        /* the member list's generation the streams' placement was checked at */
    bool rebalance_due;               /* the member list changed: placements are checked at rebalance_s */
    double rebalance_s;
    bool moves_retry;                 /* some hand-over waits for another try (checkpoint.c) */
    double moves_retry_s;             /* the earliest of those tries */
    ssmd_srv_stream *streams;
    int max_streams;
    uint64_t epoch;
    double t_start;
    /* the engine's batch buffers, sized for max_streams */
    float *features, *mask, *vad, *emb;
    ssm_state **states;
    int *batch;
    unsigned *step_flags;             /* SSM_FLAG_* per batch row of the last step */
    int chunk_frames;                 /* frames a lone stream runs per ssm_forward (rows of the buffers: max(max_streams, this)) */
    const ssmd_source_ops *sources[4];
    int n_sources;
    /* each source's own state, touched by its file only (and read by
     * control's status) */
    struct {
        dsp_audio_reader *reader;
        int slots[SSMD_FILE_MAX_STREAMS]; /* one stream ('mono') or one per channel ('split') */
        int n_streams, n_ended, channels;
        float *buf, *mono;
        float gain;                   /* linear; 1 = untouched (--input-gain-db, --normalize-float) */
        uint64_t nonfinite[SSMD_FILE_MAX_STREAMS]; /* the reader's zeroed samples already counted, per stream */
        double t0;
        bool done, show_progress;
        double last_progress;
    } file;
    struct {
        ssmd_capture *cap;
        ssmd_playback *mon;
        int slots[64], n;             /* n: channels opened (the stride of buf) */
        int n_streams;                /* 1 ('mono') or min(n, asked) ('split') */
        bool downmix;                 /* 'mono': the stream gets the mean of the n channels */
        float *buf, *chan;
        uint64_t dropped_seen;
        double check_t;
        bool failed;
    } mic;
    struct {
        /* the rest of an ingest message whose stream is held (its client does
         * not read its results): nothing more is read from the ingest socket
         * until it has gone in (source_push.c) */
        bool parked;
        zmq_msg_t payload;            /* the message's payload frame (owned while parked) */
        ssmd_header h;                /* its header */
        size_t row;                   /* rows already appended */
        bool backlogged;              /* messages may wait in the socket: the last read stopped
                                         before it was empty (a park, the budget) */
        double t_polled;              /* the last look at the socket (monotonic s): time it is
                                         left unread is added to the streams' t_last_in */
        double t_refusal_logged;      /* the last "queue full" refusal logged (once a second) */
        uint64_t refusals;            /* refused since then */
        uint8_t refused_id[256];      /* the last client refused, refused again without opening a
                                         stream while it keeps sending (push_idle_s) */
        size_t refused_id_len;
        double t_refused;
        char name[SSMD_STREAM_NAME_MAX + 1];
    } push;
    struct {
        ssmd_genjob *job;
        float *buf;                   /* {block} one stream's samples of a block */
        double t0;                    /* when sample 0 was due (monotonic s), 0 until started */
        uint64_t resets_seen;
        bool done;                    /* every stream ended, the output file closed */
    } gen;
    ssmd_srv_counters c;
    _Atomic int n_streams;            /* streams open (status; ssmd_srv_active_streams) */
    /* what status reports of the capture device: source_mic.c writes it (open,
     * failure, reopen), the control thread reads it, both under mu */
    struct {
        pthread_mutex_t mu;
        bool running;
        char name[256];
        int rate_hz, channels;
    } dev;
    ssmd_control *ctl_front;          /* the control thread (control.c); NULL when not running */
    bool ctl_trace_on;                /* SSMD_CONTROL_TRACE set: status replies carry "trace" */
    ssmd_control_trace ctl_trace;     /* the loop's, for the requests it answers */
};

static inline double ssmd_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline uint64_t ssmd_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/** True while the run waits for wait_subscribers subscriptions before its
 *  input starts (file and generator sources). */
static inline bool ssmd_srv_waiting_subscribers(const ssmd_srv *s)
{
    return s->cfg->wait_subscribers > 0 && s->c.subscriptions < (uint64_t)s->cfg->wait_subscribers;
}

/* ---- streams and the engine (engine.c) ---------------------------------- */

/** Claims a free slot for a stream of source src at rate_hz (aligned: offline
 *  output, see stream.h), attaches the PUB sink, publishes meta and the start
 *  event (a source that waits for subscribers: once they arrived, see
 *  ssmd_srv_stream_announce).  Generated streams (src without an audio pipeline, st NULL) get no
 *  pending buffer.  Returns NULL with err set ("TOO_MANY_STREAMS" when no
 *  slot is free).  Allocates. */
ssmd_srv_stream *ssmd_srv_stream_open(ssmd_srv *s, const char *name, const ssmd_source_ops *src,
                                      int rate_hz, bool aligned, bool pipeline, char *err, size_t cap);
/** Adds a sink to the stream, after those attached before (at most
 *  SSMD_SINKS_MAX a stream; more is a programming error). */
void ssmd_srv_stream_attach(ssmd_srv_stream *st, const ssmd_sink_ops *ops, void *self);
/** Releases the slot and its sinks' self (destroy). */
void ssmd_srv_stream_close(ssmd_srv *s, ssmd_srv_stream *st);
ssmd_srv_stream *ssmd_srv_stream_find(ssmd_srv *s, const char *name);
int ssmd_srv_active_streams(const ssmd_srv *s);
/** The model state behind a stream (its pipeline's or its source's). */
ssm_state *ssmd_srv_stream_state(ssmd_srv *s, ssmd_srv_stream *st);
/** Appends mono samples to the pending input; what does not fit is dropped,
 *  counted and flagged (live sources). */
void ssmd_srv_stream_append(ssmd_srv *s, ssmd_srv_stream *st, const float *x, size_t n);
/* Counts n input samples of st that were NaN or +-Inf and were zeroed before
 * they reached it (the stream's summary and streams reply, status's
 * nonfinite_samples). */
void ssmd_srv_stream_count_nonfinite(ssmd_srv *s, ssmd_srv_stream *st, uint64_t n);
/** Appends as many of the n samples as the pending input has room for and
 *  drops none (client pushes): the caller keeps the rest and offers it again
 *  after the engine has run (the loop's next iteration).  The engine is not
 *  run here, so a read of the ingest socket costs no model steps.  Returns
 *  the count appended (0..n).  Loop thread. */
long ssmd_srv_stream_append_some(ssmd_srv *s, ssmd_srv_stream *st, const float *x, size_t n);
/** One audio message to every sink of the stream; out_samples advances. */
int ssmd_srv_emit_audio(ssmd_srv *s, ssmd_srv_stream *st, const float *x, size_t n, uint32_t flags);
/** An event {"event", "stream"[, "reason"]} to every sink of the stream.
 *  A stream whose start is still held back is announced first. */
void ssmd_srv_event(ssmd_srv *s, ssmd_srv_stream *st, const char *event, const char *reason);
/** The same with any JSON object o (it should have "event" and "stream");
 *  takes o's reference.  Returns the compact text sent (malloc'd, the
 *  caller frees), NULL when out of memory. */
char *ssmd_srv_event_json(ssmd_srv *s, ssmd_srv_stream *st, json_t *o);
/** Publishes the stream's meta/ and start event if they were held back while
 *  the run waited for subscribers (st->start_due); otherwise does nothing.
 *  Loop thread; allocates (JSON text). */
void ssmd_srv_stream_announce(ssmd_srv *s, ssmd_srv_stream *st);
/** True when the stream is live: the input it holds and has not processed
 *  (pending, plus the parked rest of a pushed message) is at most
 *  live_backlog_ms of audio, or its parked message keeps the ingest socket
 *  from being read (then it is served first until that message is in).
 *  Live streams are stepped before any other (ssmd_engine_run). */
bool ssmd_srv_stream_live(const ssmd_srv *s, const ssmd_srv_stream *st);
/** Steps the streams with a frame ready until none has or, while the
 *  sockets are served, SSMD_ENGINE_BUDGET_MS have passed (then
 *  s->engine_backlog is set and the loop polls without waiting); drains
 *  finishing streams.  Each batch holds the live streams with a frame ready
 *  (ssmd_srv_stream_live); only when none has one, every stream with a
 *  frame ready (bulk).  Returns -1 when the model step or a sink failed. */
int ssmd_engine_run(ssmd_srv *s);
/** The summary line of an audio stream that ended, at level; output names
 *  the file written (or NULL); compensated: the latency was removed. */
void ssmd_srv_stream_report(ssmd_srv *s, ssmd_srv_stream *st, int level, const char *output,
                            bool compensated);

/* ---- PUB specifics (sink_pub.c) ----------------------------------------- */

/** The stream's description for <stream>/meta/ (its source's, or the audio
 *  pipeline's), malloc'd JSON text the caller frees; NULL when out of memory. */
char *ssmd_pub_meta_json(ssmd_srv *s, ssmd_srv_stream *st);
/** Publishes the stream's <stream>/meta/ message. */
void ssmd_pub_meta(ssmd_srv *s, ssmd_srv_stream *st);

/* ---- reply specifics (sink_reply.c) --------------------------------------- */

/** Sends a push stream's <stream>/meta/ (with ingest_max_payload_bytes) to
 *  the client that pushes it, its first reply.  Returns 0 sent, EAGAIN when
 *  the client's queue is already full (it reads no results), -1 when it
 *  has gone (both counted in replies_dropped).  Allocates (stream open). */
int ssmd_reply_meta(ssmd_srv *s, ssmd_srv_stream *st);
/** Reads XPUB subscriptions; re-sends the matching metas (once each). */
void ssmd_pub_handle_subscriptions(ssmd_srv *s);

/** Sends an event (compact JSON text) of a push stream to its client, as
 *  [<stream>/event/][header][JSON] on the ingest socket; dropped when the
 *  client's queue is full (the next event supersedes it). */
void ssmd_reply_event(ssmd_srv *s, ssmd_srv_stream *st, const char *json);

/* ---- checkpoints (checkpoint.c, cluster mode) ----------------------------- */

/** A pushed stream this daemon just claimed: with checkpoint_s > 0 and the
 *  stream at the model's rate, its checkpoints are due every checkpoint_s
 *  seconds of input from its current input sample on.  Loop thread. */
void ssmd_srv_checkpoint_arm(ssmd_srv *s, ssmd_srv_stream *st);
/** The engine, after a frame of st was completed and its output popped:
 *  when a checkpoint is due and the stream is savable, copies its state and
 *  hands it to the cluster thread.  Loop thread; a memcpy of the state, one
 *  allocation. */
void ssmd_srv_checkpoint_due(ssmd_srv *s, ssmd_srv_stream *st);
/** The checkpoints the cluster thread stored: each becomes a "checkpoint"
 *  event of its stream (PUB and the pushing client); the one forced for a
 *  stream that moves hands it over (a "moved" event, the stream closed
 *  without its end flushed).  Loop thread. */
void ssmd_srv_checkpoint_acks(ssmd_srv *s);
/** SSMD_MOVE_DELAY_S after the member list changed: each checkpointed
 *  pushed stream whose client follows moves (SSMD_FLAG_FOLLOWS) and whose
 *  placement is now another member (one that joined) gets a checkpoint
 *  forced at its next frame, and is handed over once that is stored
 *  (docs/cluster.md, "A member joining").  Loop thread; no etcd request. */
void ssmd_srv_checkpoint_rebalance(ssmd_srv *s);
/** A clean stop in cluster mode (docs/cluster.md, "A member stopping"):
 *  when some pushed stream can move (as for a join: checkpointed, its client
 *  follows moves), the member leaves the member list (ssmd_cluster_leave)
 *  and starts handing each such stream over to its placement among the
 *  others (a checkpoint forced now; ssmd_srv_checkpoint_acks completes it).  Returns how many streams are to be
 *  handed over; 0 when none can be (no such stream, no other member, or
 *  etcd did not answer: logged), and the stop goes on as before.  Loop
 *  thread; one etcd transaction and one range when some stream can move. */
int ssmd_srv_checkpoint_drain_begin(ssmd_srv *s);
/** The streams of a drain still being handed over (0: done).  Loop thread;
 *  no etcd request. */
int ssmd_srv_checkpoint_drain_left(ssmd_srv *s);
/** Closes each stream that another member claimed while this member's lease
 *  was lost (ssmd_cluster_stale_next): it is stale here, its client went to
 *  that member.  Closed like a hand-over but without any event: nothing more
 *  goes to its client or subscribers (as from a member that died), no owner
 *  or checkpoint key is touched.  Loop thread; no etcd request. */
void ssmd_srv_checkpoint_stale(ssmd_srv *s);
/** A stream just claimed, with its checkpoint f as read at the claim: it
 *  starts from it (counters, indices; a file is read here), or starts
 *  fresh with resume_error set.  Loop thread; blocks on the file read. */
void ssmd_srv_checkpoint_resume(ssmd_srv *s, ssmd_srv_stream *st, ssmd_cluster_found *f);
/** Adds the stream's checkpoint fields to o (its meta or its `streams`
 *  entry): checkpoint_s, checkpoint (the last stored), resumed or
 *  resume_error. */
void ssmd_srv_checkpoint_json(ssmd_srv *s, const ssmd_srv_stream *st, json_t *o);
/** Start-up: checks checkpoint_s, checkpoint_dir and checkpoint_inline_bytes
 *  against the options and the model.  Returns 0, or -1 after one line on
 *  stderr naming the option. */
int ssmd_srv_checkpoint_check(ssmd_srv *s);

/* ---- control (control.c) ------------------------------------------------- */

/** Starts the control thread, which owns the control ROUTER from now on
 *  (when the sockets are open; otherwise does nothing).  Returns 0, or -1
 *  after one line on stderr.  Loop thread, before the loop runs. */
int ssmd_control_start(ssmd_srv *s);
/** Stops and joins the control thread (requests still waiting stay
 *  unanswered, as at any stop); safe when it never started.  Loop thread,
 *  after the loop, before the sockets close. */
void ssmd_control_stop(ssmd_srv *s);
/** Answers every request the control thread passed to the loop (one handler
 *  per "cmd").  Loop thread. */
void ssmd_control_handle(ssmd_srv *s);

/* ---- generation (source_gen.c) -------------------------------------------- */

/** Generation mode (cfg->generate_s > 0): loads the token model, opens the
 *  job and sizes the server for its streams (instead of the audio
 *  pipeline's set-up).  Returns 0, -1 when stopped while feeding the prompt,
 *  or the exit status (2 or 1) after one line on stderr. */
int ssmd_source_generate_setup(ssmd_srv *s);

#endif /* SSMD_SRV_H */
