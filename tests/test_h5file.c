/* test_h5file.c: the shared HDF5 helpers where no file format's test reaches:
 * float16 storage rounds to nearest even (HDF5's own conversion does not). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "distill/h5file.h"
#include "distill/half.h"
#include "testutil.h"

Test(h5file, half_storage_rounds_to_nearest)
{
    static const float values[6] = {1.999883f, 0.1f, 65504.0f, 1e-7f, -2.5f, 70000.0f};
    static const float expect[6] = {2.0f, 0.0999755859375f, 65504.0f, 1.1920929e-07f, -2.5f,
                                    INFINITY};
    char *dir = dk_test_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/h.h5", dir);
    dk_err err = {0};
    dk_h5_writer w;
    cr_assert_eq(dk_h5_create(path, &w, &err), DK_OK, "%s", err.msg);
    hsize_t dims[1] = {6};
    dk_h5_storage st = {.half = true};
    cr_assert_eq(dk_h5_write_array(w.file, "x", DK_H5_FLOAT32, 1, dims, values, &st, &err), DK_OK,
                 "%s", err.msg);
    cr_assert_eq(dk_h5_commit(&w, &err), DK_OK, "%s", err.msg);
    hid_t f;
    cr_assert_eq(dk_h5_open_read(path, &f, &err), DK_OK, "%s", err.msg);
    float got[6];
    cr_assert_eq(dk_h5_read_array(f, "x", DK_H5_FLOAT32, 1, dims, got, &err), DK_OK, "%s", err.msg);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(got[i], expect[i], "value %d: %.9g stored as %.9g, expected %.9g", i,
                     values[i], got[i], expect[i]);
    cr_assert_eq(dk_half_from_float(1.0f), 0x3c00);
    dk_h5_close_file(f);
    dk_test_rmtree(dir);
    free(dir);
}
