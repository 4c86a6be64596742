/* param.c: parameter tensors and lists of them. */
#include "distill/param.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dk_status dk_param_init(dk_param *p, const char *name, int n, int c, int d, int h, int w,
                        dk_err *err)
{
    *p = (dk_param){0};
    if (strlen(name) >= sizeof p->name)
        return dk_err_set(err, DK_EINVAL, "parameter name '%s' is longer than %zu bytes", name,
                          sizeof p->name - 1);
    snprintf(p->name, sizeof p->name, "%s", name);
    dk_status st = dk_tensor_alloc(&p->value, n, c, d, h, w, err);
    if (st) return st;
    if ((st = dk_tensor_alloc(&p->grad, n, c, d, h, w, err))) {
        dk_tensor_release(&p->value);
        return st;
    }
    return DK_OK;
}

void dk_param_release(dk_param *p)
{
    dk_tensor_release(&p->value);
    dk_tensor_release(&p->grad);
}

dk_status dk_params_push(dk_params *list, dk_param *p, dk_err *err)
{
    if (list->count == list->capacity) {
        int cap = list->capacity ? list->capacity * 2 : 16;
        dk_param **items = realloc(list->items, sizeof *items * cap);
        if (!items) return dk_err_set(err, DK_ENOMEM, "cannot grow the parameter list");
        list->items = items;
        list->capacity = cap;
    }
    list->items[list->count++] = p;
    return DK_OK;
}

void dk_params_release(dk_params *list)
{
    free(list->items);
    *list = (dk_params){0};
}

void dk_params_zero_grad(const dk_params *list)
{
    for (int i = 0; i < list->count; i++) dk_tensor_zero(&list->items[i]->grad);
}

size_t dk_params_numel(const dk_params *list)
{
    size_t total = 0;
    for (int i = 0; i < list->count; i++) total += dk_tensor_numel(&list->items[i]->value);
    return total;
}

dk_param *dk_params_find(const dk_params *list, const char *name)
{
    for (int i = 0; i < list->count; i++)
        if (strcmp(list->items[i]->name, name) == 0) return list->items[i];
    return NULL;
}
