/* cmd_teacher_precompute.c: `dualkd teacher precompute` (the frozen teacher's
 * targets for one site profile into the target store) and `dualkd teacher
 * verify` (check a store's manifest, shapes and checksums). The work is in
 * teacher/precompute.c and teacher/store.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "distill/blas.h"
#include "teacher/precompute.h"
#include "teacher/precompute_run.h"
#include "teacher/store.h"

static const char usage[] =
    "usage: dualkd teacher precompute --teacher TEACHER.h5 --data REPO.h5 --profile "
    "NAME|FILE.json\n"
    "                                 --out STORE_DIR [--student STUDENT.json]\n"
    "                                 [--feature-layers bottleneck[,decK]] [--temperature T]\n"
    "                                 [--passes N] [--input-noise S] [--seed S] [--resume]\n"
    "                                 [--threads N]\n";

static void print_help(void)
{
    printf(
        "%s\n"
        "Runs the frozen teacher on every volume of the repository dataset at its own\n"
        "training grid (N passes with small input noise) and writes, for the profile, the\n"
        "input as the site would acquire it, the mean temperature-softened class\n"
        "probabilities (float16), the per-voxel uncertainty (entropy, nats), and the\n"
        "feature targets on the student's tap grids to STORE_DIR/<profile>.h5\n"
        "(docs/store.md). Progress is kept in STORE_DIR/<profile>.h5.partial/ so that\n"
        "--resume continues an interrupted run with identical results.\n\n"
        "  --teacher FILE        teacher checkpoint (`dualkd teacher train`)\n"
        "  --data FILE           repository dataset\n"
        "  --profile P           built-in profile name or profile JSON file\n"
        "  --out DIR             store directory (created if missing)\n"
        "  --student FILE        student U-Net config JSON (default: the profile's \"student\",\n"
        "                        \"\" = the teacher's architecture)\n"
        "  --feature-layers L    comma-separated taps (default bottleneck)\n"
        "  --temperature T       softmax temperature of the response targets (default 2)\n"
        "  --passes N            noisy teacher passes averaged (default 8)\n"
        "  --input-noise S       sd of the input noise, z-scored units (default 0.1)\n"
        "  --seed S              noise seed (default 1)\n"
        "  --resume              continue an interrupted run\n"
        "  --threads N           BLAS threads (default 2; a resume needs the same count)\n",
        usage);
}

static void on_progress(const dk_precompute_progress *p, void *ctx)
{
    (void)ctx;
    if (p->resumed)
        fprintf(stderr, "sample %d/%d %s: kept from the interrupted run\n", p->done, p->total,
                p->id);
    else
        fprintf(stderr, "sample %d/%d %s: %.1f s\n", p->done, p->total, p->id, p->seconds);
    fflush(stderr);
}

/* 0, or 2 (a usage error, printed) when text is not a number in [lo, hi]. */
static int number_arg(const char *flag, const char *text, double lo, double hi, double *out)
{
    if (dk_cli_parse_double(text, lo, hi, out)) return 0;
    fprintf(stderr, "dualkd: teacher precompute: %s '%s': expected a number in [%g, %g]\n%s", flag, text, lo, hi,
            usage);
    return 2;
}

static int integer_arg(const char *flag, const char *text, long long lo, long long hi,
                       long long *out)
{
    if (dk_cli_parse_int(text, lo, hi, out)) return 0;
    fprintf(stderr, "dualkd: teacher precompute: %s '%s': expected a whole number in %lld..%lld\n%s", flag, text, lo,
            hi, usage);
    return 2;
}

typedef struct cli_args {
    const char *profile, *student;
    long long threads;
} cli_args;

/* Fill o and a from argv; returns 0, or the exit status for a usage error. */
static int parse_args(int argc, char **argv, dk_precompute_options *o, cli_args *a)
{
    dk_err err = {0};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long num = 0;
        int rc = 0;
        if (!strcmp(f, "--resume")) {
            o->resume = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "dualkd: teacher precompute: unknown option or missing value: '%s'\n%s",
                    f, usage);
            return 2;
        }
        i++;
        if (!strcmp(f, "--teacher"))
            o->teacher_path = v;
        else if (!strcmp(f, "--data"))
            o->data_path = v;
        else if (!strcmp(f, "--out"))
            o->out_dir = v;
        else if (!strcmp(f, "--profile"))
            a->profile = v;
        else if (!strcmp(f, "--student"))
            a->student = v;
        else if (!strcmp(f, "--feature-layers")) {
            if (dk_precompute_parse_layers(v, o, &err)) {
                fprintf(stderr, "dualkd: teacher precompute: %s\n%s", err.msg, usage);
                return 2;
            }
        } else if (!strcmp(f, "--temperature"))
            rc = number_arg(f, v, 1e-3, 100, &o->temperature);
        else if (!strcmp(f, "--input-noise"))
            rc = number_arg(f, v, 0, 10, &o->input_noise);
        else if (!strcmp(f, "--passes")) {
            if (!(rc = integer_arg(f, v, 1, 1000, &num))) o->passes = (int)num;
        } else if (!strcmp(f, "--seed")) {
            if (!(rc = integer_arg(f, v, 0, 1LL << 53, &num))) o->seed = (uint64_t)num;
        } else if (!strcmp(f, "--threads"))
            rc = integer_arg(f, v, 1, 256, &a->threads);
        else {
            fprintf(stderr, "dualkd: teacher precompute: unknown option '%s'\n%s", f, usage);
            return 2;
        }
        if (rc) return rc;
    }
    if (!o->teacher_path || !o->data_path || !o->out_dir || !a->profile) {
        fprintf(
            stderr,
            "dualkd: teacher precompute: --teacher, --data, --profile and --out are required\n%s",
            usage);
        return 2;
    }
    return 0;
}

int dk_cmd_teacher_precompute(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    dk_precompute_options o = dk_precompute_options_default();
    cli_args a = {.threads = 2};
    int rc = parse_args(argc, argv, &o, &a);
    if (rc) return rc;
    dk_err err = {0};
    if (dk_profile_load(a.profile, &o.profile, &err)) return dk_cli_fail("teacher precompute: --profile", err.msg);
    char *student = a.student ? dk_cli_read_text(a.student, "student config", &err) : NULL;
    if (a.student && !student) return dk_cli_fail("teacher precompute", err.msg);
    o.student_json = student;
    o.progress = on_progress;
    dk_blas_set_threads((int)a.threads);
    dk_precompute_result res;
    dk_status st = dk_precompute_run(&o, &res, &err);
    free(student);
    if (st) return dk_cli_fail("teacher precompute", err.msg);
    struct stat sb;
    double mb = stat(res.store_path, &sb) == 0 ? sb.st_size / 1e6 : 0;
    fprintf(stderr, "wrote %s: %d samples (%d computed, %d kept), %.1f MB, %.3f volumes/s\n",
            res.store_path, res.samples, res.computed, res.resumed, mb,
            res.seconds > 0 ? res.computed / res.seconds : 0.0);
    return 0;
}

int dk_cmd_teacher_verify(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        printf("usage: dualkd teacher verify STORE.h5\n\n"
               "Checks a target store's manifest, array shapes and every array's SHA-256;\n"
               "names the first bad sample. Exit 0: good, 1: bad store, 2: usage error.\n");
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: dualkd teacher verify STORE.h5\n");
        return 2;
    }
    dk_err err = {0};
    int good = 0;
    if (dk_store_verify(argv[1], &good, &err)) {
        fprintf(stderr, "dualkd: teacher verify: BAD STORE: %s\n", err.msg);
        return 1;
    }
    printf("%s: good (%d samples, all checksums match)\n", argv[1], good);
    return 0;
}
