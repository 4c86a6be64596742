/* test_components.c: the largest connected component per class (datasets/components.h):
 * smaller pieces of a class become background, other classes keep theirs, and
 * diagonal neighbours are not connected (6-connectivity). */
#include <criterion/criterion.h>
#include <string.h>

#include "datasets/components.h"

Test(components, smaller_pieces_of_each_class_become_background)
{
    int d[3] = {3, 6, 6};
    uint8_t l[108] = {0};
    for (int i = 0; i < 8; i++) l[i] = 1;          /* class 1: 8 voxels in row 0..1 */
    l[36 + 6 * 5 + 5] = 1;                         /* class 1: one stray voxel */
    l[72 + 6 * 3 + 3] = 2;                         /* class 2: a single voxel, its largest */
    l[72 + 6 * 4 + 4] = 2;                         /* class 2: diagonal to it: separate */
    long long removed = -1;
    cr_assert_eq(dk_keep_largest_components(l, d, 3, &removed, NULL), DK_OK);
    cr_expect_eq(removed, 2);
    cr_expect_eq(l[36 + 35], 0);
    cr_expect_eq(l[72 + 21], 2, "the first of two equal components is kept");
    cr_expect_eq(l[72 + 28], 0);
    for (int i = 0; i < 8; i++) cr_expect_eq(l[i], 1);
}
