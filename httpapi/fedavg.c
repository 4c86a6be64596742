/* fedavg.c: update validation, the norm rule and the labelled-volume-weighted
 * average (fedavg.h). */
#include "httpapi/fedavg.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/half.h"

static int find_param(const dk_fed_model *m, const char *name)
{
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->params[i].name, name) == 0) return i;
    return -1;
}

static const char *wire_shape(const dk_fed_wire_tensor *t, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (int k = 0; k < t->rank && used < cap; k++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", k ? ", " : "",
                                 (long long)t->dims[k]);
    if (used < cap) snprintf(buf + used, cap - used, ")");
    return buf;
}

/* Names and shapes only: every tensor is a student parameter, once, shaped like it. */
static dk_status check_names(const dk_fed_model *global, const dk_fed_wire_tensor *tensors,
                             int count, int *which, dk_err *err)
{
    char got[160], want[160];
    bool *seen = calloc((size_t)global->count + 1, sizeof *seen);
    if (!seen) return dk_err_set(err, DK_ENOMEM, "out of memory");
    dk_status st = DK_OK;
    for (int i = 0; st == DK_OK && i < count; i++) {
        const dk_fed_wire_tensor *t = &tensors[i];
        const char *name = t->name ? t->name : "";
        int p = find_param(global, name);
        const dk_tensor *v = p >= 0 ? &global->params[p].value : NULL;
        if (p < 0)
            st = dk_err_set(err, DK_EMISMATCH,
                            "update tensor '%.100s' is not a parameter of the global student "
                            "(only student parameters are averaged; a feature adapter stays "
                            "at the site)",
                            name);
        else if (seen[p])
            st = dk_err_set(err, DK_EMISMATCH, "update tensor '%s' appears twice", name);
        else if (t->rank != 5 || t->dims[0] != v->n || t->dims[1] != v->c || t->dims[2] != v->d ||
                 t->dims[3] != v->h || t->dims[4] != v->w)
            st = dk_err_set(err, DK_EMISMATCH,
                            "update tensor '%s' has shape %s, the global student's is %s", name,
                            t->rank >= 1 && t->rank <= 8 ? wire_shape(t, got, sizeof got) : "(?)",
                            dk_tensor_shape_str(v, want, sizeof want));
        else if (t->nbytes != dk_tensor_numel(v) * (t->dtype == DK_FED_FLOAT16 ? 2 : 4))
            st = dk_err_set(err, DK_EMISMATCH, "update tensor '%s' has %zu bytes, expected %zu",
                            name, t->nbytes,
                            dk_tensor_numel(v) * (t->dtype == DK_FED_FLOAT16 ? 2 : 4));
        if (st == DK_OK) seen[p] = true, which[i] = p;
    }
    int missing = 0, first = -1;
    for (int p = 0; st == DK_OK && p < global->count; p++)
        if (!seen[p] && missing++ == 0) first = p;
    if (st == DK_OK && missing)
        st = dk_err_set(err, DK_EMISMATCH,
                        "update lacks tensor '%s' %s (%d of the student's %d tensors missing)",
                        global->params[first].name,
                        dk_tensor_shape_str(&global->params[first].value, want, sizeof want),
                        missing, global->count);
    free(seen);
    return st;
}

/* Convert one wire tensor into dst, refusing NaN and infinities. */
static dk_status convert(const dk_fed_wire_tensor *t, dk_tensor *dst, dk_err *err)
{
    size_t n = dk_tensor_numel(dst);
    const unsigned char *bytes = t->data;
    for (size_t i = 0; i < n; i++) {
        float v;
        if (t->dtype == DK_FED_FLOAT16) {
            uint16_t h;
            memcpy(&h, bytes + 2 * i, 2);
            v = dk_half_to_float(h);
        } else {
            memcpy(&v, bytes + 4 * i, 4);
        }
        if (!isfinite(v))
            return dk_err_set(err, DK_EINVAL, "update tensor '%s' holds %s at element %zu", t->name,
                              isnan(v) ? "NaN" : "an infinity", i);
        dst->data[i] = v;
    }
    return DK_OK;
}

dk_status dk_fedavg_validate(const dk_fed_model *global, const dk_fed_wire_tensor *tensors,
                             int count, dk_fed_model *delta, double *norm, dk_err *err)
{
    *delta = (dk_fed_model){0};
    *norm = NAN;
    if (count < 0 || count > global->count + 64)
        return dk_err_set(err, DK_EMISMATCH, "update has %d tensors; the global student has %d",
                          count, global->count);
    int *which = calloc((size_t)count + 1, sizeof *which);
    if (!which) return dk_err_set(err, DK_ENOMEM, "out of memory");
    dk_status st = check_names(global, tensors, count, which, err);
    if (st == DK_OK) st = dk_fed_model_zeros_like(global, delta, err);
    for (int i = 0; st == DK_OK && i < count; i++)
        st = convert(&tensors[i], &delta->params[which[i]].value, err);
    free(which);
    if (st != DK_OK) {
        dk_fed_model_release(delta);
        return st;
    }
    *norm = dk_fedavg_norm(delta);
    return DK_OK;
}

double dk_fedavg_norm(const dk_fed_model *m)
{
    double sum = 0;
    for (int p = 0; p < m->count; p++) {
        const dk_tensor *t = &m->params[p].value;
        size_t n = dk_tensor_numel(t);
        for (size_t i = 0; i < n; i++)
            sum += (double)t->data[i] * t->data[i];
    }
    return sqrt(sum);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

dk_status dk_fedavg_check_norm(double norm, double global_norm, const double *accepted_norms,
                               int n_accepted, dk_err *err)
{
    double cap = DK_FEDAVG_ABS_FACTOR * fmax(1.0, global_norm);
    if (!(norm <= cap))
        return dk_err_set(err, DK_EINVAL,
                          "update norm %.6g exceeds %g x max(1, global norm %.6g) = %.6g", norm,
                          DK_FEDAVG_ABS_FACTOR, global_norm, cap);
    if (n_accepted < DK_FEDAVG_MEDIAN_MIN) return DK_OK;
    double *sorted = malloc(sizeof *sorted * (size_t)n_accepted);
    if (!sorted) return dk_err_set(err, DK_ENOMEM, "out of memory");
    memcpy(sorted, accepted_norms, sizeof *sorted * (size_t)n_accepted);
    qsort(sorted, (size_t)n_accepted, sizeof *sorted, compare_doubles);
    int h = n_accepted / 2;
    double median = n_accepted % 2 ? sorted[h] : 0.5 * (sorted[h - 1] + sorted[h]);
    free(sorted);
    if (norm > DK_FEDAVG_MEDIAN_FACTOR * median)
        return dk_err_set(err, DK_EINVAL,
                          "update norm %.6g exceeds %g x the median %.6g of the %d updates "
                          "accepted in this round",
                          norm, DK_FEDAVG_MEDIAN_FACTOR, median, n_accepted);
    return DK_OK;
}

dk_status dk_fedavg_acc_init(dk_fedavg_acc *acc, const dk_fed_model *global, dk_err *err)
{
    *acc = (dk_fedavg_acc){.numel = dk_fed_model_numel(global)};
    acc->sum = calloc(acc->numel ? acc->numel : 1, sizeof *acc->sum);
    if (!acc->sum)
        return dk_err_set(err, DK_ENOMEM, "out of memory for a sum of %zu values", acc->numel);
    return DK_OK;
}

dk_status dk_fedavg_acc_add(dk_fedavg_acc *acc, const dk_fed_model *global,
                            const dk_fed_model *delta, int64_t labelled, dk_err *err)
{
    if (delta->count != global->count)
        return dk_err_set(err, DK_EMISMATCH, "delta has %d tensors, the global %d", delta->count,
                          global->count);
    for (int p = 0; p < global->count; p++)
        if (strcmp(delta->params[p].name, global->params[p].name) != 0 ||
            !dk_tensor_same_shape(&delta->params[p].value, &global->params[p].value))
            return dk_err_set(err, DK_EMISMATCH, "delta tensor %d '%s' does not match '%s'", p,
                              delta->params[p].name, global->params[p].name);
    if (labelled < 1 || labelled > DK_FEDAVG_MAX_LABELLED)
        return dk_err_set(err, DK_EINVAL, "labelled count %lld is outside 1..%d",
                          (long long)labelled, DK_FEDAVG_MAX_LABELLED);
    double weight = (double)labelled;
    size_t offset = 0;
    for (int p = 0; p < delta->count; p++) {
        const dk_tensor *t = &delta->params[p].value;
        size_t n = dk_tensor_numel(t);
        for (size_t i = 0; i < n; i++)
            acc->sum[offset + i] += weight * t->data[i];
        offset += n;
    }
    acc->weight += weight;
    acc->added++;
    return DK_OK;
}

void dk_fedavg_acc_apply(const dk_fedavg_acc *acc, dk_fed_model *global)
{
    if (acc->added == 0) return;
    size_t offset = 0;
    for (int p = 0; p < global->count; p++) {
        dk_tensor *t = &global->params[p].value;
        size_t n = dk_tensor_numel(t);
        for (size_t i = 0; i < n; i++)
            t->data[i] = (float)((double)t->data[i] + acc->sum[offset + i] / acc->weight);
        offset += n;
    }
}

void dk_fedavg_acc_release(dk_fedavg_acc *acc)
{
    free(acc->sum);
    *acc = (dk_fedavg_acc){0};
}
