/* SPDX-License-Identifier: MIT */
/* ssmd configuration: one declarative table of options (STYLE.md 15).
 *
 * Every option has a key, a type, a range or a set of values, a default,
 * whether SIGHUP may change it while running, and a help line.  The same
 * table drives the config file parser ("key = value" lines, errors as
 * "file:line: key: reason"), the command line (--key value, --key=value;
 * underscores may be written as dashes; booleans also as --key / --no-key)
 * and `ssmd --help`.  Precedence: defaults < config file < command line.
 *
 * Threads: a ssmd_config is plain data owned by the main thread; the
 * functions here allocate and are not real-time safe.
 */
#ifndef SSMD_CONFIG_H
#define SSMD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/** Where an option's value came from (ssmd_config_origin_of): checks that
 *  refuse a command-line flag only warn about the same key in a config file,
 *  and a default is never an error. */
typedef enum ssmd_config_origin {
    SSMD_ORIGIN_DEFAULT = 0,   /**< the option table's default */
    SSMD_ORIGIN_FILE,          /**< a config file line (or ssmd_config_set) */
    SSMD_ORIGIN_COMMAND_LINE,  /**< a flag or the positional INPUT */
} ssmd_config_origin;

/** Room for the origins of the option table's rows (checked at compile time). */
#define SSMD_CONFIG_MAX_OPTIONS 64

/** All options of the daemon.  Strings are owned by the struct (freed by
 *  ssmd_config_free); empty string means "not set". */
typedef struct ssmd_config {
    char *model;              /**< model file (safetensors) */
    char *input;              /**< "mic", "none", or an audio file path */
    char *output;             /**< output audio file ("-" = AU to stdout), "" for none */
    char *output_format;      /**< "pcm16", "pcm24" or "float" (ssmd/output_format.h) */
    char *device;             /**< capture device: index or name substring, "" = default */
    char *monitor;            /**< playback device for the processed audio, "" = none */
    char *channels;           /**< "auto" (files: split, mic: mono), "mono" (downmix: mean of
                                   the channels) or "split" (one stream per channel) */
    bool  realtime;           /**< pace a file input at real time */
    char *input_gain_db;      /**< gain applied to a file input, dB (float as text) */
    bool  normalize_float;    /**< scale a float file input whose peak exceeds 1.0 to peak 1.0 */
    char *resample_quality;   /**< "best", "medium" or "fast" */
    char *backend;            /**< "cpu", "cuda" or "auto": where the model computes */
    long  cuda_device;        /**< CUDA device ordinal for backend cuda/auto */
    char *weights;            /**< "f32", "f16" (cpu backend) or "bf16" (cuda backend) */
    char *serve;              /**< "auto", "yes", "no": bind the sockets */
    long  wait_subscribers;   /**< subscriptions to wait for before a file input starts */
    char *pub;                /**< data-plane PUB endpoint */
    char *ingest;             /**< client audio ingest endpoint */
    char *control;            /**< control ROUTER endpoint */
    long  max_streams;        /**< streams served at once (batch size limit) */
    long  chunk_frames;       /**< frames a lone stream runs per ssm_forward call */
    long  threads;            /**< compute threads */
    long  push_idle_s;        /**< end a pushed stream after this long without input */
    long  live_backlog_ms;    /**< a stream whose unprocessed input is at most this is live:
                                   stepped before every bulk stream (engine.c) */
    long  ingest_max_payload; /**< payload bytes a pushed message may carry (advertised) */
    long  pub_hwm;            /**< messages queued per subscriber before dropping */
    long  pub_sndbuf;         /**< SO_SNDBUF of each subscriber connection (bytes), 0 = OS default */
    long  ring_ms;            /**< capture ring length in milliseconds */
    bool  publish_mask;       /**< publish <stream>/mask/ */
    long  atten_lim_db;       /**< no mask gain below −atten_lim_db dB (dsp_gain_floor) */
    long  vad_gate;           /**< percent; 0 = off: below it (after the grace) gains drop to the limit */
    long  vad_grace_ms;       /**< how long voice activity must stay below vad_gate first */
    bool  publish_embedding;  /**< publish <stream>/embedding/ */
    char *progress;           /**< "auto" (when stderr is a terminal), "always", "never" */
    char *log_level;          /**< "error", "warn", "info", "debug" */
    char *curve_secret_file;  /**< CURVE server secret key file (non-loopback binds) */
    char *curve_allow_file;   /**< allowlist of client public keys (ZAP) */
    bool  allow_insecure_remote; /**< permit non-loopback binds without CURVE */
    long  generate_s;         /**< > 0: generate this many seconds from a token model (generate.h) */
    long  generate_streams;   /**< generated streams, batched; stream i uses seed + i */
    long  seed;               /**< sampling seed of generation stream 0 */
    char *temperature;        /**< sampling temperature (float as text, >= 0) */
    long  top_k;              /**< top-k sampling, 0 = off */
    char *top_p;              /**< nucleus sampling mass (float as text, (0, 1]) */
    char *min_prob;           /**< probability floor (float as text, [0, 1)) */
    char *prompt;             /**< audio file fed to the model before generating, "" = none */
    bool  generate_publish;   /**< publish generated audio on --pub, paced at real time */
    char *cluster;            /**< "etcd://HOST:PORT[,...]": cluster mode (cluster.h); "" = off */
    char *node;               /**< this daemon's name in the cluster, "" = the host name */
    long  cluster_ttl_s;      /**< lease TTL: how long a dead member stays listed */
    long  checkpoint_s;       /**< cluster mode: checkpoint each owned stream every this many seconds
                                   of its audio (checkpoint.h); 0 = off */
    char *checkpoint_dir;     /**< where checkpoints larger than checkpoint_inline_bytes go, "" = none */
    long  checkpoint_inline_bytes; /**< checkpoints up to this size are stored in etcd itself */
    unsigned char origin[SSMD_CONFIG_MAX_OPTIONS]; /**< ssmd_config_origin of each row, in table order */
    int origin_line[SSMD_CONFIG_MAX_OPTIONS]; /**< the config-file line that set each row's value, 0 when it
                                                   came from elsewhere (ssmd_config_where) */
    char origin_file[256];    /**< the config file of those lines (cut at 255 bytes), "" = none */
} ssmd_config;

/** Option types. */
typedef enum ssmd_opt_type {
    SSMD_OPT_STRING, SSMD_OPT_PATH, SSMD_OPT_ENDPOINT, SSMD_OPT_ENUM, SSMD_OPT_INT, SSMD_OPT_BOOL,
} ssmd_opt_type;

/** One row of the option table. */
typedef struct ssmd_option {
    const char   *key;        /**< config key; CLI flag is --key (dashes accepted) */
    char          short_flag; /**< one-letter CLI alias, 0 for none */
    ssmd_opt_type type;
    size_t        offset;     /**< offsetof(ssmd_config, field) */
    long          min, max;   /**< SSMD_OPT_INT range (inclusive) */
    const char   *values;     /**< SSMD_OPT_ENUM: '|'-separated allowed values */
    const char   *def;        /**< default as text */
    bool          reloadable; /**< SIGHUP may change it while running */
    const char   *help;
} ssmd_option;

/** The option table and its length. */
const ssmd_option *ssmd_options(size_t *n);

/** Fills cfg with the defaults.  Returns 0, or -1 when out of memory. */
int ssmd_config_init(ssmd_config *cfg);

/** Frees the strings of cfg (not cfg itself); safe on a zeroed struct. */
void ssmd_config_free(ssmd_config *cfg);

struct ssm_model_options;
/** Fills *o (ssm/model.h) from cfg->backend: "cpu" → SSM_BACKEND_CPU,
 *  "cuda" → SSM_BACKEND_CUDA (load fails with one line when no device),
 *  "auto" → SSM_BACKEND_AUTO (CUDA if usable, else CPU; the reason is in
 *  ssm_model_backend_note).  Thread-safe. */
void ssmd_config_model_options(const ssmd_config *cfg, struct ssm_model_options *o);

struct ssm_model;
/** SSM_RUNNER_* flags for cfg->weights on the backend model runs on: "f32"
 *  → 0, "f16" → SSM_RUNNER_F16_WEIGHTS (cpu only), "int8" →
 *  SSM_RUNNER_INT8_WEIGHTS (cpu only), "bf16" →
 *  SSM_RUNNER_BF16_WEIGHTS (cuda only).  Returns 0 and *flags; 1 with
 *  *flags = 0 (f32) and a note line in err when cfg->backend is "auto" and
 *  the backend it chose lacks the precision (the caller logs it); or -1 with
 *  one line in err when an explicit backend lacks it. */
int ssmd_config_runner_flags(const ssmd_config *cfg, const struct ssm_model *model,
                             unsigned *flags, char *err, size_t cap);

/** Sets key (underscores or dashes) to the text value, validating type and
 *  range, as a config-file line does (its origin becomes SSMD_ORIGIN_FILE).
 *  On error returns -1 and writes "key: reason" into err (err_cap bytes). */
int ssmd_config_set(ssmd_config *cfg, const char *key, const char *value, char *err, size_t err_cap);

/** Reads a config file: one "key = value" per line, '#' starts a comment,
 *  blank lines ignored, a value may be double-quoted to keep spaces or '#'.
 *  On the first error returns -1 with "file:line: key: reason" in err. */
int ssmd_config_load_file(ssmd_config *cfg, const char *path, char *err, size_t err_cap);

/** What the command line asked for besides options. */
typedef enum ssmd_cli_action {
    SSMD_CLI_RUN = 0, SSMD_CLI_HELP, SSMD_CLI_VERSION, SSMD_CLI_LIST_DEVICES,
} ssmd_cli_action;

/** Parses argv: first applies --config FILE (or -c FILE) if given, then every
 *  other option in order.  A single positional argument is taken as `input`.
 *  Returns 0 with *action set, or -1 with a one-line reason in err (for
 *  usage errors: "--max-streams: expected an integer in [1, 65536], got 'x'"). */
int ssmd_config_parse_args(ssmd_config *cfg, int argc, char **argv, ssmd_cli_action *action,
                           char *err, size_t err_cap);

/** Where the value of key (underscores or dashes) came from; DEFAULT for an
 *  unknown key. */
ssmd_config_origin ssmd_config_origin_of(const ssmd_config *cfg, const char *key);

/** Names where the value of key came from, for the start of an error line:
 *  "--checkpoint-dir" (command line), "/etc/ssmd/ssmd.conf:12: checkpoint_dir"
 *  (a config-file line), or the key itself (a default, or ssmd_config_set).
 *  Writes into buf (cap bytes, cut to fit) and returns buf.  Thread-safe for
 *  a cfg nobody modifies. */
const char *ssmd_config_where(const ssmd_config *cfg, const char *key, char *buf, size_t cap);

/** Checks the options of a run (after ssmd_config_parse_args) for a job
 *  that would lose its result or ignore an option, before anything is
 *  loaded:
 *   - a file input without --output whose audio would go nowhere: refused
 *     unless it is published (--serve yes, --wait-subscribers N or a --pub
 *     endpoint named on the command line or in a config file);
 *   - --output with an input that writes no file (mic, none) and no
 *     --generate-s;
 *   - --output-format that does nothing: no --output, or an .ogg/.opus/.mp3
 *     output whose codec sets the samples;
 *   - cluster options (--node, --cluster-ttl-s, --checkpoint-dir,
 *     --checkpoint-inline-bytes) without --cluster.
 *  The last three are refused when the option came from the command line and
 *  only warned about (one line in warn, else warn[0] = '\0') when it came
 *  from a config file.  Returns 0, or -1 with one line in err (a usage
 *  error: exit status 2). */
int ssmd_config_check(const ssmd_config *cfg, char *err, size_t err_cap, char *warn, size_t warn_cap);

/** Writes the --help text (every option: flag, type/values, default, help). */
void ssmd_config_print_help(FILE *out, const char *argv0);

/** Writes cfg in config-file syntax (a valid file that load_file reads back). */
void ssmd_config_write(FILE *out, const ssmd_config *cfg);

#endif /* SSMD_CONFIG_H */
