/* demo.h: the state `dualkd demo` carries between its stages (cmd_demo.c runs them,
 * demo_sites.c runs the students and the evaluations, demo_results.c reads what they
 * wrote into results.json and the table). Only cli/ uses it. */
#ifndef DK_CLI_DEMO_H
#define DK_CLI_DEMO_H

#include <limits.h>

#include "cli/child.h"
#include "cli/demo_plan.h"

#define DK_DEMO_PATH 1024

typedef struct dk_demo {
    dk_demo_plan plan;
    const char *out;     /* the run folder */
    const char *teacher_given;
    bool keep_server;
    double started;      /* dk_clock_seconds() */
    int stage, stages;
    double planned_total, planned_done; /* seconds of the cost model (ETA) */
    char teacher[DK_DEMO_PATH], repo[DK_DEMO_PATH], store[DK_DEMO_PATH];
    char tokens[DK_DEMO_PATH], operator_token[DK_DEMO_PATH], fed_dir[DK_DEMO_PATH];
    char config[DK_DEMO_PATH], network[DK_DEMO_PATH], init[DK_DEMO_PATH];
    char site_data[DK_DEMO_SITES][DK_DEMO_PATH];
    char site_token_env[DK_DEMO_SITES][128]; /* "DUALKD_TOKEN=dk_..." */
    dk_child server;
    char url[64];
    double method_seconds[DK_DEMO_METHODS];
    long parameters; /* the student's */
} dk_demo;

/* "<out>/<rel>" into buf (DK_DEMO_PATH). */
const char *dk_demo_path(const dk_demo *d, char *buf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Train method m (not the teacher) at every site: the local runs, or a federation on
 * the running server with one site process each. */
dk_status dk_demo_train(dk_demo *d, int m, dk_err *err);

/* `dualkd eval --json --export` of method m at every site (the teacher zero-shot). */
dk_status dk_demo_evaluate(dk_demo *d, int m, dk_err *err);

/* results.json from the evaluations and run logs, then the report folder; prints the
 * table. */
dk_status dk_demo_results(dk_demo *d, dk_err *err);

#endif
