/* routes_evaluate.c: POST /v1/evaluate?profile=P&sample=S: an uploaded label
 * map (.npy uint8, z y x) scored against the stored labels of a held-out
 * sample of profile P, per class: Dice, HD95 and ASSD in millimetres on the
 * sample's own (anisotropic) grid, by datasets/metrics.h (the module `dualkd
 * eval` uses, so both report the same numbers).
 *
 * Held-out means: the sample's split (from the repository dataset, kept in the
 * store's catalogue) is "validation" or "test", and the store holds its label.
 * Training samples are refused (409): the teacher learned from their labels,
 * so a score against them says nothing about a site's model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/metrics.h"
#include "httpapi/router.h"
#include "httpapi/server_internal.h"
#include "httpapi/upload.h"

static bool held_out(const dk_store_sample_info *si)
{
    return strcmp(si->split, "validation") == 0 || strcmp(si->split, "test") == 0;
}

/* The held-out samples of s as "a, b, c" (for a detail that helps the caller). */
static void held_out_list(const dk_store *s, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < dk_store_count(s) && n + 70 < cap; i++) {
        const dk_store_sample_info *si = dk_store_sample_at(s, i);
        if (held_out(si) && dk_store_array_of(s, i, "label"))
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", si->id);
    }
    if (!n) snprintf(buf, cap, "none");
}

/* The index of the held-out sample named by ?sample=, or -1 after answering. */
static int held_out_sample(dk_request *req, const dk_served_store *s, enum MHD_Result *answered)
{
    char list[600];
    held_out_list(s->store, list, sizeof list);
    const char *id = dk_request_arg(req, "sample");
    if (!id || !*id) {
        *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST,
                               "the query parameter 'sample' is required; the held-out samples "
                               "of profile '%s' are: %s",
                               s->profile, list);
        return -1;
    }
    int i = dk_store_find(s->store, id);
    if (i < 0) {
        *answered = dk_problem(req, MHD_HTTP_NOT_FOUND,
                               "no sample '%.100s' in profile '%s'; the held-out ones are: %s", id,
                               s->profile, list);
        return -1;
    }
    const dk_store_sample_info *si = dk_store_sample_at(s->store, i);
    if (!held_out(si) || !dk_store_array_of(s->store, i, "label")) {
        *answered = dk_problem(
            req, MHD_HTTP_CONFLICT,
            "sample '%s' is not held out (split '%s'%s): evaluation uses samples of split "
            "validation or test with labels; in profile '%s' those are: %s",
            id, si->split, dk_store_array_of(s->store, i, "label") ? "" : ", no label", s->profile,
            list);
        return -1;
    }
    return i;
}

/* The uploaded map must lie on the sample's grid and use the store's classes. */
static bool fits(dk_request *req, const dk_npy_array *a, const dk_store_sample_info *si,
                 int classes, enum MHD_Result *answered)
{
    const int *g = si->grid.dims;
    if ((int)a->shape[0] != g[0] || (int)a->shape[1] != g[1] || (int)a->shape[2] != g[2]) {
        *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST,
                               "the label map has shape (%zu, %zu, %zu) but sample '%s' has the "
                               "grid (%d, %d, %d) (z, y, x) at %g x %g x %g mm",
                               a->shape[0], a->shape[1], a->shape[2], si->id, g[0], g[1], g[2],
                               si->grid.spacing[0], si->grid.spacing[1], si->grid.spacing[2]);
        return false;
    }
    const uint8_t *v = a->data;
    for (size_t k = 0; k < a->numel; k++)
        if (v[k] >= classes) {
            *answered = dk_problem(req, MHD_HTTP_BAD_REQUEST,
                                   "the label map holds %d at flat index %zu; class ids are "
                                   "0..%d for this profile (GET /v1/teacher lists the classes)",
                                   v[k], k, classes - 1);
            return false;
        }
    return true;
}

static json_t *report(const dk_served_store *s, const dk_store_sample_info *si,
                      const dk_class_metrics *m)
{
    const dk_classes *c = &dk_store_manifest_of(s->store)->classes;
    json_t *per_class = json_object();
    for (int k = 1; k < c->count; k++) /* foreground classes, as dualkd eval reports */
        json_object_set_new(per_class, c->names[k], dk_metrics_json(&m[k]));
    const dk_grid *g = &si->grid;
    return json_pack("{s:s, s:s, s:s, s:[iii], s:[fff], s:s, s:o}", "profile", s->profile, "sample",
                     si->id, "split", si->split, "dims", g->dims[0], g->dims[1], g->dims[2],
                     "spacing", g->spacing[0], g->spacing[1], g->spacing[2], "units", "mm",
                     "metrics", per_class);
}

enum MHD_Result dk_handle_evaluate(dk_request *req, const dk_route_params *p)
{
    enum MHD_Result answered;
    const dk_served_store *s = dk_profile_store(req, &answered);
    if (!s) return answered;
    int i = held_out_sample(req, s, &answered);
    if (i < 0) return answered;
    const dk_store_sample_info *si = dk_store_sample_at(s->store, i);
    int classes = dk_store_manifest_of(s->store)->classes.count;
    static const dk_npy_dtype u1[] = {DK_NPY_U1};
    dk_npy_array pred;
    if (!dk_upload_npy(req, "the label map", u1, 1, &pred, &answered)) return answered;
    if (!fits(req, &pred, si, classes, &answered)) {
        dk_npy_array_free(&pred);
        return answered;
    }
    uint8_t *truth = malloc(pred.numel);
    dk_class_metrics m[DK_MAX_CLASSES];
    dk_err err = {0};
    dk_status st = truth ? DK_OK : dk_err_set(&err, DK_ENOMEM, "out of memory");
    if (!st) {
        dk_h5_lock();
        st = dk_store_read_raw(s->store, i, "label", truth, pred.numel, &err);
        dk_h5_unlock();
    }
    if (!st)
        st = dk_metrics_labels(pred.data, truth, si->grid.dims, si->grid.spacing, classes, m, &err);
    free(truth);
    dk_npy_array_free(&pred);
    if (st)
        return dk_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "evaluating sample '%s' failed: %s",
                          si->id, err.msg);
    return dk_respond_json(req, MHD_HTTP_OK, report(s, si, m), NULL);
}
