/* routes_teacher.c: GET /v1/teacher, the model card (the teacher card its
 * training wrote, the checkpoint's SHA-256, the server's version, and per
 * granted profile the temperature, passes and feature layers of its targets),
 * and GET /v1/profiles, the verified stores the caller may read. */
#include <stdlib.h>
#include <string.h>

#include "distill/checkpoint.h"
#include "httpapi/router.h"
#include "httpapi/server_internal.h"
#include "teacher/sha256.h"

char *dk_teacher_card_load(const char *path, const char *version, dk_err *err)
{
    char *record = NULL, sha[DK_SHA256_HEX];
    if (dk_checkpoint_read_run_record(path, &record, err) || dk_sha256_file(path, sha, err))
        goto fail;
    json_t *root = record ? json_loads(record, 0, NULL) : NULL;
    json_t *card = json_object_get(root, "teacher");
    if (!json_is_object(card)) {
        json_decref(root);
        dk_err_set(
            err, DK_EFORMAT,
            "'%s' has no run record (teacher card); make the teacher with dualkd teacher train",
            path);
        goto fail;
    }
    card = json_deep_copy(card);
    json_object_set_new(card, "checkpoint_sha256", json_string(sha));
    json_object_set_new(card, "version", json_string(version));
    json_t *best = json_object_get(root, "best");
    if (json_is_object(best)) json_object_set(card, "validation", best);
    json_decref(root);
    char *text = json_dumps(card, JSON_COMPACT);
    json_decref(card);
    free(record);
    if (!text) dk_err_set(err, DK_ENOMEM, "out of memory");
    return text;
fail:
    free(record);
    return NULL;
}

static json_t *feature_layers(const dk_store_manifest *m)
{
    json_t *list = json_array();
    for (int k = 0; k < m->feature_count; k++) {
        const dk_store_feature *f = &m->features[k];
        json_array_append_new(list,
                              json_pack("{s:s, s:i, s:i, s:[fff]}", "layer", f->layer, "channels",
                                        f->channels, "student_channels", f->student_channels,
                                        "spacing", f->spacing[0], f->spacing[1], f->spacing[2]));
    }
    return list;
}

static json_t *profile_entry(const dk_served_store *s)
{
    const dk_store_manifest *m = dk_store_manifest_of(s->store);
    json_t *classes = json_array();
    for (int c = 0; c < m->classes.count; c++)
        json_array_append_new(classes, json_string(m->classes.names[c]));
    json_t *profile = json_loads(m->profile_json, 0, NULL);
    char catalogue[128];
    snprintf(catalogue, sizeof catalogue, "/v1/targets?profile=%s", s->profile);
    /* the student a site must train for the feature targets to fit (student/pull.c) */
    json_t *student = json_loads(m->student_architecture, 0, NULL);
    json_t *entry = json_pack("{s:s, s:o*, s:i, s:o, s:f, s:i, s:f, s:o, s:[fff], s:s, s:s, s:s}", "name",
                     s->profile, "profile", profile, "samples", dk_store_count(s->store), "classes",
                     classes, "temperature", m->temperature, "passes", m->passes, "input_noise",
                     m->input_noise, "feature_layers", feature_layers(m), "spacing",
                     m->profile_spacing[0], m->profile_spacing[1], m->profile_spacing[2],
                     "teacher_sha256", m->teacher_sha256, "created", m->created, "catalogue",
                     catalogue);
    if (entry && student) json_object_set(entry, "student_architecture", student);
    json_decref(student);
    return entry;
}

/* The ready stores the caller's token grants, each as f makes it. */
static json_t *granted(dk_request *req, json_t *(*f)(const dk_served_store *))
{
    json_t *list = json_array();
    const dk_served_store *s;
    for (int i = 0; (s = dk_stores_ready_at(req->server->stores, i)); i++)
        if (dk_token_grants(&req->who, s->profile)) json_array_append_new(list, f(s));
    return list;
}

static json_t *targets_entry(const dk_served_store *s)
{
    const dk_store_manifest *m = dk_store_manifest_of(s->store);
    return json_pack("{s:s, s:f, s:i, s:f, s:o}", "profile", s->profile, "temperature",
                     m->temperature, "passes", m->passes, "input_noise", m->input_noise,
                     "feature_layers", feature_layers(m));
}

enum MHD_Result dk_handle_teacher(dk_request *req, const dk_route_params *p)
{
    json_t *card = json_loads(req->server->teacher_card, 0, NULL);
    if (!card) return MHD_NO;
    json_object_set_new(card, "targets", granted(req, targets_entry));
    return dk_respond_json(req, MHD_HTTP_OK, card, NULL);
}

enum MHD_Result dk_handle_profiles(dk_request *req, const dk_route_params *p)
{
    return dk_respond_json(req, MHD_HTTP_OK,
                           json_pack("{s:o}", "profiles", granted(req, profile_entry)), NULL);
}
