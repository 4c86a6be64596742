/* fuzz_results.c: the demo's results.json (report/results.c), read from a file as
 * `dualkd report` reads it. The seeds name paths that exist on every machine
 * (/dev/null as the dataset, / as the predictions), so inputs near them reach the
 * checks past the paths. */
#include "fuzz_input.h"
#include "report/results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dk_err err = {0};
    dk_results *r = dk_results_read(dk_fuzz_file(data, size, ".json"), &err);
    if (!r && err.code == DK_OK) abort(); /* a failure must say why */
    dk_results_free(r);
    return 0;
}
