/* Offline transcoding: an audio file through the model to an audio file
 * (DESIGN.md §1 job 2), with the algorithmic delay compensated and the
 * output exactly as long as the input.  Runs on the calling thread. */
#ifndef SSMD_FILEJOB_H
#define SSMD_FILEJOB_H

#include <signal.h>

#include "config.h"

/** Processes cfg->input into cfg->output (either may be "-"? input no;
 *  output "-" writes AU to stdout) with cfg->model.  *stop is polled between
 *  chunks (set from a signal handler): the job then finalises the output
 *  written so far and returns 0.  Prints a progress line on stderr when
 *  cfg->progress says so and a one-line summary at the end.  Returns 0, or 1
 *  after printing one line "ssmd: <what>: <why>" on stderr; a failed job
 *  leaves no output file behind. */
int ssmd_file_job_run(const ssmd_config *cfg, const char *model_path, volatile sig_atomic_t *stop);

#endif /* SSMD_FILEJOB_H */
