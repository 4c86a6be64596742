/* demo_plan.h: what `dualkd demo` runs: the three sites, the sizes of a default and a
 * --quick run, the student's config, and the three methods compared. The numbers are
 * chosen for the time budget (10 min default, 3 min --quick on 2 cores), never for
 * the result; docs/demo.md gives the reasons. Only cli/ uses it. */
#ifndef DK_CLI_DEMO_PLAN_H
#define DK_CLI_DEMO_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#define DK_DEMO_SITES 3
#define DK_DEMO_METHODS 4 /* the teacher zero-shot, then the three students */

typedef struct dk_demo_site {
    const char *name;     /* "site-a" */
    const char *profile;  /* built-in profile */
    const char *contrast; /* dess, pd-fs, t1 */
    int seed;
} dk_demo_site;

typedef enum dk_demo_method_kind {
    DK_DEMO_TEACHER,
    DK_DEMO_LOCAL,   /* each site alone, supervised only */
    DK_DEMO_FED_SUP, /* FedAvg, supervised only */
    DK_DEMO_FED_KD,  /* FedAvg, dual distillation */
} dk_demo_method_kind;

typedef struct dk_demo_method {
    dk_demo_method_kind kind;
    const char *name;  /* "fedavg-dual": folder and results.json key */
    const char *title; /* "dual-distillation FedAvg" */
} dk_demo_method;

typedef enum dk_demo_size { DK_DEMO_DEFAULT, DK_DEMO_QUICK, DK_DEMO_TINY } dk_demo_size;

typedef struct dk_demo_plan {
    bool quick, tiny;
    int repository;          /* transfer volumes the targets are made from */
    int labelled, unlabelled, validation; /* per site */
    int rounds, local_steps; /* federation; the local run trains rounds x local_steps */
    int passes;              /* noisy teacher passes per target */
    int patch[3];            /* student training patch */
    unsigned seed;
    dk_demo_site sites[DK_DEMO_SITES];
    dk_demo_method methods[DK_DEMO_METHODS];
} dk_demo_plan;

/* The plan of a default, --quick or --tiny run. */
dk_demo_plan dk_demo_plan_make(dk_demo_size size, unsigned seed);

/* The student's config (network, patch, steps, distillation) as JSON text into buf;
 * false when it does not fit. */
bool dk_demo_student_config(const dk_demo_plan *p, char *buf, size_t cap);

#endif
