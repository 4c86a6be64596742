/* synth_classes.c: the class sets of the synthetic knee: their names, as a dataset's
 * `classes` attribute states them, and the map from the anatomy's labels to their ids.
 * The anatomy (synth_anatomy.c, synth_patella.c) labels what each voxel is; a class
 * set decides which of those a dataset segments and which it calls background. */
#include <stdio.h>
#include <string.h>

#include "datasets/synth_anatomy.h"

static const char *const oai_zib_names[DK_KNEE_CLASS_COUNT] = {
    "background", "femur", "femoral_cartilage", "tibia", "tibial_cartilage"};
static const char *const cartilage_names[DK_KNEE_CART_COUNT] = {
    "background", "femoral_cartilage", "tibial_cartilage", "patellar_cartilage"};
static const char *const anatomy_names[DK_KNEE_ANATOMY_COUNT] = {
    "background",       "femur",   "femoral_cartilage", "tibia",
    "tibial_cartilage", "patella", "patellar_cartilage"};

/* Per anatomy label (background, femur, femoral cartilage, tibia, tibial cartilage,
 * patella, patellar cartilage): its id in each set. */
static const uint8_t oai_zib_of[KNEE_ANATOMY_COUNT] = {
    DK_KNEE_BACKGROUND,       DK_KNEE_FEMUR,      DK_KNEE_FEMORAL_CARTILAGE, DK_KNEE_TIBIA,
    DK_KNEE_TIBIAL_CARTILAGE, DK_KNEE_BACKGROUND, DK_KNEE_BACKGROUND};
static const uint8_t cartilage_of[KNEE_ANATOMY_COUNT] = {
    0, 0, DK_KNEE_CART_FEMORAL, 0, DK_KNEE_CART_TIBIAL, 0, DK_KNEE_CART_PATELLAR};

static void fill_names(dk_classes *out, const char *const *names, int count)
{
    memset(out, 0, sizeof *out);
    out->count = count;
    for (int c = 0; c < count; c++)
        snprintf(out->names[c], sizeof out->names[c], "%s", names[c]);
}

void dk_knee_classes(dk_classes *out)
{
    fill_names(out, oai_zib_names, DK_KNEE_CLASS_COUNT);
}

void dk_knee_class_set_names(dk_knee_class_set set, dk_classes *out)
{
    if (set == DK_KNEE_CLASSES_CARTILAGE)
        fill_names(out, cartilage_names, DK_KNEE_CART_COUNT);
    else if (set == DK_KNEE_CLASSES_ANATOMY)
        fill_names(out, anatomy_names, DK_KNEE_ANATOMY_COUNT);
    else
        fill_names(out, oai_zib_names, DK_KNEE_CLASS_COUNT);
}

bool dk_knee_class_set_parse(const char *name, dk_knee_class_set *out)
{
    if (!name) return false;
    if (strcmp(name, "oai-zib") == 0)
        *out = DK_KNEE_CLASSES_OAI_ZIB;
    else if (strcmp(name, "cartilage") == 0)
        *out = DK_KNEE_CLASSES_CARTILAGE;
    else if (strcmp(name, "anatomy") == 0)
        *out = DK_KNEE_CLASSES_ANATOMY;
    else
        return false;
    return true;
}

void knee_relabel(uint8_t *labels, size_t n, dk_knee_class_set set)
{
    if (set == DK_KNEE_CLASSES_ANATOMY) return;
    const uint8_t *map = set == DK_KNEE_CLASSES_CARTILAGE ? cartilage_of : oai_zib_of;
    for (size_t i = 0; i < n; i++)
        labels[i] = labels[i] < KNEE_ANATOMY_COUNT ? map[labels[i]] : 0;
}
