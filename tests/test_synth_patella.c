/* test_synth_patella.c: the synthetic knee's patella and the class sets: cartilage on
 * the patella's articular face only, no contact with the femur or tibia, patellar
 * height, the class sets' names and ids, determinism. The subjects are shifted so
 * that the patella lies inside the field of view (it mostly lies above and in front). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "datasets/synth_knee.h"
#include "testutil.h"

/* Subject index of seed, healthy, cleanly scanned, moved down and back by 25 and 20
 * mm so that its patella is in the box, labelled with every structure. */
static dk_knee_subject patella_in_view(uint64_t seed, uint64_t index)
{
    dk_knee_subject s = dk_test_knee_healthy(seed, index);
    s.shift[1] = 25, s.shift[2] = 20;
    s.classes = DK_KNEE_CLASSES_ANATOMY;
    return s;
}

static void render(const dk_knee_subject *s, const dk_grid *g, dk_volume *v)
{
    dk_err err = {0};
    cr_assert_eq(dk_knee_render(s, "dess", g, "t", v, &err), DK_OK, "%s", err.msg);
}

static uint8_t at(const dk_volume *v, int k, int j, int i)
{
    return v->label[((size_t)k * v->dims[1] + j) * v->dims[2] + i];
}

/* Along x (anterior -> posterior) from a patellar cartilage voxel: the first other
 * label within reach_mm in direction dir, or 255 when there is none. */
static uint8_t first_other(const dk_volume *v, int k, int j, int i, int dir, double reach_mm)
{
    int steps = (int)(reach_mm / v->spacing[2]);
    for (int s = 1; s <= steps; s++) {
        int x = i + dir * s;
        if (x < 0 || x >= v->dims[2]) return 255;
        uint8_t l = at(v, k, j, x);
        if (l != DK_KNEE_PATELLAR_CARTILAGE) return l;
    }
    return 255;
}

Test(patella, cartilage_lies_on_the_articular_face_only, .timeout = 120)
{
    dk_grid g = dk_knee_fine_grid((double[3]){0.7, 0.36, 0.36});
    for (uint64_t index = 0; index < 3; index++) {
        dk_knee_subject s = patella_in_view(3, index);
        dk_volume v;
        render(&s, &g, &v);
        size_t cartilage = 0, bone = 0, not_on_bone = 0, on_front = 0;
        for (int k = 0; k < v.dims[0]; k++)
            for (int j = 0; j < v.dims[1]; j++)
                for (int i = 0; i < v.dims[2]; i++) {
                    uint8_t l = at(&v, k, j, i);
                    bone += l == DK_KNEE_PATELLA;
                    if (l != DK_KNEE_PATELLAR_CARTILAGE) continue;
                    cartilage++;
                    /* in front (towards -x): the patella within the thickest cartilage
                     * (4.5 mm) at the steepest tilt of the face; behind: never */
                    not_on_bone += first_other(&v, k, j, i, -1, 7.0) != DK_KNEE_PATELLA;
                    on_front += first_other(&v, k, j, i, +1, 15.0) == DK_KNEE_PATELLA;
                }
        cr_assert_gt(cartilage, 5000, "subject %d: %zu patellar cartilage voxels in view",
                     (int)index, cartilage);
        cr_assert_gt(bone, 10 * cartilage / 2, "and the patella: %zu", bone);
        cr_assert_eq(on_front, 0, "subject %d: %zu cartilage voxels on the anterior face",
                     (int)index, on_front);
        cr_assert_eq(not_on_bone, 0,
                     "subject %d: %zu of %zu cartilage voxels without bone in front", (int)index,
                     not_on_bone, cartilage);
        dk_volume_release(&v);
    }
}

/* Voxels of label a with a 6-neighbour of label b. */
static size_t touching(const dk_volume *v, uint8_t a, uint8_t b)
{
    const int off[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
    size_t n = 0;
    for (int k = 1; k < v->dims[0] - 1; k++)
        for (int j = 1; j < v->dims[1] - 1; j++)
            for (int i = 1; i < v->dims[2] - 1; i++) {
                if (at(v, k, j, i) != a) continue;
                for (int d = 0; d < 6; d++)
                    if (at(v, k + off[d][0], j + off[d][1], i + off[d][2]) == b) {
                        n++;
                        break;
                    }
            }
    return n;
}

Test(patella, never_touches_femur_tibia_or_femoral_cartilage, .timeout = 120)
{
    dk_grid g = dk_knee_fine_grid((double[3]){0.7, 0.36, 0.36});
    const double flexions[3] = {0, 15, 30};
    for (uint64_t index = 0; index < 3; index++) {
        dk_knee_subject s = patella_in_view(4, index);
        s.flexion = flexions[index];
        dk_volume v;
        render(&s, &g, &v);
        size_t femur = touching(&v, DK_KNEE_PATELLA, DK_KNEE_FEMUR),
               tibia = touching(&v, DK_KNEE_PATELLA, DK_KNEE_TIBIA),
               fem_cart = touching(&v, DK_KNEE_PATELLA, DK_KNEE_FEMORAL_CARTILAGE),
               cart_femur = touching(&v, DK_KNEE_PATELLAR_CARTILAGE, DK_KNEE_FEMUR),
               cart_cart = touching(&v, DK_KNEE_PATELLAR_CARTILAGE, DK_KNEE_FEMORAL_CARTILAGE);
        size_t patella = 0;
        for (size_t i = 0; i < dk_volume_voxels(&v); i++)
            patella += v.label[i] == DK_KNEE_PATELLA;
        cr_assert_gt(patella, 20000, "flexion %.0f: the patella in view (%zu)", s.flexion, patella);
        cr_assert(femur + tibia + fem_cart + cart_femur + cart_cart == 0,
                  "flexion %.0f: patella touches femur %zu, tibia %zu, femoral cartilage %zu; "
                  "its cartilage touches femur %zu, femoral cartilage %zu",
                  s.flexion, femur, tibia, fem_cart, cart_femur, cart_cart);
        dk_volume_release(&v);
    }
}

/* Mean world y (mm, towards inferior) of the patella's voxels. */
static double patella_height_mm(const dk_volume *v)
{
    double sum = 0, n = 0;
    for (int k = 0; k < v->dims[0]; k++)
        for (int j = 0; j < v->dims[1]; j++)
            for (int i = 0; i < v->dims[2]; i++)
                if (at(v, k, j, i) == DK_KNEE_PATELLA) sum += v->origin[1] + j * v->spacing[1], n++;
    cr_assert_gt(n, 100);
    return sum / n;
}

Test(patella, rides_higher_with_a_longer_tendon, .timeout = 60)
{
    /* a grid reaching far above the box, holding the whole patella */
    dk_grid g = {.dims = {40, 120, 100}, .spacing = {1, 1, 1}, .origin = {-20, -80, -60}};
    for (uint64_t index = 0; index < 3; index++) {
        dk_knee_subject normal = patella_in_view(5, index), alta = normal;
        normal.shift[1] = normal.shift[2] = 0;
        alta.shift[1] = alta.shift[2] = 0;
        normal.patellar_height = 1.0;
        alta.patellar_height = 1.28;
        dk_volume vn, va;
        render(&normal, &g, &vn);
        render(&alta, &g, &va);
        double yn = patella_height_mm(&vn), ya = patella_height_mm(&va);
        cr_assert_lt(ya, yn - 5, "Insall-Salvati 1.28 vs 1.0: patella at %.1f vs %.1f mm", ya, yn);
        dk_volume_release(&vn);
        dk_volume_release(&va);
    }
}

Test(patella, class_sets_name_the_ids)
{
    dk_classes c;
    dk_knee_class_set_names(DK_KNEE_CLASSES_CARTILAGE, &c);
    cr_assert_eq(c.count, 4);
    const char *cart[4] = {"background", "femoral_cartilage", "tibial_cartilage",
                           "patellar_cartilage"};
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(c.names[i], cart[i]);
    cr_assert_str_eq(c.names[DK_KNEE_CART_PATELLAR], "patellar_cartilage");
    dk_knee_class_set_names(DK_KNEE_CLASSES_OAI_ZIB, &c);
    cr_assert_eq(c.count, 5);
    cr_assert_str_eq(c.names[DK_KNEE_TIBIA], "tibia");
    dk_knee_class_set_names(DK_KNEE_CLASSES_ANATOMY, &c);
    cr_assert_eq(c.count, 7);
    cr_assert_str_eq(c.names[DK_KNEE_PATELLA], "patella");
    cr_assert_str_eq(c.names[DK_KNEE_PATELLAR_CARTILAGE], "patellar_cartilage");
    dk_knee_class_set set = DK_KNEE_CLASSES_ANATOMY;
    cr_assert(dk_knee_class_set_parse("cartilage", &set) && set == DK_KNEE_CLASSES_CARTILAGE);
    cr_assert(dk_knee_class_set_parse("oai-zib", &set) && set == DK_KNEE_CLASSES_OAI_ZIB);
    cr_assert(!dk_knee_class_set_parse("OAI-ZIB", &set) && !dk_knee_class_set_parse(NULL, &set));
    cr_assert_eq(set, DK_KNEE_CLASSES_OAI_ZIB, "a bad name leaves the set alone");
}

Test(patella, class_sets_map_the_anatomy, .timeout = 60)
{
    dk_grid fine = dk_knee_fine_grid((double[3]){0.7, 0.36, 0.36});
    dk_grid g = dk_grid_respaced(&fine, (double[3]){1.4, 0.6, 0.6});
    dk_knee_subject s = patella_in_view(6, 1);
    dk_volume anatomy, oai, cart;
    render(&s, &g, &anatomy);
    s.classes = DK_KNEE_CLASSES_OAI_ZIB;
    render(&s, &g, &oai);
    s.classes = DK_KNEE_CLASSES_CARTILAGE;
    render(&s, &g, &cart);
    cr_assert_eq(memcmp(anatomy.image, cart.image, dk_volume_voxels(&cart) * sizeof(float)), 0,
                 "the class set changes labels only");
    const uint8_t to_oai[7] = {0, 1, 2, 3, 4, 0, 0}, to_cart[7] = {0, 0, 1, 0, 2, 0, 3};
    size_t seen[7] = {0};
    for (size_t i = 0; i < dk_volume_voxels(&anatomy); i++) {
        uint8_t a = anatomy.label[i];
        cr_assert_lt(a, 7);
        seen[a]++;
        cr_assert_eq(oai.label[i], to_oai[a], "voxel %zu: anatomy %d, OAI-ZIB %d", i, a,
                     oai.label[i]);
        cr_assert_eq(cart.label[i], to_cart[a], "voxel %zu: anatomy %d, cartilage %d", i, a,
                     cart.label[i]);
    }
    for (int a = 1; a < 7; a++)
        cr_assert_gt(seen[a], 100, "anatomy label %d in view", a);
    dk_volume_release(&anatomy);
    dk_volume_release(&oai);
    dk_volume_release(&cart);
}

Test(patella, deterministic_per_seed, .timeout = 60)
{
    dk_knee_subject a, b, c;
    dk_knee_subject_draw(9, 2, &a);
    dk_knee_subject_draw(9, 2, &b);
    dk_knee_subject_draw(9, 3, &c);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
    cr_assert(a.patellar_height >= 0.76 && a.patellar_height <= 1.28);
    cr_assert(a.patellar_cartilage >= 2.4 && a.patellar_cartilage <= 3.2);
    cr_assert_neq(a.patellar_height, c.patellar_height);
    cr_assert_eq(a.classes, DK_KNEE_CLASSES_OAI_ZIB, "drawn subjects default to OAI-ZIB");
    dk_profile p;
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &p, NULL), DK_OK);
    dk_knee_subject s = patella_in_view(9, 2);
    s.classes = DK_KNEE_CLASSES_CARTILAGE;
    dk_volume v1, v2;
    dk_err err = {0};
    cr_assert_eq(dk_knee_synth(&s, &p, NULL, true, "k", &v1, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_knee_synth(&s, &p, NULL, true, "k", &v2, &err), DK_OK, "%s", err.msg);
    size_t n = dk_volume_voxels(&v1), patellar = 0;
    cr_assert_eq(memcmp(v1.image, v2.image, n * sizeof(float)), 0);
    cr_assert_eq(memcmp(v1.label, v2.label, n), 0);
    for (size_t i = 0; i < n; i++) {
        cr_assert_lt(v1.label[i], DK_KNEE_CART_COUNT);
        patellar += v1.label[i] == DK_KNEE_CART_PATELLAR;
    }
    cr_assert_gt(patellar, 500, "acquired at 3.3 mm, the patellar cartilage stays: %zu", patellar);
    dk_volume_release(&v1);
    dk_volume_release(&v2);
}

Test(patella, data_synth_writes_the_chosen_class_set, .timeout = 120)
{
    char *dir = dk_test_tmpdir();
    char cmd[1024], out[8192], path[512];
    snprintf(path, sizeof path, "%s/c.h5", dir);
    snprintf(cmd, sizeof cmd,
             "%s data synth --profile clinical-4.5mm --classes cartilage --n 2 --quiet --out %s",
             dk_test_bin(), path);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "`%s` exited %d:\n%s", cmd, rc, out);
    dk_err err = {0};
    dk_dataset *ds = dk_dataset_open(path, &err);
    cr_assert_not_null(ds, "%s", err.msg);
    const dk_classes *c = dk_dataset_classes(ds);
    cr_assert_eq(c->count, 4);
    cr_assert_str_eq(c->names[1], "femoral_cartilage");
    cr_assert_str_eq(c->names[3], "patellar_cartilage");
    for (int i = 0; i < dk_dataset_count(ds); i++) {
        dk_volume v;
        cr_assert_eq(dk_dataset_read(ds, i, &v, &err), DK_OK, "%s", err.msg);
        size_t seen[4] = {0};
        for (size_t k = 0; k < dk_volume_voxels(&v); k++) {
            cr_assert_lt(v.label[k], 4);
            seen[v.label[k]]++;
        }
        /* the bones are background: cartilage is a few percent of the box */
        cr_assert_gt(seen[0], 0.9 * dk_volume_voxels(&v), "%s: background %zu", v.id, seen[0]);
        cr_assert(seen[1] > 0 && seen[2] > 0, "%s: femoral %zu tibial %zu", v.id, seen[1], seen[2]);
        dk_volume_release(&v);
    }
    dk_dataset_close(ds);
    snprintf(cmd, sizeof cmd, "%s data synth --n 1 --classes patella --out %s", dk_test_bin(),
             path);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "'patella'") && strstr(out, "cartilage"), "%s", out);
    dk_test_rmtree(dir);
    free(dir);
}
