/* cmd_student_init.c: `dualkd student init`: a freshly initialised student
 * checkpoint, the starting point every site of a federation downloads (`dualkd fed
 * create --student`). The weights are exactly those `dualkd student train` starts
 * from with the same config, classes and --seed, so a local run and a federation
 * begin at the same point. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/util.h"
#include "datasets/dataset.h"
#include "distill/checkpoint.h"
#include "student/train.h"

static const char usage[] =
    "usage: dualkd student init --config STUDENT.json --data SITE.h5 --out INIT.h5 [--seed S]\n";

static void print_help(void)
{
    printf("%s\n"
           "Writes a freshly initialised student U-Net (the config's \"network\", with the\n"
           "classes of SITE.h5) as a checkpoint: the initial model of a federation\n"
           "(`dualkd fed create --student INIT.h5`). The weights equal those `dualkd student\n"
           "train` starts from with the same config, data and seed.\n\n"
           "  --config FILE  student config JSON with a \"network\" section (docs/student.md)\n"
           "  --data FILE    a dataset whose classes the student predicts\n"
           "  --out FILE     the checkpoint to write\n"
           "  --seed S       initialisation seed (default 1)\n",
           usage);
}

/* The network of the config at path, with in_channels 1 and the classes of data. */
static dk_status network_of(const char *config_path, const char *data, dk_unet_config *n,
                            dk_err *err)
{
    dk_err local = {0};
    char *text = dk_cli_read_text(config_path, "student config", &local);
    if (!text) return dk_err_forward(err, &local);
    dk_student_config c = dk_student_config_default();
    dk_status st = dk_student_config_from_json(text, &c, err);
    free(text);
    if (st) return dk_err_prefix(err, st, "%s", config_path);
    if (!c.network_given)
        return dk_err_set(err, DK_EINVAL, "%s: student config has no \"network\" section",
                          config_path);
    dk_dataset *ds = dk_dataset_open(data, &local);
    if (!ds) return dk_err_forward(err, &local);
    *n = c.base.network;
    n->in_channels = 1;
    n->classes = dk_dataset_classes(ds)->count;
    dk_dataset_close(ds);
    return DK_OK;
}

static dk_status write_init(const dk_unet_config *n, unsigned long long seed, const char *out,
                            dk_err *err)
{
    dk_err local = {0};
    dk_unet *net = dk_unet_create(n, seed, &local);
    if (!net) return dk_err_forward(err, &local);
    char *arch = dk_unet_config_to_json(n);
    dk_status st = arch ? dk_checkpoint_save(out, arch, dk_unet_params(net), NULL, NULL, err)
                        : dk_err_set(err, DK_ENOMEM, "no memory for the architecture");
    free(arch);
    dk_unet_free(net);
    return st;
}

int dk_cmd_student_init(int argc, char **argv)
{
    if (dk_cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    const char *config = NULL, *data = NULL, *out = NULL;
    long long seed = 1;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "dualkd student init: '%s' is unknown or needs a value\n%s", a, usage);
            return 2;
        }
        if (!strcmp(a, "--config")) config = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--seed")) {
            if (!dk_cli_parse_int(v, 0, 1LL << 53, &seed)) {
                fprintf(stderr, "dualkd student init: --seed '%s': expected 0..2^53\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "dualkd student init: unknown option '%s'\n%s", a, usage);
            return 2;
        }
    }
    if (!config || !data || !out) {
        fprintf(stderr, "dualkd student init: --config, --data and --out are required\n%s",
                usage);
        return 2;
    }
    dk_err err = {0};
    dk_unet_config n;
    if (network_of(config, data, &n, &err) ||
        write_init(&n, (unsigned long long)seed, out, &err))
        return dk_cli_fail("student init", err.msg);
    printf("wrote %s: initial student (%d levels, base width %d, %d classes, seed %lld)\n", out,
           n.levels, n.base_width, n.classes, seed);
    return 0;
}
