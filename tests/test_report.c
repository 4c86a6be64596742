/* test_report.c: the demo's report folder (report/report.h) from a real results.json:
 * a phantom dataset, prediction folders written as NIfTI (the truth itself, the truth
 * shifted, nothing), the files it writes (PNG sizes, the ground-truth panel pixel for
 * pixel, the table values in index.html), and bad results.json files: a clear message
 * naming the field, and nothing half-written. `dualkd report` end to end too. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "datasets/nifti.h"
#include "datasets/show.h"
#include "report/report.h"
#include "testutil.h"

TestSuite(report, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown, .timeout = 120);

static const char *const methods[3] = {"truth", "shifted", "empty"};

/* preds/<method>/<id>.nii.gz for the validation volumes vol-01 and vol-02. */
static void write_predictions(const char *data)
{
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(data, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    for (int m = 0; m < 3; m++) {
        char *dir = dk_test_path("preds"), path[512];
        mkdir(dir, 0755);
        snprintf(path, sizeof path, "%s/%s", dir, methods[m]);
        cr_assert_eq(mkdir(path, 0755), 0);
        for (int i = 1; i <= 2; i++) {
            dk_volume v = {0};
            cr_assert_eq(dk_dataset_read(ds, i, &v, &err), DK_OK, "%s", err.msg);
            size_t n = dk_volume_voxels(&v);
            uint8_t *truth = malloc(n);
            memcpy(truth, v.label, n);
            for (size_t k = 0; k < n; k++)
                v.label[k] = m == 0 ? truth[k] : m == 1 ? truth[k - k % 32 + (k % 32 + 4) % 32] : 0;
            snprintf(path, sizeof path, "%s/%s/%s.nii.gz", dir, methods[m], v.id);
            cr_assert_eq(dk_nifti_write_label(path, &v, &err), DK_OK, "%s", err.msg);
            free(truth);
            dk_volume_release(&v);
        }
        free(dir);
    }
    dk_dataset_close(ds);
}

static json_t *cell(int m)
{
    static const double dice[3] = {1.0, 0.654, 0.0}, hd95[3] = {0.0, 2.75, -1};
    json_t *classes = json_object(), *curve = json_array();
    for (int c = 0; c < 2; c++)
        json_object_set_new(classes, c ? "slab" : "ball",
                            json_pack("{s:f, s:o, s:o}", "dice", m == 2 ? 0.0 : dice[m] - 0.01 * c,
                                      "hd95_mm", hd95[m] < 0 ? json_null() : json_real(hd95[m] + c),
                                      "assd_mm", json_null()));
    for (int k = 1; m == 1 && k <= 3; k++)
        json_array_append_new(curve, json_pack("{s:i, s:f}", "round", k, "dice", 0.2 * k));
    char dir[64];
    snprintf(dir, sizeof dir, "preds/%s", methods[m]);
    return json_pack("{s:s, s:o, s:f, s:o}", "predictions", dir, "classes", classes, "mean_dice",
                     m == 2 ? 0.0 : dice[m] - 0.005, "curve", curve);
}

/* The results.json of two sites over one phantom dataset (site-b names its slice). */
static json_t *results_json(void)
{
    json_t *sites = json_pack(
        "[{s:s, s:s, s:s, s:s, s:i, s:i, s:{s:n, s:s, s:n}, s:i},"
        " {s:s, s:s, s:s, s:s, s:i, s:i, s:{s:s, s:s, s:i}}]",
        "name", "site-a", "profile", "clinical-3.3mm", "contrast", "pd-fs", "data", "data.h5",
        "labelled", 1, "validation", 2, "overlay", "volume", "axis", "z", "slice", "extra", 7,
        "name", "site-b", "profile", "clinical-4.5mm", "contrast", "t1", "data", "data.h5",
        "labelled", 1, "validation", 2, "overlay", "volume", "vol-02", "axis", "y", "slice", 9);
    json_t *list = json_array();
    static const char *const titles[3] = {"copy of the truth", "shifted <4>", "empty"};
    for (int m = 0; m < 3; m++)
        json_array_append_new(
            list,
            json_pack("{s:s, s:s, s:f, s:i, s:i, s:o, s:{s:o, s:o}}", "name", methods[m], "title",
                      titles[m], "seconds", 1.5 + m, "rounds", m == 1 ? 3 : 0, "local_steps",
                      10 * m, "bytes_per_round",
                      m ? json_pack("{s:i, s:i}", "down", 1130000, "up", 1130000) : json_null(),
                      "sites", "site-a", cell(m), "site-b", cell(m)));
    return json_pack("{s:s, s:b, s:f, s:[s, s], s:o, s:o, s:{s:i, s:i}, s:s}", "dualkd", "0.1.0",
                     "quick", 1, "seconds", 75.25, "classes", "ball", "slab", "sites", sites,
                     "methods", list, "original_bytes_per_round", "down", 22600000, "up", 22600000,
                     "verdict", "shifted & empty < truth, as \"expected\"");
}

/* data.h5 (vol-00 train, vol-01 and vol-02 validation) and preds/, once per test. */
static void ensure_data(void)
{
    char *data = dk_test_path("data.h5");
    struct stat sb;
    if (stat(data, &sb) != 0) {
        dk_test_write_phantoms(data, 1, 2, true);
        write_predictions(data);
    }
    free(data);
}

/* r written as results.json next to the data; caller frees the path. */
static char *fixture(json_t *r)
{
    ensure_data();
    char *path = dk_test_path("results.json");
    cr_assert_eq(json_dump_file(r, path, JSON_INDENT(1)), 0);
    json_decref(r);
    return path;
}

static int png_size(const char *path, int *w, int *h, uint8_t **rgb)
{
    png_image image = {.version = PNG_IMAGE_VERSION};
    if (!png_image_begin_read_from_file(&image, path)) return -1;
    image.format = PNG_FORMAT_RGB;
    *w = (int)image.width, *h = (int)image.height;
    *rgb = malloc(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, NULL, *rgb, 0, NULL)) return -1;
    return 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    char *text = calloc(1, 1 << 20);
    fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    return text;
}

/* How many times the w x h picture `want` appears inside the picture `in`. */
static int count_panels(const uint8_t *in, int iw, int ih, const uint8_t *want, int w, int h)
{
    int found = 0;
    for (int y0 = 0; y0 + h <= ih; y0++)
        for (int x0 = 0; x0 + w <= iw; x0++) {
            int row = 0;
            while (row < h && !memcmp(in + ((size_t)(y0 + row) * iw + x0) * 3,
                                      want + (size_t)row * w * 3, (size_t)w * 3))
                row++;
            found += row == h;
        }
    return found;
}

Test(report, writes_the_folder)
{
    char *results = fixture(results_json()), *out = dk_test_path("out"), path[600];
    dk_err err = {0};
    cr_assert_eq(dk_report_write(results, out, &err), DK_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = slurp(path);
    static const char *const names[] = {"overlay-site-a.png", "overlay-site-b.png", "curves.png"};
    for (int k = 0; k < 3; k++) {
        int w, h;
        uint8_t *rgb = NULL;
        snprintf(path, sizeof path, "%s/%s", out, names[k]);
        cr_assert_eq(png_size(path, &w, &h, &rgb), 0, "%s decodes", names[k]);
        char tag[200];
        snprintf(tag, sizeof tag, "src=\"%s\" width=%d height=%d", names[k], w, h);
        cr_assert_not_null(strstr(html, tag), "index.html has <img %s>", tag);
        /* 5 panels of at least 160 pixels (the 32-voxel side enlarged) in a row */
        if (k < 2) cr_assert(w >= 5 * 160 && h >= 160, "%s: %d x %d", names[k], w, h);
        free(rgb);
    }
    snprintf(path, sizeof path, "%s/results.json", out);
    cr_assert_eq(access(path, R_OK), 0, "a copy of results.json");
    /* the table: values, best per column in bold, inf and – for empty predictions */
    cr_assert_not_null(strstr(html, "<td><b>1.000</b></td><td><b>0.00</b></td>"));
    cr_assert_not_null(strstr(html, "<td>0.654</td><td>2.75</td><td>0.644</td><td>3.75</td>"));
    cr_assert_not_null(strstr(html, "<td>0.000</td><td>inf</td>"));
    cr_assert_not_null(strstr(html, "shifted &lt;4&gt;"), "titles escaped");
    cr_assert_not_null(strstr(html, "shifted &amp; empty &lt; truth, as &quot;expected&quot;"));
    cr_assert_not_null(strstr(html, "<td>1.13 MB</td><td>1.13 MB</td><td>5.0 %</td>"));
    cr_assert_not_null(strstr(html, "clinical-4.5mm"));
    cr_assert_null(strstr(html, "<script"));
    free(html);
    free(out);
    free(results);
}

Test(report, ground_truth_panel_shows_the_labels)
{
    char *results = fixture(results_json()), *out = dk_test_path("out"), path[600];
    cr_assert_eq(dk_report_write(results, out, NULL), DK_OK);
    /* site-a: vol-01 (its first validation volume) at the z slice with the most labels */
    char *data = dk_test_path("data.h5");
    dk_dataset *ds = dk_dataset_open(data, NULL);
    dk_volume v = {0};
    cr_assert_eq(dk_dataset_read(ds, 1, &v, NULL), DK_OK);
    int busiest = 0;
    long long most = -1;
    for (int z = 0; z < v.dims[0]; z++) {
        long long n = 0;
        for (int i = 0; i < v.dims[1] * v.dims[2]; i++)
            n += v.label[(size_t)z * v.dims[1] * v.dims[2] + i] > 0;
        if (n > most) most = n, busiest = z;
    }
    dk_show_options o;
    dk_show_defaults(&o);
    o.slice = busiest, o.alpha = 0.5f, o.min_side = 160;
    uint8_t *truth, *plain, *picture;
    int w, h, pw, ph;
    cr_assert_eq(dk_show_render(&v, &o, &truth, &w, &h, NULL), DK_OK);
    o.alpha = 0;
    cr_assert_eq(dk_show_render(&v, &o, &plain, &w, &h, NULL), DK_OK);
    snprintf(path, sizeof path, "%s/overlay-site-a.png", out);
    cr_assert_eq(png_size(path, &pw, &ph, &picture), 0);
    /* the ground truth and the "truth" method show the truth's slice in the palette;
     * the image and the "empty" method show it without labels */
    cr_assert_eq(count_panels(picture, pw, ph, truth, w, h), 2, "slice %d with its labels",
                 busiest);
    cr_assert_eq(count_panels(picture, pw, ph, plain, w, h), 2, "slice %d without labels", busiest);
    /* and the labels colour part of it: a ball voxel is blended with palette colour 1 */
    int coloured = 0;
    for (size_t i = 0; i < (size_t)w * h; i++)
        coloured += truth[i * 3] != plain[i * 3] || truth[i * 3 + 2] != plain[i * 3 + 2];
    cr_assert_gt(coloured, w * h / 50, "labels cover part of the slice");
    dk_volume_release(&v);
    dk_dataset_close(ds);
    free(truth), free(plain), free(picture), free(data), free(out), free(results);
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* dk_report_write fails with a message containing want and leaves out as it was. */
static void expect_failure(json_t *r, const char *want)
{
    char *results = fixture(r), *out = dk_test_path("out"), path[600];
    mkdir(out, 0755);
    snprintf(path, sizeof path, "%s/index.html", out);
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    dk_err err = {0};
    cr_assert_neq(dk_report_write(results, out, &err), DK_OK, "expected a failure: %s", want);
    cr_assert_not_null(strstr(err.msg, want), "message '%s' should contain '%s'", err.msg, want);
    cr_assert_not_null(strstr(err.msg, "results.json"), "names the file: %s", err.msg);
    cr_assert_eq(entries(out), 1, "nothing written next to the old index.html");
    char *html = slurp(path);
    cr_assert_str_eq(html, "old");
    free(html), free(out), free(results);
}

static json_t *method_site(json_t *r, int m, const char *site)
{
    return json_object_get(
        json_object_get(json_array_get(json_object_get(r, "methods"), m), "sites"), site);
}

Test(report, missing_field)
{
    json_t *r = results_json();
    json_object_del(r, "verdict");
    expect_failure(r, "verdict: missing");
}

Test(report, wrong_type)
{
    json_t *r = results_json();
    json_object_set_new(
        json_object_get(json_object_get(method_site(r, 1, "site-b"), "classes"), "slab"), "dice",
        json_string("high"));
    expect_failure(
        r, "methods[1].sites.site-b.classes.slab.dice: expected a number in [0, 1] or null");
}

Test(report, path_that_does_not_exist)
{
    json_t *r = results_json();
    json_object_set_new(method_site(r, 2, "site-a"), "predictions", json_string("preds/nowhere"));
    expect_failure(r, "methods[2].sites.site-a.predictions: 'preds/nowhere'");
}

Test(report, site_a_method_does_not_name)
{
    json_t *r = results_json();
    json_object_del(json_object_get(json_array_get(json_object_get(r, "methods"), 0), "sites"),
                    "site-b");
    expect_failure(r, "methods[0].sites.site-b: missing");
}

Test(report, site_that_is_not_listed)
{
    json_t *r = results_json();
    json_object_set(json_object_get(json_array_get(json_object_get(r, "methods"), 1), "sites"),
                    "site-c", method_site(r, 1, "site-a"));
    expect_failure(r, "methods[1].sites.site-c: no such site in sites");
}

Test(report, prediction_file_missing_fails_after_writing_started)
{
    /* validation passes (the folder exists); the overlay of site-b then finds no vol-02 */
    ensure_data();
    json_t *r = results_json();
    char *dir = dk_test_path("preds/partial"), *from = dk_test_path("preds/truth/vol-01.nii.gz");
    mkdir(dir, 0755);
    char to[600];
    snprintf(to, sizeof to, "%s/vol-01.nii.gz", dir);
    cr_assert_eq(link(from, to), 0);
    json_object_set_new(method_site(r, 0, "site-b"), "predictions", json_string("preds/partial"));
    json_incref(r);
    expect_failure(r, "no 'vol-02.nii.gz'");
    /* into a directory that did not exist: it does not exist afterwards either */
    char *results = fixture(r), *fresh = dk_test_path("fresh");
    cr_assert_neq(dk_report_write(results, fresh, NULL), DK_OK);
    struct stat sb;
    cr_assert_neq(stat(fresh, &sb), 0, "the directory made for the report is removed");
    free(dir), free(from), free(results), free(fresh);
}

Test(report, cli_renders_and_explains_failures)
{
    char *results = fixture(results_json()), *out = dk_test_path("cli-out"), cmd[2048], text[4096];
    snprintf(cmd, sizeof cmd, "%s report --results %s --out %s", dk_test_bin(), results, out);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 0, "%s", text);
    snprintf(cmd, sizeof cmd, "%s/index.html", out);
    cr_assert_eq(access(cmd, R_OK), 0);
    snprintf(cmd, sizeof cmd, "%s report --results %s/nothing.json --out %s", dk_test_bin(),
             dk_test_dir, out);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 1, "%s", text);
    cr_assert_not_null(strstr(text, "nothing.json"), "%s", text);
    snprintf(cmd, sizeof cmd, "%s report --out %s", dk_test_bin(), out);
    cr_assert_eq(dk_test_run(cmd, text, sizeof text), 2, "%s", text);
    free(out), free(results);
}
