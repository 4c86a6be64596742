/* fuzz_teacher_config.c: a teacher training config from JSON text
 * (teacher/train_config.c); a config that parses must survive to-JSON and back
 * unchanged. */
#include "fuzz_input.h"
#include "teacher/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = dk_fuzz_text(data, size);
    dk_teacher_config c, d;
    dk_err err = {0};
    if (dk_teacher_config_from_json(text, &c, &err) == DK_OK) {
        char *json = dk_teacher_config_to_json(&c);
        if (!json || dk_teacher_config_from_json(json, &d, &err) != DK_OK) abort();
        char *again = dk_teacher_config_to_json(&d);
        if (!again || strcmp(json, again) != 0) abort(); /* the round trip changed it */
        free(json);
        free(again);
    }
    free(text);
    return 0;
}
