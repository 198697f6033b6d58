/* SPDX-License-Identifier: MIT */
/* dsp — audio in/out and signal processing for ssmd.
 *
 * Common definitions shared by every dsp/ header: the status codes, the
 * per-call error record and the injected logger.  dsp/ knows nothing of
 * models or sockets (docs/architecture.md).
 */
#ifndef DSP_DSP_H
#define DSP_DSP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes of every dsp/ function: 0 on success, negative on failure. */
typedef enum dsp_status {
    DSP_OK              = 0,
    DSP_ERR_INVALID     = -1, /**< an argument is out of range or inconsistent */
    DSP_ERR_NOMEM       = -2, /**< allocation failed or a size overflowed */
    DSP_ERR_IO          = -3, /**< the operating system refused a read/write/open */
    DSP_ERR_FORMAT      = -4, /**< the data is not in a format that can be decoded */
    DSP_ERR_UNSUPPORTED = -5, /**< valid request that this build cannot do */
    DSP_ERR_LIBRARY     = -6, /**< an underlying library (libsndfile, libsoxr, FFTW) failed */
} dsp_status;

/** Static English text for a dsp_status (never NULL; "unknown status" for
 *  values outside the enum).  Thread-safe. */
const char *dsp_strerror(int status);

/** Optional error record filled by functions that can fail for reasons a user
 *  must read (which file, which library message).  msg is one line with no
 *  trailing newline; it is left untouched on success.  Callers may pass NULL. */
typedef struct dsp_error {
    int  status;     /**< the dsp_status also returned by the call */
    char msg[512];   /**< e.g. "in.wav: File contains data in an unknown format." */
} dsp_error;

/** Fills err (if not NULL) with status and a printf-style one-line message;
 *  returns status so callers can `return dsp_error_set(err, DSP_ERR_IO, ...)`.
 *  Thread-safe (touches only *err). */
int dsp_error_set(dsp_error *err, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** Log levels, most severe first. */
typedef enum dsp_log_level { DSP_LOG_ERROR, DSP_LOG_WARN, DSP_LOG_INFO, DSP_LOG_DEBUG } dsp_log_level;

/** Logger callback: one message without trailing newline. */
typedef void (*dsp_log_fn)(dsp_log_level level, const char *msg, void *user);

/** Replaces the logger used by dsp/ (default: WARN and above to stderr).
 *  fn NULL restores the default.  Call before creating objects; not
 *  thread-safe with concurrent logging.  dsp/ never logs from execute or
 *  process calls (real-time safe paths), only from create/open. */
void dsp_log_set(dsp_log_fn fn, void *user);

/** Emits one message through the current logger (printf-style). */
void dsp_log(dsp_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif /* DSP_DSP_H */
