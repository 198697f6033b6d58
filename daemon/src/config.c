/* SPDX-License-Identifier: MIT */
/* The option table and its three readers (file, command line, --help).
 * Design note: the table is the single source of truth; adding an option is
 * adding a field to ssmd_config and a row here (tests/daemon/test_config.c
 * checks every row round-trips through the file writer and the parser). */
#include "config.h"
#include "errf.h"
#include "ssm/model.h"
#include "ssmd/output_format.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define OFF(f) offsetof(ssmd_config, f)

static const ssmd_option options[] = {
    { "model", 'm', SSMD_OPT_PATH, OFF(model), 0, 0, NULL, "", false,
      "model file (safetensors, docs/model-format.md); empty = the bundled default, found on "
      "the model search path (MODEL FILES in ssmd --help)" },
    { "input", 'i', SSMD_OPT_STRING, OFF(input), 0, 0, NULL, "none", false,
      "'mic' (capture device), 'none' (only client streams) or an audio file to process" },
    { "output", 'o', SSMD_OPT_PATH, OFF(output), 0, 0, NULL, "", false,
      "write the processed audio of a file input (or of --generate-s) here (format from the extension; "
      "'-' = AU to stdout); a file input without it is refused unless published (--serve yes, --pub or "
      "--wait-subscribers), and with --input mic or none it is refused (nothing would be written)" },
    { "output_format", 0, SSMD_OPT_ENUM, OFF(output_format), 0, 0, SSMD_OUTPUT_FORMAT_CHOICES,
      SSMD_OUTPUT_FORMAT_DEFAULT_NAME, false,
      "sample format of --output: 16- or 24-bit integer PCM, or 32-bit float (bit-exact, keeps "
      "values beyond full scale; not in .flac); .ogg/.opus/.mp3 use their codec. Where it would do "
      "nothing (no --output, or an .ogg/.opus/.mp3 one) it is refused on the command line and warned "
      "about in a config file. ssm-push and ssm-sub take the same option with the same default" },
    { "device", 'd', SSMD_OPT_STRING, OFF(device), 0, 0, NULL, "", false,
      "capture device: index or name substring (see --list-devices); empty = default" },
    { "monitor", 0, SSMD_OPT_STRING, OFF(monitor), 0, 0, NULL, "", false,
      "play the processed audio on this output device (index or name substring)" },
    { "channels", 0, SSMD_OPT_ENUM, OFF(channels), 0, 0, "auto|mono|split", "auto", false,
      "'mono' downmixes the input (the mean of its channels, also when a microphone only opens "
      "with 2 or more) into one stream; 'split' makes each channel its own stream (a file's "
      "output keeps its channels); 'auto': split for files (stereo in, stereo out), mono for "
      "the microphone" },
    { "realtime", 0, SSMD_OPT_BOOL, OFF(realtime), 0, 0, NULL, "false", false,
      "pace a file input at real time instead of as fast as possible" },
    { "input_gain_db", 0, SSMD_OPT_STRING, OFF(input_gain_db), 0, 0, NULL, "0", false,
      "gain in dB applied to a file input's samples before processing, -200..200 (e.g. -90 for "
      "a float file stored at integer scale, peak ~32768)" },
    { "normalize_float", 0, SSMD_OPT_BOOL, OFF(normalize_float), 0, 0, NULL, "false", false,
      "scale a float file input whose peak is above full scale (1.0) down to a peak of 1.0 "
      "(the peak is measured at open; applied after --input-gain-db)" },
    { "resample_quality", 0, SSMD_OPT_ENUM, OFF(resample_quality), 0, 0, "best|medium|fast", "best",
      false, "resampler (libsoxr VHQ|HQ|MQ) used between the device/file rate and the model's rate" },
    { "backend", 0, SSMD_OPT_ENUM, OFF(backend), 0, 0, "cpu|cuda|auto", "cpu", false,
      "compute backend: 'cpu', 'cuda' (an NVIDIA GPU; fails if none) or 'auto' (GPU when present)" },
    { "cuda_device", 0, SSMD_OPT_INT, OFF(cuda_device), 0, 63, NULL, "0", false,
      "CUDA device ordinal for --backend cuda/auto (see nvidia-smi; CUDA_VISIBLE_DEVICES applies)" },
    { "weights", 0, SSMD_OPT_ENUM, OFF(weights), 0, 0, "f32|f16|int8|bf16", "f32", false,
      "precision of the projection weights: f32; f16 (cpu backend: half the bytes, faster "
      "at batch 1); int8 (cpu backend: int8 weights and activations, exact int32 sums, a "
      "quarter of the bytes; steps 1.1-8x faster, measured cost ~0.001 bits/sample of NLL "
      "and <= 0.03 dB of SI-SDR, docs/performance.md); bf16 (cuda backend: bf16 products, "
      "fp32 sums). With --backend auto, a precision the chosen backend lacks falls back to "
      "f32 with a note" },
    { "serve", 0, SSMD_OPT_ENUM, OFF(serve), 0, 0, "auto|yes|no", "auto", false,
      "bind the sockets: 'auto' = yes unless the job is file to file and waits for no subscribers, "
      "'yes', 'no' (a file input without --output is published only with 'yes', --pub or "
      "--wait-subscribers: otherwise refused)" },
    { "wait_subscribers", 0, SSMD_OPT_INT, OFF(wait_subscribers), 0, 1000, NULL, "0", false,
      "before reading a file input (or generating), wait until this many subscriptions have arrived on the "
      "PUB socket (a client subscribing to 3 prefixes sends 3); the streams' meta/ and start event are published "
      "then, so the subscribers waited for receive them" },
    { "pub", 0, SSMD_OPT_ENDPOINT, OFF(pub), 0, 0, NULL, "tcp://127.0.0.1:5560", false,
      "ZeroMQ endpoint the data-plane PUB socket binds" },
    { "ingest", 0, SSMD_OPT_ENDPOINT, OFF(ingest), 0, 0, NULL, "tcp://127.0.0.1:5561", false,
      "ZeroMQ endpoint where clients push audio streams" },
    { "control", 0, SSMD_OPT_ENDPOINT, OFF(control), 0, 0, NULL, "tcp://127.0.0.1:5562", false,
      "ZeroMQ endpoint of the JSON control socket" },
    { "max_streams", 0, SSMD_OPT_INT, OFF(max_streams), 1, 65536, NULL, "64", false,
      "most streams served at once (the model's batch size)" },
    { "chunk_frames", 0, SSMD_OPT_INT, OFF(chunk_frames), 1, 1024, NULL, "32", false,
      "frames a stream that is alone with input waiting runs per model call (a file job; pushed "
      "streams go frame by frame): the same output as frame by frame, faster; 1 = one frame per call" },
    { "threads", 'j', SSMD_OPT_INT, OFF(threads), 1, 256, NULL, "2", false,
      "compute threads for the model step: batches of 32 or more streams are split over them "
      "(same results); fewer streams stay on the loop thread" },
    { "push_idle_s", 0, SSMD_OPT_INT, OFF(push_idle_s), 1, 86400, NULL, "10", true,
      "end a client's pushed stream after this many seconds without input (a crashed client)" },
    { "live_backlog_ms", 0, SSMD_OPT_INT, OFF(live_backlog_ms), 0, 4000, NULL, "500", true,
      "a stream whose input waiting to be processed is at most this many milliseconds of audio (a "
      "microphone, a client pushing at real-time pace) is live: its frames are stepped before any other "
      "stream's, and streams with more waiting (bulk pushes, files) get the time that is left "
      "(docs/reliability.md); 0 turns the priority off" },
    { "ingest_max_payload", 0, SSMD_OPT_INT, OFF(ingest_max_payload), 65536, 8388608, NULL, "8388608",
      false, "most payload bytes one pushed message may carry (advertised to clients, which split "
      "longer pushes; a larger message drops the client's connection): 65536 to 8388608" },
    { "pub_hwm", 0, SSMD_OPT_INT, OFF(pub_hwm), 1, 1000000, NULL, "1000", false,
      "messages queued per subscriber before the daemon drops (and counts) them" },
    { "pub_sndbuf", 0, SSMD_OPT_INT, OFF(pub_sndbuf), 0, 67108864, NULL, "65536", false,
      "kernel send buffer of each subscriber's connection in bytes (SO_SNDBUF; Linux reserves "
      "twice it): with pub_hwm it bounds how old a slow subscriber's data can get before it sees "
      "drops (docs/protocol.md); 0 = the OS default (autotuned up to megabytes: no useful bound)" },
    { "ring_ms", 0, SSMD_OPT_INT, OFF(ring_ms), 10, 10000, NULL, "500", false,
      "capture ring length in milliseconds; overflow beyond it is dropped and counted" },
    { "atten_lim_db", 0, SSMD_OPT_INT, OFF(atten_lim_db), 0, 200, NULL, "100", true,
      "attenuation limit of the mask in dB: no frequency bin is turned down by more than this "
      "(lower values keep some of the noise for a more natural sound; 0 passes the input through)" },
    { "vad_gate", 0, SSMD_OPT_INT, OFF(vad_gate), 0, 100, NULL, "0", true,
      "voice-activity gate in percent (0 = off): once the model's voice activity has stayed below "
      "it for --vad-grace-ms, every gain drops to the attenuation limit until voice returns "
      "(like the VAD threshold of RNNoise's plugin); with the default limit a closed gate mutes" },
    { "vad_grace_ms", 0, SSMD_OPT_INT, OFF(vad_grace_ms), 0, 60000, NULL, "200", true,
      "with --vad-gate: milliseconds of low voice activity before the gate closes (keeps word endings)" },
    { "publish_mask", 0, SSMD_OPT_BOOL, OFF(publish_mask), 0, 0, NULL, "false", true,
      "publish the per-bin gain mask of every frame on <stream>/mask/" },
    { "publish_embedding", 0, SSMD_OPT_BOOL, OFF(publish_embedding), 0, 0, NULL, "false", true,
      "publish the model's final hidden state of every frame on <stream>/embedding/" },
    { "progress", 0, SSMD_OPT_ENUM, OFF(progress), 0, 0, "auto|always|never", "auto", true,
      "progress bar for file jobs ('auto': only when stderr is a terminal)" },
    { "log_level", 'v', SSMD_OPT_ENUM, OFF(log_level), 0, 0, "error|warn|info|debug", "info", true,
      "least severe message written to stderr" },
    { "curve_secret_file", 0, SSMD_OPT_PATH, OFF(curve_secret_file), 0, 0, NULL, "", false,
      "file with the server's CURVE secret key (Z85; ssmd --curve-keygen makes one): encrypts and "
      "authenticates every socket; needed for non-loopback endpoints" },
    { "curve_allow_file", 0, SSMD_OPT_PATH, OFF(curve_allow_file), 0, 0, NULL, "", true,
      "client public keys (Z85, one per line) allowed to connect when CURVE is on" },
    { "allow_insecure_remote", 0, SSMD_OPT_BOOL, OFF(allow_insecure_remote), 0, 0, NULL, "false", false,
      "permit non-loopback endpoints without CURVE (traffic readable by anyone on the network)" },
    { "generate_s", 0, SSMD_OPT_INT, OFF(generate_s), 0, 86400, NULL, "0", false,
      "generate this many seconds of audio from a mu-law token model (default: the bundled mulaw_lm.safetensors) "
      "into --output and/or --generate-publish instead of processing audio; 0 = off" },
    { "generate_streams", 0, SSMD_OPT_INT, OFF(generate_streams), 1, 1024, NULL, "1", false,
      "independent generated streams, stepped as one batch (stream i: seed + i, channel i of --output)" },
    { "seed", 0, SSMD_OPT_INT, OFF(seed), 0, 2147483647, NULL, "1", false,
      "sampling seed: the same seed, temperature, top_k, top_p, min_prob and prompt give the same audio" },
    { "temperature", 0, SSMD_OPT_STRING, OFF(temperature), 0, 0, NULL, "1", false,
      "sampling temperature (>= 0; 0 = always the most likely sample)" },
    { "top_k", 0, SSMD_OPT_INT, OFF(top_k), 0, 65536, NULL, "0", false,
      "sample among the k most likely codes only; 0 = off" },
    { "top_p", 0, SSMD_OPT_STRING, OFF(top_p), 0, 0, NULL, "1", false,
      "nucleus sampling: the most likely codes holding this probability mass, in (0, 1]; 1 = off" },
    { "min_prob", 0, SSMD_OPT_STRING, OFF(min_prob), 0, 0, NULL, "0.001", false,
      "probability floor in [0, 1) subtracted from every code's probability (LPCNet): keeps long "
      "generations from drifting into noise; 0 = off" },
    { "prompt", 0, SSMD_OPT_PATH, OFF(prompt), 0, 0, NULL, "", false,
      "audio file (any rate: resampled to the model's) run through the model before generation continues from it" },
    { "generate_publish", 0, SSMD_OPT_BOOL, OFF(generate_publish), 0, 0, NULL, "false", false,
      "serve the generated audio as streams gen0, gen1, ... on the daemon's sockets (--pub, with "
      "meta; --control; CURVE rules as usual; pushes refused), paced at real time in 20 ms blocks; "
      "without it generation only writes --output, as fast as it can" },
    { "cluster", 0, SSMD_OPT_STRING, OFF(cluster), 0, 0, NULL, "", false,
      "etcd://HOST:PORT[,HOST:PORT...]: join the cluster coordinated by this etcd (v3 API): register as "
      "--node, place pushed streams by rendezvous hashing over the members and refuse the others' "
      "(docs/cluster.md); empty = standalone" },
    { "node", 0, SSMD_OPT_STRING, OFF(node), 0, 0, NULL, "", false,
      "this daemon's name in the cluster (1-64 of [A-Za-z0-9_.-], unique; the same name after a restart "
      "gets the same streams); empty = the host name" },
    { "cluster_ttl_s", 0, SSMD_OPT_INT, OFF(cluster_ttl_s), 2, 600, NULL, "10", false,
      "lease TTL in seconds: a member that dies or loses etcd leaves the member list, and its streams "
      "their owner, this long after its last renewal (renewed every min(1 s, TTL/3))" },
    { "checkpoint_s", 0, SSMD_OPT_INT, OFF(checkpoint_s), 0, 86400, NULL, "0", false,
      "cluster mode: store each owned pushed stream's whole state (model, framer) with the input sample it "
      "corresponds to every N seconds of its audio, so that a member taking the stream over after this one "
      "died resumes it exactly; clients get a 'checkpoint' event (docs/cluster.md); only streams at the "
      "model's sample rate; needs --cluster; 0 = off" },
    { "checkpoint_dir", 0, SSMD_OPT_PATH, OFF(checkpoint_dir), 0, 0, NULL, "", false,
      "directory for checkpoints larger than --checkpoint-inline-bytes (etcd then holds the file's path "
      "and checksum); every member that may take a stream over must read it at the same path (a shared "
      "file system); empty = none" },
    { "checkpoint_inline_bytes", 0, SSMD_OPT_INT, OFF(checkpoint_inline_bytes), 0, 1048576, NULL, "262144",
      false, "checkpoints up to this many bytes are stored in etcd itself (whose requests are limited to "
      "1.5 MiB by default; values travel in base64), larger ones in --checkpoint-dir; 0 = every one in "
      "the directory" },
};

/* What the man page adds to the option table (dist/help2roff.py reads it
 * from --help): the NAME line (the first line after Usage), and the
 * ENVIRONMENT, FILES and EXIT STATUS sections.  Kept here, next to the
 * table, so a new variable, file or status is documented where it is added. */
#define SSMD_SUMMARY "Run selective state-space models (Mamba) on audio files, microphones and pushed streams."

#ifndef SSMD_SYSCONFDIR
#define SSMD_SYSCONFDIR "/usr/local/etc"
#endif

typedef struct help_item { const char *term, *text; } help_item;

static const help_item help_environment[] = {
    { "SSMD_MODEL", "a model file to load when --model (config key model) is empty, instead of searching "
                    "(MODEL FILES)" },
    { "XDG_DATA_HOME", "the model search looks in $XDG_DATA_HOME/ssmd/models/ first (default "
                       "~/.local/share, from HOME)" },
    { "XDG_DATA_DIRS", "then in DIR/ssmd/models/ for each DIR (default /usr/local/share:/usr/share)" },
    { "SSMD_NO_SOURCE_MODELS", "when set and not empty, the source tree's models/ is not searched (only a "
                               "build with -Dsource_models=true, the default, searches it: "
#ifdef SSMD_MODELS_SRCDIR
                               "this one does)" },
#else
                               "this one does not)" },
#endif
    { "SSMD_AUDIO_DEBUG", "when set, the messages ALSA and JACK print while PortAudio lists the devices "
                          "are shown (hidden otherwise)" },
    { "SSMD_CONTROL_TRACE", "when set, status replies carry \"trace\": when the answering thread read the "
                            "request and replied (CLOCK_MONOTONIC ns) and its CPU time since it last found its "
                            "socket empty (read by bench/soak.py; docs/reliability.md)" },
    { "CUDA_VISIBLE_DEVICES", "the GPUs --backend cuda or auto may use (read by the CUDA runtime)" },
};

static const help_item help_files[] = {
    { SSMD_SYSCONFDIR "/ssmd/ssmd.conf", "example configuration: every key with its help and default, commented "
                                        "out; read with --config FILE (the system unit ssmd.service does)" },
    { "~/.config/ssmd/ssmd.conf", "read by the systemd user unit when it exists "
                                  "($XDG_CONFIG_HOME/ssmd/ssmd.conf)" },
    { "~/.local/share/ssmd/models/", "user models, searched first (MODEL FILES)" },
#ifdef SSMD_MODELS_DATADIR
    { SSMD_MODELS_DATADIR "/", "the bundled models: default.safetensors (the denoiser, loaded without --model) "
                               "and mulaw_lm.safetensors (--generate-s)" },
#endif
};

static const help_item help_exit_status[] = {
    { "0", "the job finished (also when stopped by SIGINT or SIGTERM: outputs are completed)" },
    { "1", "it failed while running: an output that could not be written (or an empty input to .flac, .mp3 "
           "or .opus), a socket error" },
    { "2", "it could not start: bad options or config file, a job whose result would go nowhere, no model "
           "found or a bad model, an input that cannot be read, an output that cannot be created, an "
           "endpoint that cannot be bound" },
};

_Static_assert(sizeof options / sizeof options[0] <= SSMD_CONFIG_MAX_OPTIONS,
               "raise SSMD_CONFIG_MAX_OPTIONS (config.h)");

const ssmd_option *ssmd_options(size_t *n)
{
    *n = sizeof options / sizeof options[0];
    return options;
}


/* Keys compare with '-' and '_' as the same character. */
static int key_equal(const char *a, const char *b, size_t len_a)
{
    size_t i = 0;
    for (; i < len_a && b[i]; i++) {
        char ca = a[i] == '-' ? '_' : a[i], cb = b[i] == '-' ? '_' : b[i];
        if (ca != cb) return 0;
    }
    return i == len_a && b[i] == '\0';
}

static const ssmd_option *find_option(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (key_equal(key, options[i].key, len)) return &options[i];
    return NULL;
}

static int enum_contains(const char *values, const char *v)
{
    size_t lv = strlen(v);
    const char *p = values;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == lv && strncmp(p, v, l) == 0) return 1;
        p += l + (bar ? 1 : 0);
    }
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0) { *out = true; return 0; }
        if (strcmp(v, no[i]) == 0) { *out = false; return 0; }
    }
    return -1;
}

/* ZeroMQ endpoints ssmd accepts: tcp://host:port, ipc://path, inproc://name. */
static int endpoint_valid(const char *v)
{
    if (strncmp(v, "ipc://", 6) == 0) return v[6] != '\0';
    if (strncmp(v, "inproc://", 9) == 0) return v[9] != '\0';
    if (strncmp(v, "tcp://", 6) != 0) return 0;
    const char *colon = strrchr(v + 6, ':');
    if (!colon || colon == v + 6) return 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '*' && colon[2] == '\0') return 1;
    return errno == 0 && *end == '\0' && colon[1] != '\0' && isdigit((unsigned char)colon[1]) &&
           port >= 1 && port <= 65535;
}

static int set_value(ssmd_config *cfg, const ssmd_option *o, const char *value, char *err, size_t cap);

/* Sets the row's field and records where the value came from. */
static int set_option(ssmd_config *cfg, const ssmd_option *o, const char *value, ssmd_config_origin from,
                      char *err, size_t cap)
{
    if (set_value(cfg, o, value, err, cap) != 0) return -1;
    cfg->origin[o - options] = (unsigned char)from;
    cfg->origin_line[o - options] = 0; /* ssmd_config_load_file sets it after */
    return 0;
}

static int set_value(ssmd_config *cfg, const ssmd_option *o, const char *value, char *err, size_t cap)
{
    char *base = (char *)cfg;
    switch (o->type) {
    case SSMD_OPT_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end != '\0' || isspace((unsigned char)value[0]) ||
            v < o->min || v > o->max) {
            ssmd_errf(err, cap, "%s: expected an integer in [%ld, %ld], got '%s'", o->key, o->min, o->max, value);
            return -1;
        }
        *(long *)(base + o->offset) = v;
        return 0;
    }
    case SSMD_OPT_BOOL:
        if (parse_bool(value, (bool *)(base + o->offset)) != 0) {
            ssmd_errf(err, cap, "%s: expected true or false, got '%s'", o->key, value);
            return -1;
        }
        return 0;
    case SSMD_OPT_ENUM:
        if (!enum_contains(o->values, value)) {
            ssmd_errf(err, cap, "%s: expected one of %s, got '%s'", o->key, o->values, value);
            return -1;
        }
        break;
    case SSMD_OPT_ENDPOINT:
        if (!endpoint_valid(value)) {
            ssmd_errf(err, cap, "%s: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME, got '%s'",
                 o->key, value);
            return -1;
        }
        break;
    case SSMD_OPT_STRING:
    case SSMD_OPT_PATH:
        break;
    }
    if (strlen(value) > 4096) {
        ssmd_errf(err, cap, "%s: value longer than 4096 bytes", o->key);
        return -1;
    }
    char *copy = strdup(value);
    if (!copy) {
        ssmd_errf(err, cap, "%s: out of memory", o->key);
        return -1;
    }
    char **slot = (char **)(base + o->offset);
    free(*slot);
    *slot = copy;
    return 0;
}

static int config_set_from(ssmd_config *cfg, const char *key, const char *value, ssmd_config_origin from,
                           char *err, size_t cap)
{
    const ssmd_option *o = find_option(key, strlen(key));
    if (!o) {
        ssmd_errf(err, cap, "%s: unknown option (ssmd --help lists them)", key);
        return -1;
    }
    return set_option(cfg, o, value, from, err, cap);
}

int ssmd_config_set(ssmd_config *cfg, const char *key, const char *value, char *err, size_t cap)
{
    return config_set_from(cfg, key, value, SSMD_ORIGIN_FILE, err, cap);
}

ssmd_config_origin ssmd_config_origin_of(const ssmd_config *cfg, const char *key)
{
    const ssmd_option *o = find_option(key, strlen(key));
    return o ? (ssmd_config_origin)cfg->origin[o - options] : SSMD_ORIGIN_DEFAULT;
}

const char *ssmd_config_where(const ssmd_config *cfg, const char *key, char *buf, size_t cap)
{
    if (!buf || cap == 0) return "";
    const ssmd_option *o = find_option(key, strlen(key));
    ssmd_config_origin from = o ? (ssmd_config_origin)cfg->origin[o - options] : SSMD_ORIGIN_DEFAULT;
    int line = o ? cfg->origin_line[o - options] : 0;
    if (from == SSMD_ORIGIN_COMMAND_LINE) {
        snprintf(buf, cap, "--%s", o->key);
        for (char *p = buf; *p; p++)
            if (*p == '_') *p = '-';
    } else if (from == SSMD_ORIGIN_FILE && line > 0 && cfg->origin_file[0]) {
        snprintf(buf, cap, "%s:%d: %s", cfg->origin_file, line, o->key);
    } else {
        snprintf(buf, cap, "%s", o ? o->key : key);
    }
    return buf;
}

int ssmd_config_init(ssmd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (set_option(cfg, &options[i], options[i].def, SSMD_ORIGIN_DEFAULT, NULL, 0) != 0) {
            ssmd_config_free(cfg);
            return -1;
        }
    }
    return 0;
}

void ssmd_config_free(ssmd_config *cfg)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const ssmd_option *o = &options[i];
        if (o->type == SSMD_OPT_INT || o->type == SSMD_OPT_BOOL) continue;
        char **slot = (char **)((char *)cfg + o->offset);
        free(*slot);
        *slot = NULL;
    }
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

int ssmd_config_load_file(ssmd_config *cfg, const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        ssmd_errf(err, cap, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* lines are read with a bound, so that a device or a binary file given as the
     * configuration (-c /dev/zero) is refused at once instead of filling memory */
    enum { LINE_MAX_BYTES = 8192 };
    char *line = malloc(LINE_MAX_BYTES + 2);
    if (!line) {
        fclose(f);
        return ssmd_errf(err, cap, "%s: out of memory", path);
    }
    int lineno = 0, rc = 0;
    for (;;) {
        size_t n = 0;
        int c = 0;
        bool nul = false;
        while (n <= LINE_MAX_BYTES && (c = getc(f)) != EOF && c != '\n') {
            nul |= c == 0;
            line[n++] = (char)c;
        }
        if (n == 0 && c == EOF) break;
        lineno++;
        if (nul) {
            ssmd_errf(err, cap, "%s:%d: NUL byte in line (not a text file?)", path, lineno);
            rc = -1;
            break;
        }
        if (n > LINE_MAX_BYTES) {
            ssmd_errf(err, cap, "%s:%d: line longer than %d bytes (not a configuration file?)", path, lineno,
                      LINE_MAX_BYTES);
            rc = -1;
            break;
        }
        line[n] = '\0';
        char *s = trim(line);
        if (*s == '\0' || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            ssmd_errf(err, cap, "%s:%d: %s: expected 'key = value'", path, lineno, s);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (*value == '"') {
            char *close = strchr(value + 1, '"');
            char *rest = close ? trim(close + 1) : NULL;
            if (!close || (*rest != '\0' && *rest != '#')) {
                ssmd_errf(err, cap, "%s:%d: %s: unterminated quote or text after the quoted value",
                     path, lineno, key);
                rc = -1;
                break;
            }
            *close = '\0';
            value++;
        } else {
            char *hash = strchr(value, '#');
            if (hash) {
                *hash = '\0';
                value = trim(value);
            }
        }
        char why[512];
        if (ssmd_config_set(cfg, key, value, why, sizeof why) != 0) {
            ssmd_errf(err, cap, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
        const ssmd_option *o = find_option(key, strlen(key));
        if (o) {
            cfg->origin_line[o - options] = lineno;
            snprintf(cfg->origin_file, sizeof cfg->origin_file, "%s", path);
        }
    }
    if (rc == 0 && ferror(f)) {
        ssmd_errf(err, cap, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    /* the line may quote the file's text: no control bytes (terminal escapes) reach stderr */
    for (char *p = err; rc != 0 && p && *p && (size_t)(p - err) < cap; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    free(line);
    fclose(f);
    return rc;
}

/* Splits "--key=value" / "--key" into the option and an inline value. */
static const ssmd_option *match_long(const char *arg, const char **inline_value, bool *negated)
{
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    *inline_value = eq ? eq + 1 : NULL;
    *negated = false;
    const ssmd_option *o = find_option(name, len);
    if (!o && len > 3 && strncmp(name, "no-", 3) == 0) {
        o = find_option(name + 3, len - 3);
        if (o && o->type == SSMD_OPT_BOOL && !eq) *negated = true;
        else o = NULL;
    }
    return o;
}

int ssmd_config_parse_args(ssmd_config *cfg, int argc, char **argv, ssmd_cli_action *action,
                           char *err, size_t cap)
{
    *action = SSMD_CLI_RUN;
    /* Pass 1: the config file, so that the command line overrides it. */
    for (int i = 1; i < argc; i++) {
        const char *file = NULL;
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                ssmd_errf(err, cap, "%s: needs a file name", argv[i]);
                return -1;
            }
            file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        } else if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (file && ssmd_config_load_file(cfg, file, err, cap) != 0) return -1;
    }
    int n_positional = 0;
    bool only_positional = false;
    const char *input_flag = NULL; /* the value of -i/--input on the command line */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_positional && strcmp(a, "--") == 0) { only_positional = true; continue; }
        if (only_positional || a[0] != '-' || a[1] == '\0') {
            if (n_positional++ > 0 || input_flag) {
                ssmd_errf(err, cap, "%s: unexpected argument (only one input may be given%s%s)", a,
                          input_flag ? ", and --input is " : "", input_flag ? input_flag : "");
                return -1;
            }
            if (config_set_from(cfg, "input", a, SSMD_ORIGIN_COMMAND_LINE, err, cap) != 0) return -1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { *action = SSMD_CLI_HELP; return 0; }
        if (strcmp(a, "--version") == 0) { *action = SSMD_CLI_VERSION; return 0; }
        if (strcmp(a, "--list-devices") == 0) { *action = SSMD_CLI_LIST_DEVICES; continue; }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) { i++; continue; }
        if (strncmp(a, "--config=", 9) == 0) continue;

        const ssmd_option *o = NULL;
        const char *value = NULL;
        bool negated = false;
        if (a[1] == '-') {
            o = match_long(a, &value, &negated);
        } else if (a[2] == '\0') {
            for (size_t k = 0; k < sizeof options / sizeof options[0]; k++)
                if (options[k].short_flag == a[1]) o = &options[k];
        }
        if (!o) {
            ssmd_errf(err, cap, "%s: unknown option (ssmd --help lists them)", a);
            return -1;
        }
        if (o->type == SSMD_OPT_BOOL && !value) {
            value = negated ? "false" : "true";
        } else if (!value) {
            if (i + 1 >= argc) {
                ssmd_errf(err, cap, "%s: needs a value", a);
                return -1;
            }
            value = argv[++i];
        }
        if (strcmp(o->key, "input") == 0) { /* one input: a second one would silently win */
            if (n_positional > 0 || input_flag) {
                ssmd_errf(err, cap, "%s%s%s: only one input may be given, and it is already '%s'", a,
                          strchr(a, '=') ? "" : " ", strchr(a, '=') ? "" : value, input_flag ? input_flag : cfg->input);
                return -1;
            }
            input_flag = value;
        }
        char why[512];
        if (set_option(cfg, o, value, SSMD_ORIGIN_COMMAND_LINE, why, sizeof why) != 0) {
            ssmd_errf(err, cap, "--%s", why);
            for (char *p = err; *p && *p != ':'; p++)
                if (*p == '_') *p = '-';
            return -1;
        }
    }
    return 0;
}

/* Appends one warning line (ending in '\n') to warn. */
static void warn_line(char *warn, size_t cap, const char *fmt, ...)
{
    size_t len = strnlen(warn, cap);
    if (len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(warn + len, cap - len, fmt, ap);
    va_end(ap);
    if (n >= 0 && len + (size_t)n + 1 < cap) strcat(warn, "\n");
}

int ssmd_config_check(const ssmd_config *cfg, char *err, size_t cap, char *warn, size_t warn_cap)
{
    if (warn && warn_cap) warn[0] = '\0';
    bool is_file = strcmp(cfg->input, "none") != 0 && strcmp(cfg->input, "mic") != 0;
    bool generating = cfg->generate_s > 0;
    if (is_file && !generating && !cfg->output[0]) {
        if (strcmp(cfg->serve, "no") == 0) {
            ssmd_errf(err, cap, "%s: no output file named (-o) and serve is 'no', so the processed audio "
                                "would go nowhere: write it with -o OUT.wav", cfg->input);
            return -1;
        }
        bool publish = strcmp(cfg->serve, "yes") == 0 || cfg->wait_subscribers > 0 ||
                       ssmd_config_origin_of(cfg, "pub") != SSMD_ORIGIN_DEFAULT;
        if (!publish) {
            ssmd_errf(err, cap, "%s: no output file named (-o), so the processed audio would go nowhere: "
                                "write it with -o OUT.wav, or publish it with --serve yes (and "
                                "--wait-subscribers N to start once N subscriptions arrived)", cfg->input);
            return -1;
        }
    }
    if (cfg->wait_subscribers > 0) { /* subscribers that cannot arrive: the job would wait forever */
        const char *why = NULL;
        if (strcmp(cfg->serve, "no") == 0 && is_file) /* (mic or none with serve no: refused at start) */
            why = "serve is 'no', so no socket is bound";
        else if (generating && !cfg->generate_publish)
            why = "a generation is published only with --generate-publish";
        if (why) {
            char where[400];
            ssmd_config_where(cfg, "wait_subscribers", where, sizeof where);
            ssmd_errf(err, cap, "%s: no subscriber could arrive (%s), so the job would wait forever", where, why);
            return -1;
        }
    }
    ssmd_config_origin from = ssmd_config_origin_of(cfg, "output");
    if (cfg->output[0] && !is_file && !generating) {
        const char *why = "only a file input (ssmd IN -o OUT) or --generate-s writes an output file; "
                          "record a served stream with ssm-sub -o FILE";
        if (from == SSMD_ORIGIN_COMMAND_LINE) {
            ssmd_errf(err, cap, "--output %s: input '%s' writes no file: %s", cfg->output, cfg->input, why);
            return -1;
        }
        if (warn) warn_line(warn, warn_cap, "output = %s in the config file does nothing: input '%s' writes no "
                            "file: %s", cfg->output, cfg->input, why);
    }
    from = ssmd_config_origin_of(cfg, "output_format");
    if (from != SSMD_ORIGIN_DEFAULT) {
        char why[512] = "";
        if (!cfg->output[0]) {
            snprintf(why, sizeof why, "there is no output file (-o) to apply it to");
        } else {
            ssmd_output_format f = SSMD_OUTPUT_FORMAT_DEFAULT;
            dsp_audio_container c = dsp_audio_container_from_path(cfg->output);
            if (ssmd_output_format_parse(cfg->output_format, &f) == 0 &&
                ssmd_output_format_subtype(f, c) == DSP_AUDIO_SUBTYPE_DEFAULT)
                snprintf(why, sizeof why, "%s is encoded by its codec (.ogg .opus .mp3), which sets the samples; "
                         "the option applies to .wav .flac .aiff .au .w64 .rf64 .raw outputs", cfg->output);
        }
        if (why[0] && from == SSMD_ORIGIN_COMMAND_LINE) {
            ssmd_errf(err, cap, "--output-format %s: %s", cfg->output_format, why);
            return -1;
        }
        if (why[0] && warn)
            warn_line(warn, warn_cap, "output_format = %s in the config file does nothing: %s", cfg->output_format,
                      why);
    }
    /* options only another option uses: refused on the command line, warned about in a
     * config file (the microphone's devices not: a configuration may name them for the
     * daemon's live runs while a file job is started with the same file) */
    enum { CLUSTER, GENERATION, MIC, CURVE };
    static const struct { const char *key; int needs; } only_with[] = {
        { "node", CLUSTER }, { "cluster_ttl_s", CLUSTER }, { "checkpoint_dir", CLUSTER },
        { "checkpoint_inline_bytes", CLUSTER }, { "generate_streams", GENERATION }, { "seed", GENERATION },
        { "temperature", GENERATION }, { "top_k", GENERATION }, { "top_p", GENERATION },
        { "min_prob", GENERATION }, { "prompt", GENERATION }, { "generate_publish", GENERATION },
        { "device", MIC }, { "monitor", MIC }, { "curve_allow_file", CURVE },
    };
    static const char *const used_only[] = {
        [CLUSTER] = "only used in cluster mode, and --cluster etcd://HOST:PORT is not given (docs/cluster.md)",
        [GENERATION] = "only used by a generation, and --generate-s is not given",
        [MIC] = "only used with the microphone (--input mic)",
        [CURVE] = "only used with CURVE, and --curve-secret-file is not given",
    };
    static const char *const without[] = {
        [CLUSTER] = "cluster = etcd://HOST:PORT (docs/cluster.md)", [GENERATION] = "generate_s",
        [MIC] = "input = mic", [CURVE] = "curve_secret_file",
    };
    const bool have[] = { [CLUSTER] = cfg->cluster[0] != '\0', [GENERATION] = generating,
                          [MIC] = strcmp(cfg->input, "mic") == 0, [CURVE] = cfg->curve_secret_file[0] != '\0' };
    for (size_t i = 0; i < sizeof only_with / sizeof only_with[0]; i++) {
        int need = only_with[i].needs;
        from = ssmd_config_origin_of(cfg, only_with[i].key);
        if (have[need] || from == SSMD_ORIGIN_DEFAULT) continue;
        char where[400];
        ssmd_config_where(cfg, only_with[i].key, where, sizeof where);
        if (from == SSMD_ORIGIN_COMMAND_LINE) {
            ssmd_errf(err, cap, "%s: %s", where, used_only[need]);
            return -1;
        }
        if (warn && need != MIC)
            warn_line(warn, warn_cap, "%s does nothing without %s", where, without[need]);
    }
    return 0;
}

static void flag_name(char *out, size_t cap, const char *key)
{
    snprintf(out, cap, "--%s", key);
    for (char *p = out; *p; p++)
        if (*p == '_') *p = '-';
}

void ssmd_config_print_help(FILE *out, const char *argv0)
{
    fprintf(out,
            "Usage: %s [OPTION]... [INPUT]\n"
            SSMD_SUMMARY "\n"
            "The model advances one step per frame with a state of fixed size; results are\n"
            "written to a file (-o) and published over ZeroMQ (docs/protocol.md).\n\n"
            "  -c, --config FILE         read options from FILE (key = value lines)\n"
            "      --list-devices        list capture and playback devices and exit\n"
            "      --curve-keygen PREFIX write a CURVE key pair to PREFIX.key and PREFIX.pub and exit\n"
            "  -h, --help                show this help and exit\n"
            "      --version             show the version and exit\n",
            argv0);
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const ssmd_option *o = &options[i];
        char flag[64], arg[64];
        flag_name(flag, sizeof flag, o->key);
        switch (o->type) {
        case SSMD_OPT_INT:      snprintf(arg, sizeof arg, " N"); break;
        case SSMD_OPT_BOOL:     snprintf(arg, sizeof arg, "%s", ""); break;
        case SSMD_OPT_ENUM:     snprintf(arg, sizeof arg, " %s", o->values); break;
        case SSMD_OPT_ENDPOINT: snprintf(arg, sizeof arg, " URL"); break;
        case SSMD_OPT_PATH:     snprintf(arg, sizeof arg, " FILE"); break;
        case SSMD_OPT_STRING:   snprintf(arg, sizeof arg, " TEXT"); break;
        }
        char left[160];
        if (o->short_flag) snprintf(left, sizeof left, "  -%c, %s%s", o->short_flag, flag, arg);
        else snprintf(left, sizeof left, "      %s%s", flag, arg);
        fprintf(out, "%-27s %s", left, o->help);
        if (o->type == SSMD_OPT_INT) fprintf(out, " [%ld..%ld]", o->min, o->max);
        if (o->type == SSMD_OPT_BOOL) fprintf(out, " (--no-%s to turn off)", flag + 2);
        if (o->def[0]) fprintf(out, " (default: %s)", o->def);
        if (o->reloadable) fprintf(out, " [reloads on SIGHUP]");
        fputc('\n', out);
    }
    fprintf(out, "\nEvery option is also a config-file key (underscores), e.g. max_streams = 16.\n"
                 "Errors in a config file are reported as FILE:LINE: KEY: REASON.\n"
                 "\nMODEL FILES: without --model, ssmd loads default.safetensors (mulaw_lm.safetensors\n"
                 "with --generate-s) from the first of: $SSMD_MODEL (a file path);\n"
                 "$XDG_DATA_HOME/ssmd/models/ (default ~/.local/share/ssmd/models/); DIR/ssmd/models/\n"
                 "for each DIR of $XDG_DATA_DIRS (default /usr/local/share:/usr/share); the install\n"
                 "datadir (PREFIX/share/ssmd/models/)"
#ifdef SSMD_MODELS_SRCDIR
                 "; the source tree's models/ (not with\n"
                 "SSMD_NO_SOURCE_MODELS=1)"
#endif
                 ".\n");
    static const struct { const char *heading; const help_item *items; size_t n; } sections[] = {
        { "Environment", help_environment, sizeof help_environment / sizeof help_environment[0] },
        { "Files", help_files, sizeof help_files / sizeof help_files[0] },
        { "Exit status", help_exit_status, sizeof help_exit_status / sizeof help_exit_status[0] },
    };
    for (size_t k = 0; k < sizeof sections / sizeof sections[0]; k++) {
        fprintf(out, "\n%s:\n", sections[k].heading);
        for (size_t i = 0; i < sections[k].n; i++) {
            const help_item *it = &sections[k].items[i];
            if (strlen(it->term) > 24) fprintf(out, "  %s\n%-27s %s\n", it->term, "", it->text);
            else fprintf(out, "  %-25s %s\n", it->term, it->text);
        }
    }
}

void ssmd_config_write(FILE *out, const ssmd_config *cfg)
{
    const char *base = (const char *)cfg;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const ssmd_option *o = &options[i];
        if (o->type == SSMD_OPT_INT)
            fprintf(out, "%s = %ld\n", o->key, *(const long *)(base + o->offset));
        else if (o->type == SSMD_OPT_BOOL)
            fprintf(out, "%s = %s\n", o->key, *(const bool *)(base + o->offset) ? "true" : "false");
        else
            fprintf(out, "%s = \"%s\"\n", o->key, *(char *const *)(base + o->offset));
    }
}

void ssmd_config_model_options(const ssmd_config *cfg, ssm_model_options *o)
{
    memset(o, 0, sizeof *o);
    o->backend = strcmp(cfg->backend, "cuda") == 0   ? SSM_BACKEND_CUDA
                 : strcmp(cfg->backend, "auto") == 0 ? SSM_BACKEND_AUTO
                                                     : SSM_BACKEND_CPU;
    o->cuda_device = (int)cfg->cuda_device;
}

int ssmd_config_runner_flags(const ssmd_config *cfg, const ssm_model *model, unsigned *flags,
                             char *err, size_t cap)
{
    const char *be = ssm_model_backend(model), *w = cfg->weights;
    int cuda = strcmp(be, "cuda") == 0;
    /* which backend each precision exists on */
    int cpu_only = strcmp(w, "f16") == 0 || strcmp(w, "int8") == 0;
    int cuda_only = strcmp(w, "bf16") == 0;
    *flags = 0;
    if ((cpu_only && cuda) || (cuda_only && !cuda)) {
        if (strcmp(cfg->backend, "auto") == 0) {
            /* --backend auto: the same command line works with or without a
             * GPU; the precision the backend lacks falls back to f32 */
            ssmd_errf(err, cap, "weights: %s is a %s-backend option and --backend auto chose the %s: "
                                "using f32", w, cuda ? "cpu" : "cuda", be);
            return 1;
        }
        if (cuda)
            ssmd_errf(err, cap, "weights: %s is a cpu-backend option; on cuda use bf16 or f32", w);
        else
            ssmd_errf(err, cap, "weights: %s needs the cuda backend (the model runs on the %s; "
                                "there use f16 or int8)", w, be);
        return -1;
    }
    if (strcmp(w, "f16") == 0)
        *flags = SSM_RUNNER_F16_WEIGHTS;
    else if (strcmp(w, "int8") == 0)
        *flags = SSM_RUNNER_INT8_WEIGHTS;
    else if (strcmp(w, "bf16") == 0)
        *flags = SSM_RUNNER_BF16_WEIGHTS;
    return 0;
}
