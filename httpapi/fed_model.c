/* fed_model.c: federated models as named tensors in checkpoints (fed_model.h),
 * and file hashing with OpenSSL's EVP SHA-256. */
#include "httpapi/fed_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/checkpoint.h"
#include "distill/h5file.h"
#include "teacher/sha256.h"

/* A bound on tensors per model: a U-Net has a few dozen; this stops a hostile
 * checkpoint from making us allocate a huge table before anything is read. */
#define MAX_TENSORS 4096
/* ... and on values per model (4 GiB of float32): a shape from a file is checked
 * before anything that multiplies it out is allocated. */
#define MAX_VALUES (1ull << 30)

void dk_fed_model_release(dk_fed_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->count; i++)
        dk_param_release(&m->params[i]);
    free(m->params);
    dk_params_release(&m->list);
    free(m->architecture_json);
    *m = (dk_fed_model){0};
}

size_t dk_fed_model_numel(const dk_fed_model *m)
{
    return dk_params_numel(&m->list);
}

/* Allocate m->params for count tensors and point m->list at them. */
static dk_status alloc_table(dk_fed_model *m, int count, dk_err *err)
{
    m->params = calloc((size_t)count + 1, sizeof *m->params);
    if (!m->params) return dk_err_set(err, DK_ENOMEM, "out of memory for %d tensors", count);
    for (int i = 0; i < count; i++) {
        dk_status st = dk_params_push(&m->list, &m->params[i], err);
        if (st) return st;
    }
    return DK_OK;
}

static dk_status add_tensor(dk_fed_model *m, const char *name, const int dims[5], dk_err *err)
{
    dk_param *p = &m->params[m->count];
    if (strlen(name) >= sizeof p->name)
        return dk_err_set(err, DK_EFORMAT, "tensor name '%.100s' is longer than %zu bytes", name,
                          sizeof p->name - 1);
    snprintf(p->name, sizeof p->name, "%s", name);
    dk_status st = dk_tensor_alloc(&p->value, dims[0], dims[1], dims[2], dims[3], dims[4], err);
    if (st == DK_OK) m->count++;
    return st;
}

/* Names and shapes of /params, allocated (zeroed) in m. */
static dk_status plan_tensors(const char *path, dk_fed_model *m, dk_err *err)
{
    hid_t file, group = H5I_INVALID_HID;
    dk_status st = dk_h5_open_read(path, &file, err);
    if (st) return st;
    char **names = NULL;
    int count = 0;
    st = dk_h5_group_open(file, "params", &group, err);
    if (st == DK_OK) st = dk_h5_group_list(group, &names, &count, err);
    if (st == DK_OK && (count < 1 || count > MAX_TENSORS))
        st = dk_err_set(err, DK_EFORMAT, "'%s' has %d parameter tensors, expected 1..%d", path,
                        count, MAX_TENSORS);
    if (st == DK_OK) st = alloc_table(m, count, err);
    unsigned long long total = 0;
    for (int i = 0; st == DK_OK && i < count; i++) {
        hsize_t dims[DK_H5_MAX_RANK];
        int rank = 0, d5[5];
        st = dk_h5_array_shape(group, names[i], DK_H5_FLOAT32, &rank, dims, err);
        if (st == DK_OK && rank != 5)
            st = dk_err_set(err, DK_EFORMAT, "'%s': parameter '%s' has rank %d, expected 5", path,
                            names[i], rank);
        unsigned long long numel = 1;
        for (int k = 0; st == DK_OK && k < 5; k++) {
            numel = dims[k] > MAX_VALUES ? MAX_VALUES + 1 : numel * dims[k];
            if (numel > MAX_VALUES) numel = MAX_VALUES + 1;
            d5[k] = (int)(dims[k] > MAX_VALUES ? 0 : dims[k]);
        }
        total += numel;
        if (st == DK_OK && total > MAX_VALUES)
            st = dk_err_set(err, DK_ELIMIT, "'%s' holds more than %llu parameter values", path,
                            MAX_VALUES);
        if (st == DK_OK) st = add_tensor(m, names[i], d5, err);
    }
    dk_h5_free_strings(names);
    if (group != H5I_INVALID_HID) H5Gclose(group);
    dk_h5_close_file(file);
    return st;
}

dk_status dk_fed_model_load(const char *path, dk_fed_model *m, dk_err *err)
{
    *m = (dk_fed_model){0};
    dk_status st = dk_checkpoint_read_architecture(path, &m->architecture_json, err);
    if (st == DK_OK) st = plan_tensors(path, m, err);
    if (st == DK_OK) st = dk_checkpoint_load(path, NULL, &m->list, NULL, err);
    if (st != DK_OK) dk_fed_model_release(m);
    return st;
}

dk_status dk_fed_model_zeros_like(const dk_fed_model *like, dk_fed_model *m, dk_err *err)
{
    *m = (dk_fed_model){0};
    m->architecture_json = strdup(like->architecture_json);
    dk_status st = m->architecture_json ? alloc_table(m, like->count, err)
                                        : dk_err_set(err, DK_ENOMEM, "out of memory");
    for (int i = 0; st == DK_OK && i < like->count; i++) {
        const dk_tensor *t = &like->params[i].value;
        int dims[5] = {t->n, t->c, t->d, t->h, t->w};
        st = add_tensor(m, like->params[i].name, dims, err);
    }
    if (st != DK_OK) dk_fed_model_release(m);
    return st;
}

dk_status dk_fed_model_save(const dk_fed_model *m, const char *path, const char *run_record_json,
                            char sha256_hex[65], dk_err *err)
{
    dk_status st =
        dk_checkpoint_save(path, m->architecture_json, &m->list, NULL, run_record_json, err);
    if (st == DK_OK) st = dk_sha256_file(path, sha256_hex, err);
    return st;
}

