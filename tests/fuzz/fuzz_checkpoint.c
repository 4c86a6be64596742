/* fuzz_checkpoint.c: loading a checkpoint (distill/checkpoint.c): its
 * architecture and run record, and its parameters and optimiser state into the
 * small model the seed checkpoints were saved from (tests/fuzz/make_seeds.c). */
/* libFuzzer's per-input leak check would rescan the heap after each of libhdf5's
 * own error-path leaks; leaks are still checked when the run ends. */
/* fuzz-options: -detect_leaks=0 */
#include "distill/checkpoint.h"
#include "fuzz_hdf5.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dk_param p[2];
    static dk_params params;
    static dk_optimizer opt;
    static int ready;
    dk_err err = {0};
    if (!ready) { /* the model of make_seeds.c, built once */
        dk_optim_config oc = dk_optim_defaults(DK_OPTIM_ADAM, 1e-3f);
        if (dk_param_init(&p[0], "conv.weight", 2, 1, 3, 3, 3, &err) ||
            dk_param_init(&p[1], "conv.bias", 1, 2, 1, 1, 1, &err) ||
            dk_params_push(&params, &p[0], &err) || dk_params_push(&params, &p[1], &err) ||
            dk_optim_init(&opt, &oc, &params, &err))
            abort();
        ready = 1;
    }
    const char *path = dk_fuzz_file(data, size, ".h5");
    long ids = dk_fuzz_h5_open_ids();
    char *text = NULL;
    if (dk_checkpoint_read_architecture(path, &text, &err) == DK_OK) free(text);
    text = NULL;
    if (dk_checkpoint_read_run_record(path, &text, &err) == DK_OK) free(text);
    bool has_opt = false;
    dk_checkpoint_has_optimizer(path, &has_opt, &err);
    dk_checkpoint_load(path, NULL, &params, has_opt ? &opt : NULL, &err);
    dk_fuzz_h5_check_ids(ids);
    return 0;
}
