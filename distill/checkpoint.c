/* checkpoint.c: the HDF5 checkpoint (checkpoint.h, docs/formats.md "Checkpoint"):
 * saving, comparing architectures (with a JSON diff that names the first
 * difference), and loading parameters and optimiser state all-or-nothing. */
#include "distill/checkpoint.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/h5attr.h"
#include "distill/h5file.h"

#define FORMAT_NAME "dualkd-checkpoint"

/* Fletcher-32 on every tensor: HDF5 checksums metadata but not raw data. */
static const dk_h5_storage tensor_storage = {.fletcher32 = true};

static void tensor_dims(const dk_tensor *t, hsize_t dims[5])
{
    dims[0] = (hsize_t)t->n, dims[1] = (hsize_t)t->c, dims[2] = (hsize_t)t->d;
    dims[3] = (hsize_t)t->h, dims[4] = (hsize_t)t->w;
}

/* ---- JSON -------------------------------------------------------------------- */

static dk_status check_json(const char *what, const char *text, dk_err *err)
{
    json_error_t jerr;
    json_t *value = text ? json_loads(text, JSON_DECODE_ANY, &jerr) : NULL;
    if (!value)
        return dk_err_set(err, DK_EINVAL, "%s is not valid JSON: %s (line %d, column %d)", what,
                          text ? jerr.text : "NULL", text ? jerr.line : 0, text ? jerr.column : 0);
    json_decref(value);
    return DK_OK;
}

/* A compact rendering of value for messages, cut at 60 characters. */
static void json_brief(const json_t *value, char *buf, size_t cap)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    snprintf(buf, cap, "%.60s%s", text ? text : "?", text && strlen(text) > 60 ? "..." : "");
    free(text);
}

static const char *field_name(const char *path)
{
    return path[0] ? path : "(top level)";
}

/* Describe the first difference between saved and expected into msg; false if equal. */
static bool json_first_diff(const json_t *saved, const json_t *expected, const char *path,
                            char *msg, size_t cap)
{
    if (json_equal((json_t *)saved, (json_t *)expected)) return false;
    char child[256], a[80], b[80];
    if (json_is_object(saved) && json_is_object(expected)) {
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)expected, key, value)
        {
            snprintf(child, sizeof child, "%s%s%s", path, path[0] ? "." : "", key);
            json_t *other = json_object_get(saved, key);
            if (!other) {
                json_brief(value, b, sizeof b);
                snprintf(msg, cap, "'%s' is missing from the checkpoint (expected %s)", child, b);
                return true;
            }
            if (json_first_diff(other, value, child, msg, cap)) return true;
        }
        json_object_foreach((json_t *)saved, key, value)
        {
            if (json_object_get(expected, key)) continue;
            snprintf(child, sizeof child, "%s%s%s", path, path[0] ? "." : "", key);
            json_brief(value, a, sizeof a);
            snprintf(msg, cap, "the checkpoint has '%s' = %s, which is not expected", child, a);
            return true;
        }
    }
    if (json_is_array(saved) && json_is_array(expected)) {
        size_t ns = json_array_size(saved), ne = json_array_size(expected);
        for (size_t i = 0; i < ns && i < ne; i++) {
            snprintf(child, sizeof child, "%s[%zu]", path, i);
            if (json_first_diff(json_array_get(saved, i), json_array_get(expected, i), child, msg,
                                cap))
                return true;
        }
        snprintf(msg, cap, "'%s' has %zu elements in the checkpoint, expected %zu",
                 field_name(path), ns, ne);
        return true;
    }
    json_brief(saved, a, sizeof a);
    json_brief(expected, b, sizeof b);
    snprintf(msg, cap, "'%s' is %s in the checkpoint, expected %s", field_name(path), a, b);
    return true;
}

static dk_status compare_architectures(const char *path, const char *saved_text,
                                       const char *expected_text, dk_err *err)
{
    json_error_t jerr;
    json_t *saved = json_loads(saved_text, JSON_DECODE_ANY, &jerr);
    if (!saved)
        return dk_err_set(err, DK_EFORMAT, "'%s': saved architecture is not valid JSON: %s", path,
                          jerr.text);
    json_t *expected = json_loads(expected_text, JSON_DECODE_ANY, &jerr);
    dk_status status = DK_OK;
    char diff[400];
    if (!expected)
        status =
            dk_err_set(err, DK_EINVAL, "expected architecture is not valid JSON: %s", jerr.text);
    else if (json_first_diff(saved, expected, "", diff, sizeof diff))
        status = dk_err_set(err, DK_EMISMATCH, "'%s': architecture differs: %s", path, diff);
    json_decref(saved);
    json_decref(expected);
    return status;
}

/* ---- saving ------------------------------------------------------------------- */

static dk_status check_params(const dk_params *params, const dk_optimizer *opt, dk_err *err)
{
    for (int i = 0; i < params->count; i++) {
        const char *name = params->items[i]->name;
        if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0)
            return dk_err_set(err, DK_EINVAL, "parameter %d name '%s' is empty, '.' or has a '/'",
                              i, name);
        for (int j = 0; j < i; j++)
            if (strcmp(params->items[j]->name, name) == 0)
                return dk_err_set(err, DK_EINVAL, "parameter name '%s' is used twice", name);
    }
    for (int i = 0; opt && i < opt->params.count; i++) {
        const dk_param *p = opt->params.items[i];
        if (dk_params_find(params, p->name) != p)
            return dk_err_set(err, DK_EINVAL,
                              "optimiser parameter '%s' is not among the saved parameters",
                              p->name);
    }
    return DK_OK;
}

static dk_status write_tensor(hid_t group, const char *name, const dk_tensor *t, dk_err *err)
{
    hsize_t dims[5];
    tensor_dims(t, dims);
    return dk_h5_write_array(group, name, DK_H5_FLOAT32, 5, dims, t->data, &tensor_storage, err);
}

static dk_status write_params(hid_t file, const dk_params *params, dk_err *err)
{
    dk_status st;
    hid_t group;
    if ((st = dk_h5_group_create(file, "params", &group, err))) return st;
    dk_status status = DK_OK;
    for (int i = 0; status == DK_OK && i < params->count; i++)
        status = write_tensor(group, params->items[i]->name, &params->items[i]->value, err);
    H5Gclose(group);
    return status;
}

static dk_status write_moments(hid_t optim, const char *which, const dk_optimizer *opt,
                               const dk_tensor *moments, dk_err *err)
{
    dk_status st;
    hid_t group;
    if ((st = dk_h5_group_create(optim, which, &group, err))) return st;
    dk_status status = DK_OK;
    for (int i = 0; status == DK_OK && i < opt->params.count; i++)
        status = write_tensor(group, opt->params.items[i]->name, &moments[i], err);
    H5Gclose(group);
    return status;
}

static dk_status write_optimizer(hid_t file, const dk_optimizer *opt, dk_err *err)
{
    dk_status st;
    const dk_optim_config *c = &opt->config;
    hid_t optim;
    if ((st = dk_h5_group_create(file, "optim", &optim, err))) return st;
    /* floats widen to double exactly, so hyper-parameters round-trip bit-exactly */
    double betas[2] = {c->beta1, c->beta2};
    dk_status status = DK_OK;
    if ((st = dk_h5_attr_write_string(optim, "kind", dk_optim_kind_name(c->kind), err)) ||
        (st = dk_h5_attr_write_double(optim, "lr", c->lr, err)) ||
        (st = dk_h5_attr_write_doubles(optim, "betas", betas, 2, 0, err)) ||
        (st = dk_h5_attr_write_double(optim, "eps", c->eps, err)) ||
        (st = dk_h5_attr_write_double(optim, "weight_decay", c->weight_decay, err)) ||
        (st = dk_h5_attr_write_double(optim, "momentum", c->momentum, err)) ||
        (st = dk_h5_attr_write_int(optim, "nesterov", c->nesterov, err)) ||
        (st = dk_h5_attr_write_int(optim, "step", opt->step, err)) ||
        (st = write_moments(optim, "moment1", opt, opt->moment1, err)) ||
        (opt->moment2 && (st = write_moments(optim, "moment2", opt, opt->moment2, err))))
        status = st;
    H5Gclose(optim);
    return status;
}

dk_status dk_checkpoint_save(const char *path, const char *architecture_json,
                             const dk_params *params, const dk_optimizer *opt,
                             const char *run_record_json, dk_err *err)
{
    dk_status st;
    if ((st = check_json("the architecture", architecture_json, err)) ||
        (run_record_json && (st = check_json("the run record", run_record_json, err))) ||
        (st = check_params(params, opt, err)))
        return dk_err_prefix(err, st, "saving checkpoint '%s'", path);
    dk_h5_writer w;
    if ((st = dk_h5_create(path, &w, err))) return st;
    hid_t f = w.file;
    if ((st = dk_h5_attr_write_string(f, "format", FORMAT_NAME, err)) ||
        (st = dk_h5_attr_write_int(f, "format_version", DK_CHECKPOINT_FORMAT_VERSION, err)) ||
        (st = dk_h5_attr_write_string(f, "architecture", architecture_json, err)) ||
        (run_record_json &&
         (st = dk_h5_attr_write_string(f, "run_record", run_record_json, err))) ||
        (st = write_params(f, params, err)) || (opt && (st = write_optimizer(f, opt, err)))) {
        dk_h5_abort(&w);
        return st;
    }
    return dk_h5_commit(&w, err);
}

/* ---- opening ------------------------------------------------------------------ */

static dk_status open_checkpoint(const char *path, hid_t *file, dk_err *err)
{
    dk_status st;
    if ((st = dk_h5_open_read(path, file, err))) return st;
    char format[64] = "";
    int64_t version = 0;
    dk_status status = DK_OK;
    if (!dk_h5_attr_exists(*file, "format") ||
        dk_h5_attr_read_string_buf(*file, "format", format, sizeof format, err) ||
        strcmp(format, FORMAT_NAME) != 0)
        status = dk_err_set(err, DK_EFORMAT, "'%s' is not a dualkd checkpoint (format '%s')", path,
                            format);
    else if ((st = dk_h5_attr_read_int(*file, "format_version", &version, err)))
        status = st;
    else if (version < 1 || version > DK_CHECKPOINT_FORMAT_VERSION)
        status = dk_err_set(err, DK_EFORMAT,
                            "'%s' is checkpoint format version %lld; this dualkd reads 1..%d", path,
                            (long long)version, DK_CHECKPOINT_FORMAT_VERSION);
    if (status != DK_OK) {
        dk_h5_close_file(*file);
        *file = H5I_INVALID_HID;
    }
    return status;
}

static dk_status read_root_string(const char *path, const char *attr, bool optional,
                                  char **json_out, dk_err *err)
{
    dk_status st;
    *json_out = NULL;
    hid_t file;
    if ((st = open_checkpoint(path, &file, err))) return st;
    dk_status status = DK_OK;
    if (!optional || dk_h5_attr_exists(file, attr))
        status = dk_h5_attr_read_string(file, attr, json_out, err);
    dk_h5_close_file(file);
    return status;
}

dk_status dk_checkpoint_read_architecture(const char *path, char **json_out, dk_err *err)
{
    return read_root_string(path, "architecture", false, json_out, err);
}

dk_status dk_checkpoint_read_run_record(const char *path, char **json_out, dk_err *err)
{
    return read_root_string(path, "run_record", true, json_out, err);
}

dk_status dk_checkpoint_has_optimizer(const char *path, bool *has_opt, dk_err *err)
{
    dk_status st;
    hid_t file;
    *has_opt = false;
    if ((st = open_checkpoint(path, &file, err))) return st;
    *has_opt = dk_h5_exists(file, "optim");
    dk_h5_close_file(file);
    return DK_OK;
}

/* ---- loading ------------------------------------------------------------------ */

/* One tensor to restore: where it is in the file and where it goes. */
typedef struct restore_item {
    const char *group; /* "params", "optim/moment1", "optim/moment2" */
    const char *name;
    dk_tensor *dest;
    float *staged;
} restore_item;

typedef struct restore_plan {
    restore_item *items;
    int count;
    size_t floats;
} restore_plan;

/* Check that group holds exactly the tensors named in names[0..n) with dests'
 * shapes; add them to the plan. what: "parameter", "moment1 of", ... */
static dk_status plan_group(hid_t group, const char *group_path, const char *what,
                            dk_param *const *owners, dk_tensor *const *dests, int n,
                            restore_plan *plan, dk_err *err)
{
    dk_status st;
    char a[160], b[160], where[400];
    for (int i = 0; i < n; i++) {
        const char *name = owners[i]->name;
        hsize_t want[5], got[DK_H5_MAX_RANK];
        int rank = 0;
        tensor_dims(dests[i], want);
        dk_h5_shape_str(5, want, b, sizeof b);
        if (!dk_h5_exists(group, name))
            return dk_err_set(err, DK_EMISMATCH, "%s: %s '%s' %s is missing from the checkpoint",
                              dk_h5_where(group, where, sizeof where), what, name, b);
        if ((st = dk_h5_array_shape(group, name, DK_H5_FLOAT32, &rank, got, err))) return st;
        if (rank != 5 || memcmp(got, want, sizeof want) != 0)
            return dk_err_set(err, DK_EMISMATCH,
                              "%s: %s '%s' has shape %s in the checkpoint, "
                              "the model's is %s",
                              dk_h5_where(group, where, sizeof where), what, name,
                              dk_h5_shape_str(rank, got, a, sizeof a), b);
        plan->items[plan->count++] = (restore_item){group_path, name, dests[i], NULL};
        plan->floats += dk_tensor_numel(dests[i]);
    }
    char **names = NULL;
    int count = 0;
    if ((st = dk_h5_group_list(group, &names, &count, err))) return st;
    dk_status status = DK_OK;
    for (int j = 0; status == DK_OK && j < count; j++) {
        bool known = false;
        for (int i = 0; !known && i < n; i++)
            known = strcmp(owners[i]->name, names[j]) == 0;
        int rank = 0;
        hsize_t got[DK_H5_MAX_RANK];
        if (!known &&
            (st = dk_h5_array_shape(group, names[j], DK_H5_FLOAT32, &rank, got, err)) == DK_OK)
            status = dk_err_set(err, DK_EMISMATCH,
                                "%s: the checkpoint has %s '%s' %s, "
                                "which the model does not",
                                dk_h5_where(group, where, sizeof where), what, names[j],
                                dk_h5_shape_str(rank, got, a, sizeof a));
        else if (!known)
            status = st;
    }
    dk_h5_free_strings(names);
    return status;
}

static dk_status plan_params(hid_t file, const dk_params *params, restore_plan *plan, dk_err *err)
{
    dk_status st;
    hid_t group;
    if ((st = dk_h5_group_open(file, "params", &group, err))) return st;
    dk_tensor **dests = calloc((size_t)params->count + 1, sizeof *dests);
    dk_status status = dests ? DK_OK : dk_err_set(err, DK_ENOMEM, "out of memory");
    for (int i = 0; status == DK_OK && i < params->count; i++)
        dests[i] = &params->items[i]->value;
    if (status == DK_OK)
        status = plan_group(group, "params", "parameter", params->items, dests, params->count, plan,
                            err);
    free(dests);
    H5Gclose(group);
    return status;
}

static dk_status plan_moments(hid_t optim, const char *group_path, const char *which,
                              dk_optimizer *opt, dk_tensor *moments, restore_plan *plan,
                              dk_err *err)
{
    dk_status st;
    hid_t group;
    if ((st = dk_h5_group_open(optim, which, &group, err))) return st;
    dk_tensor **dests = calloc((size_t)opt->params.count + 1, sizeof *dests);
    dk_status status = dests ? DK_OK : dk_err_set(err, DK_ENOMEM, "out of memory");
    for (int i = 0; status == DK_OK && i < opt->params.count; i++)
        dests[i] = &moments[i];
    if (status == DK_OK)
        status = plan_group(group, group_path, which, opt->params.items, dests, opt->params.count,
                            plan, err);
    free(dests);
    H5Gclose(group);
    return status;
}

/* Read the optimiser's kind and hyper-parameters into config/step (not yet into opt). */
static dk_status read_optim_attrs(hid_t optim, const char *path, const dk_optimizer *opt,
                                  dk_optim_config *config, int64_t *step, dk_err *err)
{
    dk_status st;
    char kind[32];
    double lr, betas[2], eps, wd, momentum;
    int64_t nesterov;
    if ((st = dk_h5_attr_read_string_buf(optim, "kind", kind, sizeof kind, err)) ||
        (st = dk_h5_attr_read_double(optim, "lr", &lr, err)) ||
        (st = dk_h5_attr_read_doubles(optim, "betas", betas, 2, err)) ||
        (st = dk_h5_attr_read_double(optim, "eps", &eps, err)) ||
        (st = dk_h5_attr_read_double(optim, "weight_decay", &wd, err)) ||
        (st = dk_h5_attr_read_double(optim, "momentum", &momentum, err)) ||
        (st = dk_h5_attr_read_int(optim, "nesterov", &nesterov, err)) ||
        (st = dk_h5_attr_read_int(optim, "step", step, err)))
        return st;
    int parsed = dk_optim_kind_parse(kind);
    if (parsed < 0)
        return dk_err_set(err, DK_EFORMAT, "'%s': optimiser kind '%s' is unknown", path, kind);
    if (parsed != (int)opt->config.kind)
        return dk_err_set(err, DK_EMISMATCH, "'%s': the checkpoint's optimiser is %s, not %s", path,
                          kind, dk_optim_kind_name(opt->config.kind));
    if (*step < 0)
        return dk_err_set(err, DK_EFORMAT, "'%s': optimiser step %lld < 0", path, (long long)*step);
    *config = (dk_optim_config){.kind = (dk_optim_kind)parsed,
                                .lr = (float)lr,
                                .momentum = (float)momentum,
                                .nesterov = nesterov != 0,
                                .beta1 = (float)betas[0],
                                .beta2 = (float)betas[1],
                                .eps = (float)eps,
                                .weight_decay = (float)wd};
    return DK_OK;
}

static dk_status plan_optimizer(hid_t file, const char *path, dk_optimizer *opt,
                                dk_optim_config *config, int64_t *step, restore_plan *plan,
                                dk_err *err)
{
    dk_status st;
    if (!dk_h5_exists(file, "optim"))
        return dk_err_set(err, DK_ENOTFOUND, "'%s' holds no optimiser state", path);
    hid_t optim;
    if ((st = dk_h5_group_open(file, "optim", &optim, err))) return st;
    dk_status status = read_optim_attrs(optim, path, opt, config, step, err);
    if (status == DK_OK)
        status = plan_moments(optim, "optim/moment1", "moment1", opt, opt->moment1, plan, err);
    if (status == DK_OK && opt->moment2)
        status = plan_moments(optim, "optim/moment2", "moment2", opt, opt->moment2, plan, err);
    H5Gclose(optim);
    return status;
}

/* Read every planned tensor into one staging buffer; copy out only if all succeed. */
static dk_status execute_plan(hid_t file, restore_plan *plan, dk_err *err)
{
    float *staging = malloc((plan->floats ? plan->floats : 1) * sizeof *staging);
    if (!staging) return dk_err_set(err, DK_ENOMEM, "cannot stage %zu floats", plan->floats);
    size_t offset = 0;
    dk_status status = DK_OK;
    for (int i = 0; status == DK_OK && i < plan->count; i++) {
        restore_item *item = &plan->items[i];
        hsize_t dims[5];
        tensor_dims(item->dest, dims);
        item->staged = staging + offset;
        offset += dk_tensor_numel(item->dest);
        hid_t loc;
        status = dk_h5_group_open(file, item->group, &loc, err);
        if (status == DK_OK)
            status = dk_h5_read_array(loc, item->name, DK_H5_FLOAT32, 5, dims, item->staged, err);
        if (loc >= 0) H5Gclose(loc);
    }
    for (int i = 0; status == DK_OK && i < plan->count; i++)
        memcpy(plan->items[i].dest->data, plan->items[i].staged,
               dk_tensor_numel(plan->items[i].dest) * sizeof(float));
    free(staging);
    return status;
}

dk_status dk_checkpoint_load(const char *path, const char *expected_architecture_json,
                             const dk_params *params, dk_optimizer *opt, dk_err *err)
{
    dk_status st;
    hid_t file;
    if ((st = open_checkpoint(path, &file, err))) return st;
    char *saved = NULL;
    dk_status status = DK_OK;
    if (expected_architecture_json) {
        status = dk_h5_attr_read_string(file, "architecture", &saved, err);
        if (status == DK_OK)
            status = compare_architectures(path, saved, expected_architecture_json, err);
    }
    int capacity = params->count + (opt ? 2 * opt->params.count : 0);
    restore_plan plan = {.items = calloc((size_t)capacity + 1, sizeof *plan.items)};
    if (status == DK_OK && !plan.items) status = dk_err_set(err, DK_ENOMEM, "out of memory");
    if (status == DK_OK) status = plan_params(file, params, &plan, err);
    dk_optim_config config;
    int64_t step = 0;
    if (status == DK_OK && opt)
        status = plan_optimizer(file, path, opt, &config, &step, &plan, err);
    if (status == DK_OK) status = execute_plan(file, &plan, err);
    if (status == DK_OK && opt) {
        opt->config = config;
        opt->step = (long)step;
    }
    free(plan.items);
    free(saved);
    dk_h5_close_file(file);
    return status;
}
