/* fed_local.c: a federated round's arrays (fed_local.h): the global's .npz into
 * the network, the delta into an .npz, and the site state checkpoint. */
#include "student/fed_local.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/npz.h"
#include "distill/checkpoint.h"
#include "distill/half.h"

#define STATE_KIND "dualkd-fed-site"

static const dk_npz_entry *find(const dk_npz *z, const char *name)
{
    for (int i = 0; i < z->count; i++)
        if (!strcmp(z->entries[i].name, name)) return &z->entries[i];
    return NULL;
}

static dk_status check_entry(const dk_npz_entry *e, const dk_param *p, dk_err *err)
{
    const dk_tensor *t = &p->value;
    const size_t want[5] = {(size_t)t->n, (size_t)t->c, (size_t)t->d, (size_t)t->h, (size_t)t->w};
    const dk_npy_array *a = &e->array;
    if (a->dtype != DK_NPY_F2 && a->dtype != DK_NPY_F4)
        return dk_err_set(err, DK_EFORMAT, "global array '%s' is %s, not float16 or float32",
                          e->name, dk_npy_dtype_name(a->dtype));
    bool same = a->rank == 5;
    for (int k = 0; same && k < 5; k++)
        same = a->shape[k] == want[k];
    if (!same)
        return dk_err_set(err, DK_EMISMATCH, "global array '%s' is not shaped (%zu, %zu, %zu, "
                          "%zu, %zu) as this site's network", e->name, want[0], want[1], want[2],
                          want[3], want[4]);
    return DK_OK;
}

dk_status dk_fed_local_load_global(const void *buf, size_t len, const dk_params *unet,
                                   dk_err *err)
{
    dk_npz z;
    size_t bound = dk_params_numel(unet) * sizeof(float);
    dk_status st = dk_npz_decode(buf, len, bound, &z, err);
    if (st) return dk_err_prefix(err, st, "the global is not a usable .npz");
    if (z.count != unet->count)
        st = dk_err_set(err, DK_EMISMATCH, "the global holds %d arrays; this site's network has "
                        "%d parameters", z.count, unet->count);
    for (int i = 0; !st && i < unet->count; i++) {
        const dk_npz_entry *e = find(&z, unet->items[i]->name);
        st = e ? check_entry(e, unet->items[i], err)
               : dk_err_set(err, DK_EMISMATCH, "the global has no array '%s'",
                            unet->items[i]->name);
    }
    for (int i = 0; !st && i < unet->count; i++) {
        const dk_npy_array *a = &find(&z, unet->items[i]->name)->array;
        float *v = unet->items[i]->value.data;
        for (size_t k = 0; k < a->numel; k++)
            v[k] = a->dtype == DK_NPY_F4 ? ((const float *)a->data)[k]
                                         : dk_half_to_float(((const uint16_t *)a->data)[k]);
    }
    dk_npz_free(&z);
    return st;
}

dk_status dk_fed_snapshot_take(const dk_params *unet, dk_fed_snapshot *s, dk_err *err)
{
    s->count = dk_params_numel(unet);
    s->values = malloc((s->count ? s->count : 1) * sizeof(float));
    if (!s->values) return dk_err_set(err, DK_ENOMEM, "no memory for the global's copy");
    size_t at = 0;
    for (int i = 0; i < unet->count; i++) {
        size_t n = dk_tensor_numel(&unet->items[i]->value);
        memcpy(s->values + at, unet->items[i]->value.data, n * sizeof(float));
        at += n;
    }
    return DK_OK;
}

void dk_fed_snapshot_release(dk_fed_snapshot *s)
{
    free(s->values);
    memset(s, 0, sizeof *s);
}

dk_status dk_fed_local_delta(const dk_params *unet, const dk_fed_snapshot *base, bool half,
                             dk_npz_compression how, void **out, size_t *len, dk_err *err)
{
    dk_npz_entry *e = calloc((size_t)unet->count + 1, sizeof *e);
    dk_status st = e ? DK_OK : dk_err_set(err, DK_ENOMEM, "no memory for the update");
    size_t at = 0, esize = half ? 2 : 4;
    for (int i = 0; !st && i < unet->count; i++) {
        const dk_tensor *t = &unet->items[i]->value;
        size_t n = dk_tensor_numel(t);
        void *d = malloc(n * esize);
        if (!d) {
            st = dk_err_set(err, DK_ENOMEM, "no memory for the update");
            break;
        }
        for (size_t k = 0; k < n; k++) {
            float delta = t->data[k] - base->values[at + k];
            if (half) ((uint16_t *)d)[k] = dk_half_from_float(delta);
            else ((float *)d)[k] = delta;
        }
        at += n;
        snprintf(e[i].name, sizeof e[i].name, "%s", unet->items[i]->name);
        e[i].array = (dk_npy_array){.dtype = half ? DK_NPY_F2 : DK_NPY_F4, .rank = 5, .numel = n,
                                    .data = d, .shape = {(size_t)t->n, (size_t)t->c, (size_t)t->d,
                                                         (size_t)t->h, (size_t)t->w}};
    }
    if (!st) st = dk_npz_encode(e, unet->count, how, out, len, err);
    for (int i = 0; e && i < unet->count; i++)
        free(e[i].array.data);
    free(e);
    return st;
}

dk_status dk_fed_state_save(const char *path, const char *architecture_json,
                            const dk_params *adapter, const dk_fed_site_state *s, dk_err *err)
{
    json_t *rec = json_pack("{s:s, s:i, s:s, s:I, s:i}", "kind", STATE_KIND, "version", 1,
                            "federation", s->federation, "created_at", (json_int_t)s->created_at,
                            "next_round", s->next_round);
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (!text) return dk_err_set(err, DK_ENOMEM, "no memory for the site state");
    dk_status st = dk_checkpoint_save(path, architecture_json, adapter, NULL, text, err);
    free(text);
    return st;
}

dk_status dk_fed_state_load_adapter(const char *path, const dk_params *adapter, dk_err *err)
{
    return dk_checkpoint_load(path, NULL, adapter, NULL, err);
}

dk_status dk_fed_state_read(const char *path, dk_fed_site_state *s, dk_err *err)
{
    if (access(path, F_OK) != 0)
        return dk_err_set(err, DK_ENOTFOUND, "there is no site state '%s'", path);
    char *text = NULL;
    dk_status st = dk_checkpoint_read_run_record(path, &text, err);
    json_t *rec = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    const char *kind = NULL, *fed = NULL;
    json_int_t created = 0;
    int next = 0;
    if (!st && (!rec || json_unpack(rec, "{s:s, s:s, s:I, s:i}", "kind", &kind, "federation",
                                    &fed, "created_at", &created, "next_round", &next) != 0 ||
                strcmp(kind, STATE_KIND) != 0 || next < 0))
        st = dk_err_set(err, DK_EFORMAT, "'%s' is not a federated site's state", path);
    if (!st) {
        snprintf(s->federation, sizeof s->federation, "%s", fed);
        s->created_at = created, s->next_round = next;
    }
    json_decref(rec);
    return st;
}
