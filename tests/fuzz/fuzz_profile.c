/* fuzz_profile.c: a site profile from JSON text (datasets/profile.c); a profile
 * that parses must survive to-JSON and back unchanged. */
#include "datasets/profile.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = dk_fuzz_text(data, size);
    dk_profile p, q;
    dk_err err = {0};
    if (dk_profile_from_json_text(text, "fuzz", &p, &err) == DK_OK) {
        char *json = dk_profile_to_json(&p);
        if (!json || dk_profile_from_json_text(json, "round trip", &q, &err) != DK_OK) abort();
        char *again = dk_profile_to_json(&q);
        if (!again || strcmp(json, again) != 0) abort(); /* the round trip changed it */
        free(json);
        free(again);
    }
    free(text);
    return 0;
}
