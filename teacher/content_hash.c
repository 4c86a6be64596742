/* content_hash.c: SHA-256 of a teacher's and a dataset's contents (content_hash.h). */
#include "teacher/content_hash.h"

#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "content hashes feed raw float bytes: a big-endian host must swap them first");

static void put_u64(dk_sha256 *s, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    dk_sha256_update(s, b, sizeof b);
}

/* A field: its tag, its length in bytes, its bytes. */
static void put_field(dk_sha256 *s, const char *tag, const void *data, size_t n)
{
    dk_sha256_update(s, tag, strlen(tag) + 1);
    put_u64(s, n);
    dk_sha256_update(s, data, n);
}

static void put_string(dk_sha256 *s, const char *tag, const char *text)
{
    put_field(s, tag, text, strlen(text));
}

static void put_classes(dk_sha256 *s, const dk_classes *classes)
{
    put_u64(s, (uint64_t)classes->count);
    for (int c = 0; c < classes->count; c++)
        put_string(s, "class", classes->names[c]);
}

dk_status dk_content_hash_teacher(const char *architecture_json, const dk_params *params,
                                  const dk_classes *classes, const double training_spacing[3],
                                  char hex[DK_SHA256_HEX], dk_err *err)
{
    dk_sha256 s;
    dk_status st = dk_sha256_init(&s, err);
    if (st != DK_OK) return st;
    put_string(&s, "dualkd-teacher-1", "");
    put_string(&s, "architecture", architecture_json);
    put_u64(&s, (uint64_t)params->count);
    for (int i = 0; i < params->count; i++) {
        const dk_tensor *v = &params->items[i]->value;
        const uint64_t shape[5] = {v->n, v->c, v->d, v->h, v->w};
        put_string(&s, "param", params->items[i]->name);
        put_field(&s, "shape", shape, sizeof shape);
        put_field(&s, "values", v->data, dk_tensor_numel(v) * sizeof(float));
    }
    put_classes(&s, classes);
    put_field(&s, "training_spacing", training_spacing, 3 * sizeof(double));
    return dk_sha256_final_hex(&s, hex, err);
}

static void put_volume(dk_sha256 *s, const dk_volume *v)
{
    const uint64_t dims[3] = {(uint64_t)v->dims[0], (uint64_t)v->dims[1], (uint64_t)v->dims[2]};
    size_t n = dk_volume_voxels(v);
    put_string(s, "volume", v->id);
    put_string(s, "split", v->split);
    put_field(s, "dims", dims, sizeof dims);
    put_field(s, "spacing", v->spacing, sizeof v->spacing);
    put_field(s, "origin", v->origin, sizeof v->origin);
    put_field(s, "direction", v->direction, sizeof v->direction);
    put_field(s, "image", v->image, n * sizeof(float));
    if (v->label) put_field(s, "label", v->label, n);
}

dk_status dk_content_hash_dataset(dk_dataset *ds, char hex[DK_SHA256_HEX], dk_err *err)
{
    dk_sha256 s;
    dk_status st = dk_sha256_init(&s, err);
    if (st != DK_OK) return st;
    put_string(&s, "dualkd-dataset-1", "");
    put_classes(&s, dk_dataset_classes(ds));
    int count = dk_dataset_count(ds);
    put_u64(&s, (uint64_t)count);
    for (int i = 0; st == DK_OK && i < count; i++) {
        dk_volume v;
        st = dk_dataset_read(ds, i, &v, err);
        if (st == DK_OK) put_volume(&s, &v);
        dk_volume_release(&v);
    }
    if (st != DK_OK) {
        dk_sha256_abort(&s);
        return st;
    }
    return dk_sha256_final_hex(&s, hex, err);
}
