/* SPDX-License-Identifier: MIT */
/* The file source: a file libsndfile reads (--input FILE), as one stream per
 * channel ('split', the default for files: <name>.0, <name>.1, ..., each
 * with its own model state, written back as the channels of --output) or
 * one stream downmixed to mono (--channels mono: the mean of the channels),
 * scaled by --input-gain-db / --normalize-float, as fast as the engine takes
 * it or paced at real time (--realtime), optionally only once
 * wait_subscribers clients subscribed; its processed audio goes to --output
 * through the file sink (sample-aligned: the latency is compensated).  The
 * run ends when every stream has ended.  Shows a progress line on a
 * terminal.  Loop thread; buffers allocated at open. */
#include "srv.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void file_stream_name(char *out, size_t cap, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = 0;
    for (const char *p = base; *p && n + 1 < cap && n < SSMD_STREAM_NAME_MAX; p++) {
        char ch = *p;
        out[n++] = (isalnum((unsigned char)ch) || ch == '_' || ch == '-' || ch == '.') ? ch : '_';
    }
    if (n == 0 || out[0] == '.' || out[0] == '_') out[0] = 'f';
    if (n == 0) n = 1;
    out[n] = '\0';
}

/* --input-gain-db and --normalize-float: the linear gain for the file's
 * samples; warns (one line) when a float file peaks above full scale.
 * Returns -1 after one line on stderr for a bad gain. */
static int file_gain(ssmd_srv *s, const dsp_audio_info *info, float *gain)
{
    const ssmd_config *c = s->cfg;
    char *end = NULL;
    double db = strtod(c->input_gain_db, &end);
    if (!end || end == c->input_gain_db || *end || !(db >= -200 && db <= 200)) {
        fprintf(stderr, "ssmd: input_gain_db: '%s' is not a gain in dB between -200 and 200\n", c->input_gain_db);
        return -1;
    }
    double g = pow(10.0, db / 20.0);
    *gain = db == 0 ? 1.0f : (float)g;
    if (info->subtype != DSP_AUDIO_SUBTYPE_FLOAT && info->subtype != DSP_AUDIO_SUBTYPE_DOUBLE) return 0;
    double peak = 0;
    dsp_error de = { 0 };
    if (dsp_audio_reader_peak(s->file.reader, &peak, &de) != DSP_OK || !isfinite(peak)) return 0;
    double scaled = peak * (*gain);
    if (scaled <= 1.0) return 0;
    if (c->normalize_float) {
        *gain = (float)(1.0 / peak);
        ssmd_log(SSMD_LOG_INFO, "%s: float samples peak at %.6g; scaled by %.1f dB to a peak of 1.0 "
                 "(--normalize-float)", c->input, peak, 20 * log10(1.0 / peak));
        return 0;
    }
    fprintf(stderr, "ssmd: warning: %s: float samples peak at %.6g%s, %.1f dB above full scale (1.0): "
            "processed at that level they clip (input beyond +-1000, integer output beyond +-1); "
            "scale them with --normalize-float or --input-gain-db %.1f\n",
            c->input, peak, db != 0 ? " before --input-gain-db" : "", 20 * log10(scaled),
            db - 20 * log10(scaled));
    return 0;
}

static int file_open(ssmd_srv *s)
{
    const ssmd_config *c = s->cfg;
    dsp_error de = { 0 };
    if (dsp_audio_reader_open(&s->file.reader, c->input, NULL, &de) != DSP_OK) {
        fprintf(stderr, "ssmd: %s\n", de.msg);
        return -1;
    }
    const dsp_audio_info *info = dsp_audio_reader_info(s->file.reader);
    s->file.channels = info->channels;
    bool split = info->channels > 1 && strcmp(c->channels, "mono") != 0; /* 'auto' splits files */
    int n_streams = split ? info->channels : 1;
    if (n_streams > SSMD_FILE_MAX_STREAMS || n_streams > s->max_streams) {
        int most = s->max_streams < SSMD_FILE_MAX_STREAMS ? s->max_streams : SSMD_FILE_MAX_STREAMS;
        fprintf(stderr, "ssmd: %s has %d channels, more streams than %d; use --channels mono to downmix%s\n",
                c->input, info->channels, most, most < SSMD_FILE_MAX_STREAMS ? " or raise --max-streams" : "");
        return -1;
    }
    if (file_gain(s, info, &s->file.gain) != 0) return -1;
    s->file.buf = malloc((size_t)SSMD_FILE_CHUNK * (size_t)info->channels * sizeof(float));
    s->file.mono = malloc(SSMD_FILE_CHUNK * sizeof(float));
    if (!s->file.buf || !s->file.mono) {
        fprintf(stderr, "ssmd: out of memory\n");
        return -1;
    }
    struct stat in_st, out_st;
    if (c->output[0] && stat(c->input, &in_st) == 0 && stat(c->output, &out_st) == 0 &&
        in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino) {
        fprintf(stderr, "ssmd: output: %s is the input file %s; writing it would destroy the input\n",
                c->output, c->input);
        return -1;
    }
    char base[SSMD_STREAM_NAME_MAX + 1], err[512];
    file_stream_name(base, sizeof base, c->input);
    ssmd_srv_stream *streams[SSMD_FILE_MAX_STREAMS];
    for (int k = 0; k < n_streams; k++) {
        char name[SSMD_STREAM_NAME_MAX + 1];
        if (!split) {
            snprintf(name, sizeof name, "%s", base);
        } else { /* <base>.<k>, the base shortened to leave room for the suffix */
            char suffix[16];
            int ns = snprintf(suffix, sizeof suffix, ".%d", k);
            snprintf(name, sizeof name, "%.*s%s", SSMD_STREAM_NAME_MAX - ns, base, suffix);
        }
        streams[k] = ssmd_srv_stream_open(s, name, &ssmd_source_file, info->sample_rate_hz, true, true,
                                          err, sizeof err);
        if (!streams[k]) {
            fprintf(stderr, "ssmd: %s: %s\n", c->input, err);
            return -1;
        }
        s->file.slots[k] = (int)(streams[k] - s->streams);
        s->file.n_streams = k + 1;
    }
    s->file.show_progress = strcmp(c->progress, "always") == 0 ||
                            (strcmp(c->progress, "auto") == 0 && isatty(STDERR_FILENO));
    if (c->output[0]) {
        ssmd_file_mux *m = NULL;
        int64_t expected = info->n_frames > 0 ? info->n_frames : 0; /* aligned: output length = input's */
        if (ssmd_file_mux_open(&m, c->output, c->output_format, info, n_streams, expected) != 0) return -1;
        for (int k = 0; k < n_streams; k++)
            ssmd_srv_stream_attach(streams[k], &ssmd_sink_file, ssmd_file_mux_channel(m, k));
    }
    return 0;
}

/* How much pending input a bulk file stream is filled to: four of the
 * engine's chunks of frames (at the stream's rate), so that ssm_forward runs
 * whole chunks (filled SSMD_FILE_CHUNK at a time, a 48 kHz file gave it 8-9
 * frames a call), at most half the pending buffer. */
static size_t file_fill_target(const ssmd_srv *s, const ssmd_srv_stream *st)
{
    uint64_t hop_in = ((uint64_t)s->fe.hop_samples * st->rate_hz + (uint64_t)s->fe.sample_rate_hz - 1) /
                      (uint64_t)s->fe.sample_rate_hz;
    uint64_t t = 4 * (uint64_t)(s->chunk_frames > 0 ? s->chunk_frames : 1) * hop_in, most = st->pend_cap / 2;
    if (t > most) t = most;
    return t > SSMD_FILE_CHUNK ? (size_t)t : SSMD_FILE_CHUNK;
}

/* Reads the next chunks of the file while the streams have room (with
 * realtime pacing, one chunk when the clock allows): downmixed into one
 * stream ('mono') or one channel to each stream ('split').  Returns -1 on a
 * read error. */
static int pump_file(ssmd_srv *s, bool *busy)
{
    ssmd_srv_stream *st = &s->streams[s->file.slots[0]];
    if (!s->file.reader || st->eos) return 0;
    if (ssmd_srv_waiting_subscribers(s)) return 0;
    if (s->file.t0 == 0) s->file.t0 = ssmd_now_s();
    const size_t target = s->cfg->realtime ? SSMD_FILE_CHUNK : file_fill_target(s, st);
    for (;;) {
        size_t want = SSMD_FILE_CHUNK;
        for (int k = 0; k < s->file.n_streams; k++) { /* they advance together */
            const ssmd_srv_stream *sk = &s->streams[s->file.slots[k]];
            const size_t pending = sk->pend_len - sk->pend_pos;
            if (pending > target) return 0;
            /* no more than fits: the pending input holds 4 s, below 2 048 Hz less than two reads */
            if (sk->pend_cap - pending < want) want = sk->pend_cap - pending;
        }
        if (want == 0) return 0;
        if (s->cfg->realtime) {
            double allowed = (ssmd_now_s() - s->file.t0) * st->rate_hz - (double)st->in_samples;
            if (allowed < 1) return 0;
            if ((double)want > allowed) want = (size_t)allowed;
        }
        size_t got = 0;
        dsp_error de = { 0 };
        if (dsp_audio_reader_read(s->file.reader, s->file.buf, want, &got, &de) != DSP_OK) {
            ssmd_log(SSMD_LOG_ERROR, "%s", de.msg);
            return -1;
        }
        if (got == 0) {
            for (int k = 0; k < s->file.n_streams; k++) s->streams[s->file.slots[k]].eos = true;
            return 0;
        }
        for (int k = 0; k < s->file.n_streams; k++) { /* the reader zeroed them: count them per stream */
            uint64_t now = s->file.n_streams == 1 ? dsp_audio_reader_nonfinite_count(s->file.reader)
                                                  : dsp_audio_reader_nonfinite_channel_count(s->file.reader, k);
            ssmd_srv_stream_count_nonfinite(s, &s->streams[s->file.slots[k]], now - s->file.nonfinite[k]);
            s->file.nonfinite[k] = now;
        }
        size_t nch = (size_t)s->file.channels;
        if (s->file.gain != 1.0f)
            for (size_t i = 0; i < got * nch; i++) s->file.buf[i] *= s->file.gain;
        if (s->file.n_streams == 1 && nch == 1) { /* mono: the samples as read */
            ssmd_srv_stream_append(s, st, s->file.buf, got);
        } else if (s->file.n_streams == 1) {
            dsp_audio_downmix_mean(s->file.mono, s->file.buf, got, (int)nch);
            ssmd_srv_stream_append(s, st, s->file.mono, got);
        } else {
            for (size_t k = 0; k < nch; k++) {
                for (size_t i = 0; i < got; i++) s->file.mono[i] = s->file.buf[i * nch + k];
                ssmd_srv_stream_append(s, &s->streams[s->file.slots[k]], s->file.mono, got);
            }
        }
        if (s->cfg->realtime) return 0;
        *busy = true;
    }
}

/* "\r 42.0 %  4.3 s of audio  120.5x real time  ETA 1.2 s" on a terminal. */
static void progress_line(const ssmd_srv *s, bool final)
{
    const ssmd_srv_stream *st = &s->streams[s->file.slots[0]];
    const dsp_audio_info *info = dsp_audio_reader_info(s->file.reader);
    double el = ssmd_now_s() - (s->file.t0 > 0 ? s->file.t0 : s->t_start);
    double audio_s = (double)st->in_samples / st->rate_hz, speed = el > 0 ? audio_s / el : 0;
    if (info->n_frames > 0) {
        double frac = (double)st->in_samples / (double)info->n_frames;
        double eta = frac > 0 ? el * (1 - frac) / frac : 0;
        fprintf(stderr, "\r%5.1f %%  %8.1f s of audio  %7.1fx real time  ETA %6.1f s ", 100 * frac, audio_s,
                speed, final ? 0.0 : eta);
    } else {
        fprintf(stderr, "\r%8.1f s of audio  %7.1fx real time ", audio_s, speed);
    }
    if (final) fputc('\n', stderr);
}

static int file_pull(ssmd_srv *s, bool stopping, bool *busy)
{
    if (stopping || !s->file.reader) return 0;
    return pump_file(s, busy);
}

/* As fast as possible: no waiting for the sockets while there is input. */
static int file_poll_ms(const ssmd_srv *s)
{
    bool work = s->file.reader && !s->streams[s->file.slots[0]].eos && !s->cfg->realtime && !ssmd_srv_waiting_subscribers(s);
    return work ? 0 : SSMD_POLL_MS;
}

static bool file_at_end(const ssmd_srv *s)
{
    return s->file.done;
}

static void file_tick(ssmd_srv *s)
{
    if (!s->file.show_progress) return;
    if (s->file.n_streams > 0 && s->streams[s->file.slots[0]].ended) {
        progress_line(s, true);
        s->file.show_progress = false;
    } else if (ssmd_now_s() - s->file.last_progress > 0.2) {
        progress_line(s, false);
        s->file.last_progress = ssmd_now_s();
    }
}

static void file_stream_ended(ssmd_srv *s, ssmd_srv_stream *st, int *rc)
{
    /* a sink that failed to finish (the output file's close) said why in its own line: no
     * summary that would read as a success follows it */
    if (*rc == 0) ssmd_srv_stream_report(s, st, SSMD_LOG_WARN, s->cfg->output[0] ? s->cfg->output : NULL, true);
    if (++s->file.n_ended == s->file.n_streams) s->file.done = true;
}

static void file_close(ssmd_srv *s)
{
    dsp_audio_reader_close(s->file.reader);
    free(s->file.buf);
    free(s->file.mono);
    s->file.reader = NULL;
    s->file.buf = s->file.mono = NULL;
}

const ssmd_source_ops ssmd_source_file = { .name = "file", .open = file_open, .pull = file_pull,
                                           .poll_ms = file_poll_ms, .at_end = file_at_end, .tick = file_tick,
                                           .stream_ended = file_stream_ended, .close = file_close,
                                           .waits_for_subscribers = true };
