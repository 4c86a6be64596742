/* test_show.c: slice pictures: orientation and aspect ratio, percentile windowing, the
 * label palette and blending, the PNG file, and `dualkd data show` end to end. */
#include <criterion/criterion.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "datasets/show.h"
#include "testutil.h"

/* A 4 x 10 x 20 volume at 3 x 0.5 x 0.5 mm: image = x index (a ramp along x), label 2
 * on the first half of the rows (y < 5) of slice z = 1. */
static void ramp_volume(dk_volume *v)
{
    dk_err err = {0};
    cr_assert_eq(dk_volume_alloc(v, "ramp", (int[3]){4, 10, 20}, true, &err), DK_OK, "%s",
                 err.msg);
    v->spacing[0] = 3;
    v->spacing[1] = v->spacing[2] = 0.5;
    for (int z = 0; z < 4; z++)
        for (int y = 0; y < 10; y++)
            for (int x = 0; x < 20; x++) {
                size_t i = ((size_t)z * 10 + y) * 20 + x;
                v->image[i] = (float)x;
                v->label[i] = (z == 1 && y < 5) ? 2 : 0;
            }
}

Test(show, aspect_ratio_follows_the_voxel_spacing)
{
    dk_volume v;
    ramp_volume(&v);
    dk_show_options o;
    dk_show_defaults(&o);
    o.min_side = 1;
    uint8_t *rgb;
    int w, h;
    dk_err err = {0};
    /* axis z: rows y (5 mm), columns x (10 mm), 0.5 mm pixels */
    cr_assert_eq(dk_show_render(&v, &o, &rgb, &w, &h, &err), DK_OK, "%s", err.msg);
    cr_assert(w == 20 && h == 10, "%d x %d", w, h);
    free(rgb);
    /* axis x: rows y (5 mm), columns z (4 slices of 3 mm = 12 mm): thick slices stretched */
    o.axis = 2;
    cr_assert_eq(dk_show_render(&v, &o, &rgb, &w, &h, &err), DK_OK, "%s", err.msg);
    cr_assert(w == 24 && h == 10, "%d x %d", w, h);
    /* each 3 mm slice is 6 pixels wide: columns 6..11 are z = 1, labelled in rows < 5 */
    uint8_t colour[3];
    dk_show_palette(2, colour);
    const uint8_t *in = rgb + ((size_t)2 * w + 8) * 3, *out = rgb + ((size_t)2 * w + 4) * 3;
    cr_assert_neq(memcmp(in, out, 3), 0, "overlay only on the labelled slice");
    cr_assert_eq(out[0], out[1], "unlabelled pixels are grey");
    free(rgb);
    /* min_side enlarges by an integer factor */
    o.min_side = 100;
    cr_assert_eq(dk_show_render(&v, &o, &rgb, &w, &h, &err), DK_OK, "%s", err.msg);
    cr_assert(h >= 100 && w * 10 == h * 24, "%d x %d", w, h);
    free(rgb);
    dk_volume_release(&v);
}

Test(show, window_palette_and_blending)
{
    dk_volume v;
    ramp_volume(&v);
    dk_show_options o;
    dk_show_defaults(&o);
    o.min_side = 1;
    o.slice = 1;
    o.alpha = 0.5f;
    uint8_t *rgb;
    int w, h;
    cr_assert_eq(dk_show_render(&v, &o, &rgb, &w, &h, NULL), DK_OK);
    /* row 8 is unlabelled: the ramp goes from black (1st percentile) to white (99th) */
    const uint8_t *row = rgb + (size_t)8 * w * 3;
    cr_assert_eq(row[0], 0);
    cr_assert_eq(row[(w - 1) * 3], 255);
    for (int x = 1; x < w; x++) cr_assert_geq(row[x * 3], row[(x - 1) * 3]);
    /* row 2 is labelled 2: half grey, half the class colour */
    uint8_t colour[3];
    dk_show_palette(2, colour);
    const uint8_t *px = rgb + ((size_t)2 * w + (w - 1)) * 3;
    for (int c = 0; c < 3; c++)
        cr_assert(abs(px[c] - (int)(0.5 * 255 + 0.5 * colour[c])) <= 1, "channel %d: %d", c,
                  px[c]);
    free(rgb);
    /* palette: fixed and distinct for the knee classes */
    uint8_t a[3], b[3];
    for (int i = 1; i <= 4; i++)
        for (int j = i + 1; j <= 4; j++) {
            dk_show_palette(i, a);
            dk_show_palette(j, b);
            cr_assert_neq(memcmp(a, b, 3), 0, "classes %d and %d share a colour", i, j);
        }
    dk_volume_release(&v);
}

Test(show, bad_axis_or_slice_is_named)
{
    dk_volume v;
    ramp_volume(&v);
    dk_show_options o;
    dk_show_defaults(&o);
    uint8_t *rgb;
    int w, h;
    dk_err err = {0};
    o.slice = 4;
    cr_assert_eq(dk_show_render(&v, &o, &rgb, &w, &h, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "slice 4") && strstr(err.msg, "0..3"), "%s", err.msg);
    o.slice = -1;
    o.axis = 3;
    cr_assert_eq(dk_show_render(&v, &o, &rgb, &w, &h, &err), DK_EINVAL);
    cr_assert(strstr(err.msg, "axis 3"), "%s", err.msg);
    dk_volume_release(&v);
}

/* Width and height from a PNG's signature and IHDR chunk, read byte by byte. */
static void png_header(const char *path, unsigned *w, unsigned *h)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t head[24];
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fread(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    cr_assert_eq(memcmp(head, signature, 8), 0, "PNG signature");
    cr_assert_eq(memcmp(head + 12, "IHDR", 4), 0);
    *w = (unsigned)head[16] << 24 | head[17] << 16 | head[18] << 8 | head[19];
    *h = (unsigned)head[20] << 24 | head[21] << 16 | head[22] << 8 | head[23];
}

Test(show, png_file_reads_back)
{
    dk_volume v;
    ramp_volume(&v);
    dk_show_options o;
    dk_show_defaults(&o);
    o.axis = 2;
    char *dir = dk_test_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/slice.png", dir);
    dk_err err = {0};
    cr_assert_eq(dk_show_png(&v, &o, path, &err), DK_OK, "%s", err.msg);
    unsigned w, h;
    png_header(path, &w, &h);
    cr_assert(w * 10 == h * 24 && h >= 480, "%u x %u", w, h);
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    cr_assert(png_image_begin_read_from_file(&image, path), "%s", image.message);
    cr_assert(image.width == w && image.height == h);
    png_image_free(&image);
    snprintf(path, sizeof path, "%s/no-such-dir/slice.png", dir);
    cr_assert_eq(dk_show_png(&v, &o, path, &err), DK_EIO);
    cr_assert(strstr(err.msg, "no-such-dir"), "%s", err.msg);
    dk_volume_release(&v);
    dk_test_rmtree(dir);
    free(dir);
}

Test(cli, data_show_draws_a_synthetic_volume, .timeout = 300)
{
    char *dir = dk_test_tmpdir();
    char cmd[2048], out[8192], png[512];
    snprintf(cmd, sizeof cmd,
             "%s data synth --profile clinical-4.5mm --labelled 1 --seed 4 --quiet --out %s/s.h5",
             dk_test_bin(), dir);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(png, sizeof png, "%s/coronal.png", dir);
    snprintf(cmd, sizeof cmd, "%s data show %s/s.h5 --volume knee-0000 --axis x --out %s",
             dk_test_bin(), dir, png);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    unsigned w, h;
    png_header(png, &w, &h);
    /* slices across, rows down, in mm (about 45 x 57.6: a clinical scan's field of view
     * varies per scan) */
    snprintf(cmd, sizeof cmd, "%s/s.h5", dir);
    dk_dataset *ds = dk_dataset_open(cmd, NULL);
    dk_volume v;
    cr_assert(ds && dk_dataset_read(ds, 0, &v, NULL) == DK_OK);
    double across = v.dims[0] * v.spacing[0], down = v.dims[1] * v.spacing[1];
    cr_assert(fabs(w * down - h * across) < h * 0.5, "%u x %u for %.1f x %.1f mm", w, h, across,
              down);
    dk_volume_release(&v);
    dk_dataset_close(ds);
    snprintf(cmd, sizeof cmd, "%s data show %s/s.h5 --volume nope --out %s", dk_test_bin(), dir,
             png);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "nope"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s data show %s/s.h5 --axis w --out %s", dk_test_bin(), dir, png);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s data show %s/s.h5 --slice 99 --out %s", dk_test_bin(), dir,
             png);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "slice 99"), "%s", out);
    dk_test_rmtree(dir);
    free(dir);
}
