/* runlog.h: pieces of a training run's record that the teacher and the student
 * trainers share: the JSON-lines run log beside a checkpoint (one line per epoch,
 * appended and fsync'ed; rewritten from the record on resume so that a crash
 * between saving and appending neither loses nor repeats a line), and naming the
 * first config field in which a resumed run differs from the interrupted one. */
#ifndef DK_RUNLOG_H
#define DK_RUNLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "distill/err.h"

/* Append line as one compact JSON line to path (created if missing), fsync'ed. */
dk_status dk_runlog_append(const char *path, json_t *line, dk_err *err);

/* Replace path by the lines of history (a JSON array), atomically. */
dk_status dk_runlog_rewrite(const char *path, json_t *history, dk_err *err);

/* When saved and now differ, the dotted path of the first differing field of now
 * ("optimizer.lr"; "(the whole config)" when they are not both objects) in out,
 * and true; false when they are equal. */
bool dk_json_first_diff(json_t *saved, json_t *now, char *out, size_t cap);

#endif
