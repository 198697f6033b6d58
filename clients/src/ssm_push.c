/* SPDX-License-Identifier: MIT */
/* ssm-push: sends an audio file to ssmd as a named stream and optionally
 * writes the processed audio that comes back (docs/protocol.md, "Ingest").
 *
 * One DEALER socket carries both directions.  The loop polls it for input
 * (results, error replies) and output (the next chunk) together: results are
 * drained while the upload is still running, so neither side's queue fills
 * up, and --realtime only changes when the next chunk is due.  The file is
 * read one chunk ahead so that the last chunk carries the end-of-stream flag
 * (an empty file sends a single rows = 0 end-of-stream message). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client.h"

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5561"
#define DEFAULT_CHUNK 1024u

static const char *const usage_text =
    "Usage: ssm-push [OPTIONS] --stream NAME FILE\n"
    "Push an audio file to ssmd as stream NAME and wait until it is processed.\n"
    "FILE is any format libsndfile reads (\"-\" reads standard input); channels are\n"
    "averaged to mono and the file's own sample rate is kept.\n"
    "\n"
    "Options:\n"
    "  -e, --endpoint EP   ingest socket (default " DEFAULT_ENDPOINT ")\n"
    "  -s, --stream NAME   stream name: 1-64 of [A-Za-z0-9_.-], not starting with '.'\n"
    "  -o, --output OUT    write the processed audio that comes back to OUT (format from\n"
    "                      the extension; \"-\": AU on stdout)\n"
    "      --output-format F  sample format of OUT: " SSMD_OUTPUT_FORMAT_CHOICES " (default\n"
    "                      " SSMD_OUTPUT_FORMAT_DEFAULT_NAME ", as ssmd's; .ogg/.opus/.mp3: their codec)\n"
    "  -r, --realtime      send at the file's sample rate instead of as fast as possible\n"
    "  -c, --chunk N       sample frames read at a time, sent as one message (default 1024)\n"
    "                      or as several within the daemon's advertised cap\n"
    "                      (ingest_max_payload_bytes in its first reply; 64 KiB until then)\n"
    "  -t, --timeout S     give up when the daemon is silent for S seconds (default 10)\n"
    "  -v, --verbose       print a summary on stderr\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 every pushed sample came back, 1 error (file, daemon error reply,\n"
    "timeout, wrong length), 2 bad options.\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ssm-push: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see ssm-push --help)\n");
    return CLI_EXIT_USAGE;
}

typedef struct push_state {
    const char *endpoint, *stream, *in_path, *out_path;
    ssmd_output_format out_format;
    int realtime, verbose;
    size_t chunk;
    double timeout_s;

    dsp_audio_reader *reader;
    int channels, rate_hz;
    float *inter;        /* chunk * channels, interleaved read buffer */
    float *mono[2];      /* two chunk buffers: current and read-ahead */
    size_t mono_n[2];
    int cur;             /* index of the chunk to send next */
    size_t off;          /* frames of the current chunk already sent */
    uint64_t cap_bytes;  /* the daemon's advertised ingest cap (its meta reply), 0 until seen */
    int sent_eos;
    uint64_t seq_out, pushed;

    dsp_audio_writer *writer;
    uint64_t seq_in, received;
    int got_eos;
    char topic[SSMD_STREAM_NAME_MAX + 16];
} push_state;

/* Reads the next chunk into mono[slot], averaging channels.  Returns 0 or -1. */
static int read_chunk(push_state *s, int slot)
{
    size_t n = 0;
    dsp_error err;
    if (dsp_audio_reader_read(s->reader, s->inter, s->chunk, &n, &err) != DSP_OK) {
        fprintf(stderr, "ssm-push: %s\n", err.msg);
        return -1;
    }
    float *m = s->mono[slot];
    if (s->channels == 1) {
        memcpy(m, s->inter, n * sizeof *m);
    } else {
        const float scale = 1.0f / (float)s->channels;
        for (size_t i = 0; i < n; i++) {
            float acc = 0.0f;
            for (int c = 0; c < s->channels; c++) acc += s->inter[i * (size_t)s->channels + (size_t)c];
            m[i] = acc * scale;
        }
    }
    s->mono_n[slot] = n;
    return 0;
}

/* Sends the next part of the current chunk: at most the daemon's advertised
 * cap (SSMD_INGEST_MIN_PAYLOAD_BYTES until its meta reply said it), the
 * last part of the last chunk flagged end-of-stream; after the last part of
 * a chunk, reads the next read-ahead.  Returns 1 sent, 0 would block, -1
 * error. */
static int send_chunk(push_state *s, void *sock)
{
    int next = 1 - s->cur;
    size_t cap_frames = (size_t)((s->cap_bytes ? s->cap_bytes : SSMD_INGEST_MIN_PAYLOAD_BYTES) / sizeof(float));
    size_t n = s->mono_n[s->cur] - s->off;
    if (n > cap_frames) n = cap_frames;
    int chunk_done = s->off + n == s->mono_n[s->cur];
    int last = chunk_done && s->mono_n[next] == 0;
    ssmd_header h;
    memset(&h, 0, sizeof h);
    h.kind = SSMD_KIND_AUDIO;
    h.dtype = SSMD_DTYPE_F32;
    h.flags = last ? SSMD_FLAG_END_OF_STREAM : 0;
    h.sample_rate_hz = (uint32_t)s->rate_hz;
    h.rows = (uint32_t)n;
    h.cols = 1;
    h.seq = s->seq_out;
    h.first_sample = s->pushed;
    uint8_t hb[SSMD_HEADER_BYTES];
    ssmd_header_encode(hb, &h);
    /* ZeroMQ accepts the rest of a multipart message once its first frame went in */
    if (zmq_send(sock, s->topic, strlen(s->topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (zmq_errno() == EAGAIN) return 0;
        fprintf(stderr, "ssm-push: cannot send: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (zmq_send(sock, hb, sizeof hb, ZMQ_SNDMORE) < 0 ||
        zmq_send(sock, s->mono[s->cur] + s->off, n * sizeof(float), 0) < 0) {
        fprintf(stderr, "ssm-push: cannot send: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    s->seq_out++;
    s->pushed += n;
    s->off += n;
    if (last) {
        s->sent_eos = 1;
        return 1;
    }
    if (!chunk_done) return 1;
    s->off = 0;
    s->cur = next;
    return read_chunk(s, 1 - next) == 0 ? 1 : -1;
}

/* Handles one received message.  Returns 0 to go on, -1 on a fatal error. */
static int handle_reply(push_state *s, const cli_msg *m)
{
    char why[256];
    cli_data d;
    int rc = cli_data_decode(m, 0, &d, why, sizeof why);
    /* an error reply is reported even when its header is damaged */
    int is_error = d.topic_len == 12 && !memcmp(d.topic, "_ssmd/event/", 12);
    if (rc != SSMD_PROTO_OK && !is_error) {
        fprintf(stderr, "ssm-push: ignoring a malformed message from the daemon: %s\n", why);
        return 0;
    }
    if (is_error) {
        size_t l = 0;
        const char *text = (const char *)cli_msg_frame(m, 2, &l);
        json_error_t jerr;
        json_t *j = text ? json_loadb(text, l, 0, &jerr) : NULL;
        const char *code = json_string_value(json_object_get(j, "error"));
        const char *msg = json_string_value(json_object_get(j, "message"));
        const char *ev = json_string_value(json_object_get(j, "event"));
        if (ev && strcmp(ev, "error") != 0) { /* another daemon event: not for us to act on */
            json_decref(j);
            return 0;
        }
        fprintf(stderr, "ssm-push: daemon error %s: %s\n", code ? code : "(no code)",
                msg ? msg : (text ? "(no message)" : "(empty reply)"));
        json_decref(j);
        return -1;
    }
    if (d.kind == SSMD_KIND_META && strcmp(d.stream, s->stream) == 0) {
        /* the daemon's first reply: its ingest cap, which messages are split to */
        json_error_t jerr;
        json_t *j = json_loadb((const char *)d.payload, d.payload_len, 0, &jerr);
        json_int_t cap = json_integer_value(json_object_get(j, "ingest_max_payload_bytes"));
        if (cap >= (json_int_t)SSMD_INGEST_MIN_PAYLOAD_BYTES) s->cap_bytes = (uint64_t)cap;
        json_decref(j);
        return 0;
    }
    if (d.kind != SSMD_KIND_AUDIO || strcmp(d.stream, s->stream) != 0) return 0;
    if (d.h.dtype != SSMD_DTYPE_F32 || d.h.cols == 0 || d.h.sample_rate_hz == 0) {
        fprintf(stderr, "ssm-push: result %s seq %llu is not f32 audio with channels and a rate\n",
                s->topic, (unsigned long long)d.h.seq);
        return -1;
    }
    if (d.h.seq != s->seq_in) {
        fprintf(stderr, "ssm-push: result messages lost: expected seq %llu, got %llu\n",
                (unsigned long long)s->seq_in, (unsigned long long)d.h.seq);
        return -1;
    }
    s->seq_in++;
    dsp_error err;
    if (s->out_path && !s->writer &&
        cli_writer_open(&s->writer, s->out_path, s->out_format, (int)d.h.sample_rate_hz, (int)d.h.cols,
                        dsp_audio_reader_info(s->reader)->n_frames, &err) != DSP_OK) {
        fprintf(stderr, "ssm-push: %s\n", err.msg);
        return -1;
    }
    if (s->writer && d.h.rows) {
        /* payload alignment from ZeroMQ is not guaranteed: copy through a float buffer */
        float buf[1024];
        size_t per = sizeof buf / sizeof buf[0] / d.h.cols;
        if (per == 0) {
            fprintf(stderr, "ssm-push: %u channels are more than this client writes\n", d.h.cols);
            return -1;
        }
        for (size_t r = 0; r < d.h.rows; r += per) {
            size_t nr = d.h.rows - r < per ? d.h.rows - r : per;
            memcpy(buf, d.payload + r * d.h.cols * sizeof(float), nr * d.h.cols * sizeof(float));
            if (dsp_audio_writer_write(s->writer, buf, nr, &err) != DSP_OK) {
                fprintf(stderr, "ssm-push: %s\n", err.msg);
                return -1;
            }
        }
    }
    s->received += d.h.rows;
    if (d.h.flags & SSMD_FLAG_END_OF_STREAM) s->got_eos = 1;
    return 0;
}

static int run(push_state *s)
{
    dsp_error err;
    if (dsp_audio_reader_open(&s->reader, s->in_path, NULL, &err) != DSP_OK) {
        fprintf(stderr, "ssm-push: %s\n", err.msg);
        return CLI_EXIT_FAIL;
    }
    const dsp_audio_info *info = dsp_audio_reader_info(s->reader);
    s->channels = info->channels;
    s->rate_hz = info->sample_rate_hz;
    s->inter = malloc(s->chunk * (size_t)s->channels * sizeof(float));
    s->mono[0] = malloc(s->chunk * sizeof(float));
    s->mono[1] = malloc(s->chunk * sizeof(float));
    if (!s->inter || !s->mono[0] || !s->mono[1]) {
        fprintf(stderr, "ssm-push: out of memory for %zu-frame chunks\n", s->chunk);
        return CLI_EXIT_FAIL;
    }
    s->cur = 0;
    if (read_chunk(s, 0) != 0) return CLI_EXIT_FAIL;
    s->mono_n[1] = 0;
    if (s->mono_n[0] > 0 && read_chunk(s, 1) != 0) return CLI_EXIT_FAIL;
    ssmd_topic_format(s->topic, sizeof s->topic, s->stream, SSMD_KIND_AUDIO);

    int rc = CLI_EXIT_FAIL;
    char why[256];
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    /* results are never dropped on our side (RCVHWM 0; the loop below reads
     * them while it sends); a frame larger than any the daemon sends
     * disconnects it */
    if (cli_socket_limits(sock, SSMD_CLIENT_MAX_FRAME_BYTES, 0, 0, why, sizeof why) != 0) {
        fprintf(stderr, "ssm-push: %s\n", why);
        goto out;
    }
    if (cli_connect(ctx, sock, s->endpoint, s->timeout_s, why, sizeof why) != 0) {
        fprintf(stderr, "ssm-push: %s\n", why);
        goto out;
    }
    double t_start = cli_now_s(), t_last = t_start;
    while (!s->got_eos) {
        if (cli_stop_requested) {
            fprintf(stderr, "ssm-push: interrupted after %llu samples\n",
                    (unsigned long long)s->pushed);
            goto out;
        }
        double now = cli_now_s();
        int want_send = !s->sent_eos;
        int wait_ms = 100;
        if (want_send && s->realtime) {
            double due = t_start + (double)s->pushed / (double)s->rate_hz;
            if (due > now) {
                want_send = 0;
                double ms = (due - now) * 1000.0;
                if (ms < wait_ms) wait_ms = (int)ms + 1;
            }
        }
        zmq_pollitem_t it = { sock, 0, (short)(ZMQ_POLLIN | (want_send ? ZMQ_POLLOUT : 0)), 0 };
        int n = zmq_poll(&it, 1, wait_ms);
        if (n < 0) {
            if (zmq_errno() == EINTR) continue;
            fprintf(stderr, "ssm-push: poll: %s\n", zmq_strerror(zmq_errno()));
            goto out;
        }
        if (it.revents & ZMQ_POLLIN) {
            cli_msg m;
            if (cli_msg_recv(sock, &m, 0.0) == 1) {
                int hr = handle_reply(s, &m);
                cli_msg_close(&m);
                if (hr != 0) goto out;
                t_last = cli_now_s();
            }
            continue; /* drain results before sending more */
        }
        if (it.revents & ZMQ_POLLOUT) {
            if (send_chunk(s, sock) < 0) goto out;
            t_last = cli_now_s();
            continue;
        }
        if (cli_now_s() - t_last > s->timeout_s) {
            if (s->sent_eos)
                fprintf(stderr,
                        "ssm-push: no answer from the daemon at %s for %.1f s after the end of the "
                        "stream (%llu of %llu samples came back)\n",
                        s->endpoint, s->timeout_s, (unsigned long long)s->received,
                        (unsigned long long)s->pushed);
            else
                fprintf(stderr, "ssm-push: the daemon at %s accepted no data for %.1f s\n",
                        s->endpoint, s->timeout_s);
            goto out;
        }
    }
    if (s->out_path && !s->writer) { /* end-of-stream came before any result: open anyway */
        if (cli_writer_open(&s->writer, s->out_path, s->out_format, s->rate_hz, 1, 0, &err) != DSP_OK) {
            fprintf(stderr, "ssm-push: %s\n", err.msg);
            goto out;
        }
    }
    if (s->received != s->pushed) { /* the output is incomplete: removed at out: */
        fprintf(stderr, "ssm-push: the daemon returned %llu samples for %llu pushed%s\n",
                (unsigned long long)s->received, (unsigned long long)s->pushed,
                s->out_path ? "; no output file written" : "");
        goto out;
    }
    if (s->writer) {
        dsp_audio_writer *w = s->writer;
        s->writer = NULL;
        if (dsp_audio_writer_close(w, &err) != DSP_OK) {
            fprintf(stderr, "ssm-push: %s\n", err.msg);
            goto out;
        }
    }
    if (s->verbose)
        fprintf(stderr, "ssm-push: %s: %llu samples at %d Hz in %llu messages, %llu back in %.2f s\n",
                s->stream, (unsigned long long)s->pushed, s->rate_hz,
                (unsigned long long)s->seq_out, (unsigned long long)s->received,
                cli_now_s() - t_start);
    rc = CLI_EXIT_OK;
out:
    if (s->writer) dsp_audio_writer_abort(s->writer); /* no half-written output */
    s->writer = NULL;
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    push_state s;
    memset(&s, 0, sizeof s);
    s.endpoint = DEFAULT_ENDPOINT;
    s.chunk = DEFAULT_CHUNK;
    s.timeout_s = 10.0;
    s.out_format = SSMD_OUTPUT_FORMAT_DEFAULT;
    enum { OPT_OUTPUT_FORMAT = 256 };
    static const struct option opts[] = {
        { "endpoint", required_argument, NULL, 'e' },
        { "stream", required_argument, NULL, 's' },
        { "output", required_argument, NULL, 'o' },
        { "output-format", required_argument, NULL, OPT_OUTPUT_FORMAT },
        { "realtime", no_argument, NULL, 'r' },
        { "chunk", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    opterr = 0;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":e:s:o:rc:t:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'e': s.endpoint = optarg; break;
        case 's': s.stream = optarg; break;
        case 'o': s.out_path = optarg; break;
        case OPT_OUTPUT_FORMAT:
            if (cli_output_format_arg("ssm-push", optarg, &s.out_format) != 0) return CLI_EXIT_USAGE;
            break;
        case 'r': s.realtime = 1; break;
        case 'c':
            if (cli_parse_u64(optarg, 1, SSMD_INGEST_MAX_PAYLOAD_BYTES / sizeof(float), &v) != 0)
                return usage_error("--chunk: '%s' is not a frame count in 1..2097152 (8 MiB of samples, "
                                   "the most a daemon takes per message)", optarg);
            s.chunk = (size_t)v;
            _Static_assert(SSMD_INGEST_MAX_PAYLOAD_BYTES / sizeof(float) == 2097152, "--chunk message");
            break;
        case 't':
            if (cli_parse_seconds(optarg, &s.timeout_s) != 0)
                return usage_error("--timeout: '%s' is not a number of seconds > 0", optarg);
            break;
        case 'v': s.verbose = 1; break;
        case 'h': fputs(usage_text, stdout); return CLI_EXIT_OK;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!s.stream) return usage_error("%s", "missing --stream NAME");
    if (!ssmd_stream_name_valid(s.stream, strlen(s.stream)) || s.stream[0] == '_')
        return usage_error("--stream: '%s' is not a valid stream name (1-64 of [A-Za-z0-9_.-], "
                           "not starting with '.' or '_')", s.stream);
    if (optind >= argc) return usage_error("%s", "missing FILE");
    if (argc - optind > 1) return usage_error("unexpected argument '%s'", argv[optind + 1]);
    s.in_path = argv[optind];
    cli_signals_install();
    int rc = run(&s);
    dsp_audio_reader_close(s.reader);
    free(s.inter);
    free(s.mono[0]);
    free(s.mono[1]);
    return rc;
}
