/* student_train.h: what `dualkd student train` (cmd_student_train.c) and its
 * federated mode (cmd_student_federate.c) share: the parsed options and the
 * opening of the target sources. */
#ifndef DK_CLI_STUDENT_TRAIN_H
#define DK_CLI_STUDENT_TRAIN_H

#include <stdbool.h>

#include "student/train.h"

typedef struct options {
    const char *store, *site_targets, *data, *out, *config;
    const char *server, *token, *profile, *cache;
    const char *federate; /* the federation's name, or NULL */
    bool supervised_only, no_response, no_feature, resume, print_config, seed_given;
    bool update_f4, global_f4;
    bool update_stored; /* --update-compress none */
    long threads, local_steps;
    unsigned long long seed;
} options;

/* The store (or the targets pulled from --server for --profile), joined with the
 * site's own targets when given; *use NULL when no term needs them. Closes what
 * it opened on failure; prints and returns 1 then. */
int dk_student_open_sources(const options *o, dk_target_source src[3], dk_target_source **use);

/* The --federate arguments: 0, or 2 after printing what is missing. */
int dk_student_federate_check(const options *o);
/* Run the site (student/fed_site.h); an exit status. */
int dk_student_federate(const options *o, const dk_student_config *cfg);

#endif
