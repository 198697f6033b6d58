/* SPDX-License-Identifier: MIT */
/* Where ssmd finds a model file when the user names none (docs/deploying.md,
 * "Where ssmd finds its model": installed models under <datadir>/ssmd/models,
 * the checkout only as a fallback).  Shared by the daemon and anything else
 * linking libssmd (the LADSPA plugin, examples/embed.c), so every host
 * searches the same places. */
#ifndef SSMD_MODEL_FIND_H
#define SSMD_MODEL_FIND_H

#include <stddef.h>

/** The bundled models' file names (models/ in the source tree,
 *  <datadir>/ssmd/models once installed). */
#define SSMD_MODEL_DEFAULT "default.safetensors"  /**< the denoiser with voice activity */
#define SSMD_MODEL_MULAW_LM "mulaw_lm.safetensors" /**< the mu-law generation model */

/** Resolves the model file to load into out (cap bytes, NUL-terminated).
 *
 *  Order, first match wins:
 *   1. explicit_path (ssmd's --model / config key model) when non-NULL and
 *      non-empty: copied as is, not checked (the loader reports a bad file);
 *   2. the environment variable SSMD_MODEL when set and non-empty: a file
 *      path, copied as is;
 *   3. $XDG_DATA_HOME/ssmd/models/<name> ($HOME/.local/share when unset);
 *   4. <dir>/ssmd/models/<name> for each dir of $XDG_DATA_DIRS
 *      (/usr/local/share:/usr/share when unset), in order;
 *   5. <datadir>/ssmd/models/<name>, the datadir ssmd was installed to
 *      (meson's prefix/datadir, compiled in);
 *   6. <source root>/models/<name>, the checkout the program was built from
 *      (compiled in), unless the environment variable SSMD_NO_SOURCE_MODELS
 *      is set to a non-empty value (tests of an installed tree set it).
 *  Steps 3-6 take the first path that is a readable file; relative entries
 *  of the XDG variables are ignored, as the XDG base directory spec says.
 *
 *  name: a bare file name (SSMD_MODEL_DEFAULT, SSMD_MODEL_MULAW_LM, or any
 *  other file under models/); one containing '/' or equal to "", "." or ".."
 *  is refused.  out and err are caller-owned; err (errcap bytes, may be NULL)
 *  gets one line.
 *
 *  Returns 0 when out holds a path; -1 when name is invalid, a path does not
 *  fit in cap, or nothing was found, with err naming every place looked at
 *  ("no model default.safetensors found: SSMD_MODEL unset, looked in ...").
 *
 *  Threads: reads the environment (getenv) and the file system; safe to call
 *  from several threads as long as none modifies the environment meanwhile.
 *  Not real-time safe (file system calls). */
int ssmd_model_find(const char *name, const char *explicit_path, char *out, size_t cap, char *err,
                    size_t errcap);

#endif /* SSMD_MODEL_FIND_H */
