/* fed_store.c: the backend-independent pieces of fed_store.h (names, states). */
#include "httpapi/fed_store.h"

#include <stdlib.h>
#include <string.h>

void dk_fed_info_release(dk_fed_info *info)
{
    if (!info) return;
    free(info->architecture_json);
    info->architecture_json = NULL;
}

bool dk_fed_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > DK_FED_NAME_MAX) return false;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

const char *dk_fed_round_state_name(dk_fed_round_state state)
{
    switch (state) {
    case DK_ROUND_OPEN:
        return "open";
    case DK_ROUND_AGGREGATING:
        return "aggregating";
    case DK_ROUND_CLOSED:
        return "closed";
    }
    return "unknown";
}
