/* make_seeds.c: writes the seed corpora tests/fuzz/corpus/<name>/ with the same
 * library calls the tests use to write these files, at the smallest sizes that
 * still exercise every part (labels, features, optimiser state, ...). Built with
 * -DDUALKD_FUZZ=ON as build-fuzz/make_seeds; run `build-fuzz/make_seeds
 * tests/fuzz/corpus` (scripts/fuzz --seeds). The corpora are committed. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/dataset.h"
#include "datasets/nifti.h"
#include "datasets/profile.h"
#include "distill/checkpoint.h"
#include "teacher/store.h"
#include "teacher/train.h"

static const char *root;

static void check(dk_status st, const dk_err *err)
{
    if (st == DK_OK) return;
    fprintf(stderr, "make_seeds: %s\n", err->msg);
    exit(1);
}

/* "<root>/<name>/<file>", the directory created; static storage. */
static const char *seed(const char *name, const char *file)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, name);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, name, file);
    return path;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        perror(path);
        exit(1);
    }
}

static void volume(dk_volume *v, const char *id, int z, int y, int x, bool label)
{
    dk_err err = {0};
    check(dk_volume_alloc(v, id, (int[]){z, y, x}, label, &err), &err);
    for (size_t i = 0; i < dk_volume_voxels(v); i++) {
        v->image[i] = (float)i * 0.5f - 3;
        if (label) v->label[i] = (uint8_t)(i % 3);
    }
    v->spacing[0] = 3.3, v->spacing[1] = v->spacing[2] = 0.31;
    snprintf(v->split, sizeof v->split, "%s", label ? "labelled" : "unlabelled");
}

static void nifti_seeds(void)
{
    dk_volume v;
    dk_err err = {0};
    volume(&v, "scan", 3, 4, 5, true);
    check(dk_nifti_write_image(seed("nifti", "image.nii"), &v, &err), &err);
    check(dk_nifti_write_image(seed("nifti", "image.nii.gz"), &v, &err), &err);
    check(dk_nifti_write_label(seed("nifti", "label.nii.gz"), &v, &err), &err);
    dk_volume_release(&v);
}

static void dataset_seeds(void)
{
    dk_classes classes = {.count = 3, .names = {"background", "femoral", "tibial"}};
    dk_err err = {0};
    dk_dataset_writer *w = dk_dataset_writer_open(seed("dataset", "two.h5"), &classes, &err);
    if (!w) check(err.code, &err);
    dk_volume a, b;
    volume(&a, "case01", 2, 3, 4, true);
    volume(&b, "case02", 3, 2, 2, false);
    check(dk_dataset_writer_add(w, &a, &err), &err);
    check(dk_dataset_writer_add(w, &b, &err), &err);
    check(dk_dataset_writer_commit(w, &err), &err);
    dk_volume_release(&a);
    dk_volume_release(&b);
}

static void checkpoint_seeds(void)
{
    dk_param p[2] = {0};
    dk_params params = {0};
    dk_optimizer opt;
    dk_err err = {0};
    dk_optim_config oc = dk_optim_defaults(DK_OPTIM_ADAM, 1e-3f);
    check(dk_param_init(&p[0], "conv.weight", 2, 1, 3, 3, 3, &err), &err);
    check(dk_param_init(&p[1], "conv.bias", 1, 2, 1, 1, 1, &err), &err);
    check(dk_params_push(&params, &p[0], &err), &err);
    check(dk_params_push(&params, &p[1], &err), &err);
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < dk_tensor_numel(&p[k].value); i++)
            p[k].value.data[i] = 0.01f * (float)i - 0.1f;
    check(dk_optim_init(&opt, &oc, &params, &err), &err);
    opt.step = 3;
    const char *arch = "{\"kind\": \"unet3d\", \"levels\": 2}";
    check(dk_checkpoint_save(seed("checkpoint", "with_optimizer.h5"), arch, &params, &opt,
                             "{\"kind\": \"teacher-run\", \"epochs\": [{\"seconds\": 1.5}]}", &err),
          &err);
    check(
        dk_checkpoint_save(seed("checkpoint", "weights_only.h5"), arch, &params, NULL, NULL, &err),
        &err);
    dk_optim_release(&opt);
    dk_param_release(&p[0]);
    dk_param_release(&p[1]);
    dk_params_release(&params);
}

static dk_store_manifest store_manifest(void)
{
    dk_store_manifest m = {0};
    memset(m.teacher_sha256, 'a', 64);
    memset(m.data_sha256, 'b', 64);
    strcpy(m.teacher_architecture, "{\"kind\": \"unet3d\"}");
    strcpy(m.student_architecture, "{\"kind\": \"unet3d\"}");
    strcpy(m.profile, "site-x");
    strcpy(m.profile_json, "{\"name\": \"site-x\"}");
    m.classes = (dk_classes){.count = 3, .names = {"background", "a", "b"}};
    for (int a = 0; a < 3; a++)
        m.teacher_spacing[a] = 0.5, m.profile_spacing[a] = 1.0, m.student_multiple[a] = 2;
    m.temperature = 2, m.passes = 4, m.input_noise = 0.1, m.seed = 77;
    m.feature_count = 1;
    m.features[0] = (dk_store_feature){"bottleneck", 2, 8, 1, 1, {2, 2, 2}};
    return m;
}

static void store_seeds(void)
{
    enum { D = 2, H = 3, W = 4, V = D * H * W };
    static float input[V], response[3 * V], uncertainty[V], features[2 * 1 * 2 * 2];
    static uint8_t label[V];
    for (int i = 0; i < V; i++) {
        input[i] = (float)i, uncertainty[i] = 0.25f, label[i] = (uint8_t)(i % 3);
        response[i] = 0.2f, response[V + i] = 0.3f, response[2 * V + i] = 0.5f;
    }
    for (int i = 0; i < 8; i++)
        features[i] = 0.125f * (float)i;
    dk_store_sample s = {0};
    snprintf(s.info.id, sizeof s.info.id, "knee-a");
    strcpy(s.info.split, "train");
    s.info.grid = (dk_grid){{D, H, W}, {1, 1, 1}, {0, 0, 0}};
    s.info.feature_grid[0] = (dk_grid){{1, 2, 2}, {2, 2, 2}, {0.5, 0.5, 0.5}};
    s.array_count = 5;
    s.arrays[0] = (dk_store_array){"input", DK_STORE_F32, 3, {D, H, W}, input};
    s.arrays[1] = (dk_store_array){"label", DK_STORE_U8, 3, {D, H, W}, label};
    s.arrays[2] = (dk_store_array){"response", DK_STORE_F16, 4, {3, D, H, W}, response};
    s.arrays[3] = (dk_store_array){"uncertainty", DK_STORE_F16, 3, {D, H, W}, uncertainty};
    s.arrays[4] = (dk_store_array){"features/bottleneck", DK_STORE_F16, 4, {2, 1, 2, 2}, features};
    dk_store_manifest m = store_manifest();
    dk_err err = {0};
    dk_store_writer *w = dk_store_writer_open(seed("store", "one_sample.h5"), &m, false, &err);
    if (!w) check(err.code, &err);
    check(dk_store_writer_add(w, &s, &err), &err);
    const char *ids[1] = {"knee-a"};
    check(dk_store_writer_finish(w, ids, 1, &err), &err);
}

static void json_seeds(void)
{
    dk_err err = {0};
    for (int i = 0; i < dk_profile_builtin_count(); i++) {
        dk_profile p;
        char file[96];
        check(dk_profile_builtin(dk_profile_builtin_name(i), &p, &err), &err);
        char *json = dk_profile_to_json(&p);
        snprintf(file, sizeof file, "%s.json", p.name);
        write_text(seed("profile", file), json);
        free(json);
    }
    dk_teacher_config c = dk_teacher_config_default();
    char *json = dk_teacher_config_to_json(&c);
    write_text(seed("teacher_config", "default.json"), json);
    free(json);
    write_text(seed("teacher_config", "small.json"),
               "{\"network\": {\"levels\": 2, \"base_width\": 4, \"pool\": [[2, 2, 2]],"
               " \"kernel\": [[3, 3, 3], [3, 3, 3]]}, \"patch\": [16, 16, 16], \"batch\": 2,"
               " \"steps\": 6, \"steps_per_epoch\": 3, \"checkpoint_every\": 0}");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    nifti_seeds();
    dataset_seeds();
    checkpoint_seeds();
    store_seeds();
    json_seeds();
    return 0;
}
