/* cmd_data_synth.c: `dualkd data synth` (a synthetic knee dataset at a profile, with a
 * deterministic few-shot split) and `dualkd data show` (one slice of a dataset volume
 * as a PNG with its labels overlaid). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "datasets/dataset.h"
#include "datasets/show.h"
#include "datasets/splits.h"
#include "datasets/synth_knee.h"
#include "distill/clock.h"

#define MAX_SYNTH_VOLUMES 100000

static int usage_error(const char *cmd, const char *fmt, const char *value)
{
    fprintf(stderr, "dualkd data %s: ", cmd);
    fprintf(stderr, fmt, value);
    fprintf(stderr, "\nRun `dualkd data %s --help` for the options.\n", cmd);
    return 2;
}

typedef struct synth_args {
    const char *profile, *contrast, *out, *prefix;
    long long n, labelled, unlabelled, validation, seed;
    int quiet;
    dk_knee_class_set classes;
} synth_args;

static void synth_help(void)
{
    printf("usage: dualkd data synth [--profile NAME|FILE] [--contrast dess|pd-fs|t1]\n"
           "                         (--n N | --labelled L [--unlabelled U])\n"
           "                         [--validation V] [--seed S] [--prefix ID]\n"
           "                         [--classes oai-zib|cartilage|anatomy] [--quiet]\n"
           "                         --out FILE.h5\n\n"
           "Writes synthetic knee MR volumes (docs/synthetic-knee.md) acquired at a site\n"
           "profile (a built-in name or a JSON file; default repository) to an HDF5 dataset.\n"
           "Osteoarthritis grades follow the profile's KL grade mix (oa_grades).\n\n"
           "  --n N           N labelled volumes: V of them split 'validation' (default 20%%),\n"
           "                  the rest 'train' (a repository)\n"
           "  --labelled L    a few-shot site: L 'labelled', U 'unlabelled' (stored without\n"
           "                  labels) and V 'validation' (default 0) volumes\n"
           "  --contrast C    override the profile's contrast\n"
           "  --seed S        anatomy, noise and split all follow from S (default 1): the\n"
           "                  same arguments write the same volumes\n"
           "  --prefix ID     volume ids are ID-0000, ID-0001, ... (default knee)\n"
           "  --classes SET   what the labels segment (the dataset's classes attribute):\n"
           "                  oai-zib (default): background, femur, femoral_cartilage, tibia,\n"
           "                  tibial_cartilage (the patella and its cartilage: background);\n"
           "                  cartilage: background, femoral_cartilage, tibial_cartilage,\n"
           "                  patellar_cartilage (the bones: background);\n"
           "                  anatomy: the OAI-ZIB five, patella, patellar_cartilage\n"
           "Progress goes to stderr, one line per volume, unless --quiet.\n");
}

static int parse_synth(int argc, char **argv, synth_args *a)
{
    *a = (synth_args){.profile = "repository", .prefix = "knee", .n = -1, .labelled = -1,
                      .unlabelled = -1, .validation = -1, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--quiet") == 0 || strcmp(opt, "-q") == 0) {
            a->quiet = 1;
            continue;
        }
        if (i + 1 >= argc) return usage_error("synth", "option '%s' needs a value", opt);
        const char *val = argv[++i];
        long long *num = strcmp(opt, "--n") == 0            ? &a->n
                         : strcmp(opt, "--labelled") == 0   ? &a->labelled
                         : strcmp(opt, "--unlabelled") == 0 ? &a->unlabelled
                         : strcmp(opt, "--validation") == 0 ? &a->validation
                                                            : NULL;
        if (num) {
            if (!dk_cli_parse_int(val, 0, MAX_SYNTH_VOLUMES, num))
                return usage_error("synth", "a count must be a whole number 0..100000, not '%s'",
                                   val);
        } else if (strcmp(opt, "--seed") == 0) {
            if (!dk_cli_parse_int(val, 0, INT64_MAX, &a->seed))
                return usage_error("synth", "--seed must be a whole number >= 0, not '%s'", val);
        } else if (strcmp(opt, "--profile") == 0) {
            a->profile = val;
        } else if (strcmp(opt, "--contrast") == 0) {
            a->contrast = val;
        } else if (strcmp(opt, "--out") == 0) {
            a->out = val;
        } else if (strcmp(opt, "--prefix") == 0) {
            a->prefix = val;
        } else if (strcmp(opt, "--classes") == 0) {
            if (!dk_knee_class_set_parse(val, &a->classes))
                return usage_error("synth",
                                   "unknown --classes '%s' (expected oai-zib, cartilage or "
                                   "anatomy)",
                                   val);
        } else {
            return usage_error("synth", "unknown option '%s'", opt);
        }
    }
    if (!a->out) return usage_error("synth", "%s", "--out FILE is required");
    if ((a->n >= 0) == (a->labelled >= 0))
        return usage_error("synth", "%s", "give either --n or --labelled (not both)");
    if (a->n >= 0 && a->unlabelled >= 0)
        return usage_error("synth", "%s", "--unlabelled goes with --labelled, not --n");
    if (a->contrast && !dk_profile_contrast_known(a->contrast))
        return usage_error("synth", "unknown contrast '%s' (expected dess, pd-fs or t1)",
                           a->contrast);
    char probe[64];
    if (snprintf(probe, sizeof probe, "%s-0000", a->prefix) >= (int)sizeof probe - 8 ||
        !dk_volume_id_valid(probe))
        return usage_error("synth", "--prefix '%s' must be a short id of letters, digits, . _ -",
                           a->prefix);
    return 0;
}

/* The plan from the counts; 0 or a usage error status. */
static int synth_plan(const synth_args *a, dk_split_plan *plan, int *total)
{
    *plan = (dk_split_plan){0};
    if (a->n >= 0) {
        plan->validation = a->validation >= 0 ? (int)a->validation : dk_split_default_validation((int)a->n);
        if (plan->validation > a->n)
            return usage_error("synth", "%s", "--validation exceeds --n");
        plan->train = (int)a->n - plan->validation;
    } else {
        plan->labelled = (int)a->labelled;
        plan->unlabelled = a->unlabelled >= 0 ? (int)a->unlabelled : 0;
        plan->validation = a->validation >= 0 ? (int)a->validation : 0;
    }
    *total = plan->train + plan->labelled + plan->unlabelled + plan->validation;
    if (*total < 1) return usage_error("synth", "%s", "nothing to write: every count is 0");
    if (*total > MAX_SYNTH_VOLUMES)
        return usage_error("synth", "%s", "more than 100000 volumes in total");
    return 0;
}

static int write_volumes(const synth_args *a, const dk_profile *profile, int total,
                         const dk_split_role *roles)
{
    dk_err err = {0};
    dk_classes classes;
    dk_knee_class_set_names(a->classes, &classes);
    dk_dataset_writer *w = dk_dataset_writer_open(a->out, &classes, &err);
    if (!w) return dk_cli_fail("data synth", err.msg);
    for (int i = 0; i < total; i++) {
        double t0 = dk_clock_seconds();
        char id[64];
        snprintf(id, sizeof id, "%s-%04d", a->prefix, i);
        dk_knee_subject subject;
        dk_knee_subject_draw_mix((uint64_t)a->seed, (uint64_t)i, profile->oa_grades, &subject);
        subject.classes = a->classes;
        dk_volume v;
        bool with_label = roles[i] != DK_SPLIT_UNLABELLED;
        dk_status st = dk_knee_synth(&subject, profile, a->contrast, with_label, id, &v, &err);
        if (!st) {
            snprintf(v.split, sizeof v.split, "%s", dk_split_role_name(roles[i]));
            st = dk_dataset_writer_add(w, &v, &err);
            if (!a->quiet && !st)
                fprintf(stderr, "[%d/%d] %s %-10s %d x %d x %d  %.2f s\n", i + 1, total, id,
                        v.split, v.dims[0], v.dims[1], v.dims[2], dk_clock_seconds() - t0);
            dk_volume_release(&v);
        }
        if (st) {
            dk_dataset_writer_abort(w);
            return dk_cli_fail("data synth", err.msg);
        }
    }
    if (dk_dataset_writer_commit(w, &err)) return dk_cli_fail("data synth", err.msg);
    return 0;
}

int dk_cmd_data_synth(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        synth_help();
        return 0;
    }
    synth_args a;
    int rc = parse_synth(argc, argv, &a);
    if (rc) return rc;
    dk_split_plan plan;
    int total;
    if ((rc = synth_plan(&a, &plan, &total))) return rc;
    dk_err err = {0};
    dk_profile profile;
    if (dk_profile_load(a.profile, &profile, &err)) {
        fprintf(stderr, "dualkd data synth: %s\n", err.msg);
        return 2;
    }
    dk_split_role *roles = malloc(sizeof *roles * (size_t)total);
    if (!roles) return dk_cli_fail("data synth", "out of memory");
    if (dk_split_assign(total, &plan, (uint64_t)a.seed, roles, &err)) {
        free(roles);
        return dk_cli_fail("data synth", err.msg);
    }
    rc = write_volumes(&a, &profile, total, roles);
    free(roles);
    if (!rc && !a.quiet)
        fprintf(stderr, "wrote %s: %d volumes at profile %s (%s)\n", a.out, total, profile.name,
                a.contrast ? a.contrast : profile.contrast);
    return rc;
}

/* ---- data show ---- */

static void show_help(void)
{
    printf("usage: dualkd data show FILE [--volume ID] [--axis z|y|x] [--slice K]\n"
           "                        [--alpha A] [--no-labels] --out PICTURE.png\n\n"
           "Draws one slice of a dataset volume (default: the first volume, the middle slice\n"
           "along z) as a PNG: grey values windowed to the volume's 1st-99th percentiles,\n"
           "labels blended over it in a fixed palette (opacity A, default 0.4), enlarged so\n"
           "that voxels keep their physical aspect ratio. Rows and columns: axis z -> (y, x),\n"
           "y -> (z, x), x -> (y, z); for the synthetic knee: sagittal, axial, coronal.\n");
}

typedef struct show_args {
    const char *file, *volume, *out;
    dk_show_options opt;
} show_args;

static int parse_show(int argc, char **argv, show_args *a)
{
    *a = (show_args){0};
    dk_show_defaults(&a->opt);
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (opt[0] != '-') {
            if (a->file) return usage_error("show", "unexpected argument '%s'", opt);
            a->file = opt;
            continue;
        }
        if (strcmp(opt, "--no-labels") == 0) {
            a->opt.alpha = 0;
            continue;
        }
        if (i + 1 >= argc) return usage_error("show", "option '%s' needs a value", opt);
        const char *val = argv[++i];
        long long n;
        if (strcmp(opt, "--volume") == 0) {
            a->volume = val;
        } else if (strcmp(opt, "--out") == 0) {
            a->out = val;
        } else if (strcmp(opt, "--axis") == 0) {
            const char *p = strchr("zyx", val[0]);
            if (!val[0] || val[1] || !p)
                return usage_error("show", "--axis must be z, y or x, not '%s'", val);
            a->opt.axis = (int)(p - "zyx");
        } else if (strcmp(opt, "--slice") == 0) {
            if (!dk_cli_parse_int(val, 0, 1 << 30, &n))
                return usage_error("show", "--slice must be a whole number >= 0, not '%s'", val);
            a->opt.slice = (int)n;
        } else if (strcmp(opt, "--alpha") == 0) {
            double v;
            if (!dk_cli_parse_double(val, 0, 1, &v))
                return usage_error("show", "--alpha must be a number in [0, 1], not '%s'", val);
            a->opt.alpha = (float)v;
        } else {
            return usage_error("show", "unknown option '%s'", opt);
        }
    }
    if (!a->file) return usage_error("show", "%s", "which dataset FILE?");
    if (!a->out) return usage_error("show", "%s", "--out PICTURE.png is required");
    return 0;
}

int dk_cmd_data_show(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        show_help();
        return 0;
    }
    show_args a;
    int rc = parse_show(argc, argv, &a);
    if (rc) return rc;
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(a.file, &err);
    if (!ds) return dk_cli_fail("data show", err.msg);
    int index = a.volume ? dk_dataset_find(ds, a.volume) : 0;
    if (index < 0 || index >= dk_dataset_count(ds)) {
        fprintf(stderr, "dualkd data show: '%s' has no volume '%s'\n", a.file,
                a.volume ? a.volume : "(any)");
        dk_dataset_close(ds);
        return 1;
    }
    dk_volume v;
    dk_status st = dk_dataset_read(ds, index, &v, &err);
    dk_dataset_close(ds);
    if (st) return dk_cli_fail("data show", err.msg);
    st = dk_show_png(&v, &a.opt, a.out, &err);
    int slice = a.opt.slice < 0 ? v.dims[a.opt.axis] / 2 : a.opt.slice;
    if (!st)
        printf("wrote %s: volume %s, axis %c, slice %d of %d\n", a.out, v.id, "zyx"[a.opt.axis],
               slice, v.dims[a.opt.axis]);
    dk_volume_release(&v);
    return st ? dk_cli_fail("data show", err.msg) : 0;
}
