/* bench_fedavg.c: what one federated round costs the coordinator for a real
 * U-Net student: bytes on the wire per update (float16 delta), seconds per
 * accepted submission (convert, validate, write the delta durably, commit),
 * and seconds to close the round (hash and load every delta, average, write
 * the next global durably, commit). Files go to a fresh directory under $TMPDIR
 * (or /tmp), removed afterwards.
 * Usage: bench_fedavg [--sites S] [--levels L] [--width W] (default 4, 5, 8). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distill/checkpoint.h"
#include "distill/half.h"
#include "distill/unet.h"
#include "httpapi/fed_round.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(const char *what, const dk_err *err)
{
    fprintf(stderr, "bench_fedavg: %s: %s\n", what, err->msg);
    return 1;
}

/* A float16 delta of every parameter, small pseudo-random values. */
static void make_delta(const dk_fed_model *m, unsigned seed, dk_fed_wire_tensor *t, uint16_t **data)
{
    unsigned long long s = seed * 6364136223846793005ULL + 1;
    for (int p = 0; p < m->count; p++) {
        const dk_tensor *v = &m->params[p].value;
        size_t n = dk_tensor_numel(v);
        data[p] = malloc(n * sizeof **data);
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            data[p][i] =
                dk_half_from_float((float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * 0.01f);
        }
        t[p] = (dk_fed_wire_tensor){.name = m->params[p].name,
                                    .dtype = DK_FED_FLOAT16,
                                    .rank = 5,
                                    .data = data[p],
                                    .nbytes = n * 2,
                                    .dims = {v->n, v->c, v->d, v->h, v->w}};
    }
}

static int run(const char *dir, int sites, int levels, int width)
{
    dk_unet_config cfg = dk_unet_config_default(1, 4);
    cfg.levels = levels, cfg.base_width = width;
    dk_err err = {0};
    dk_unet *net = dk_unet_create(&cfg, 1, &err);
    if (!net) return fail("unet", &err);
    char initial[600], db[600], files[600];
    snprintf(initial, sizeof initial, "%s/initial.h5", dir);
    snprintf(db, sizeof db, "%s/fed.db", dir);
    snprintf(files, sizeof files, "%s/files", dir);
    char *arch = dk_unet_config_to_json(&cfg);
    dk_status st = dk_checkpoint_save(initial, arch, dk_unet_params(net), NULL, NULL, &err);
    free(arch);
    dk_unet_free(net);
    if (st) return fail("initial checkpoint", &err);

    dk_fed_store *store;
    dk_fed_coord *coord;
    dk_fed_model model;
    if (dk_fed_store_open_sqlite(db, &store, &err) ||
        dk_fed_coord_open(files, store, 0, &coord, &err) ||
        dk_fed_model_load(initial, &model, &err))
        return fail("open", &err);
    dk_fed_verdict v;
    dk_fed_create_req req = {"bench", 1, sites, 3600, initial};
    if (dk_fed_create(coord, &req, 0, &v, &err)) return fail("create", &err);
    size_t wire = 0;
    double submit_s = 0, close_s = 0;
    for (int s = 0; s < sites; s++) {
        char site[16];
        snprintf(site, sizeof site, "site%d", s);
        dk_fed_join(coord, "bench", site, 0, &v, &err);
        dk_fed_wire_tensor *t = calloc((size_t)model.count, sizeof *t);
        uint16_t **data = calloc((size_t)model.count, sizeof *data);
        make_delta(&model, (unsigned)s + 1, t, data);
        wire = 0;
        for (int p = 0; p < model.count; p++)
            wire += t[p].nbytes;
        dk_fed_submission sub = {"bench", site, 0, 1 + s, NAN, (int64_t)wire, t, model.count};
        double t0 = now();
        if (dk_fed_submit(coord, &sub, 1, &v, &err)) return fail("submit", &err);
        double t1 = now();
        if (v.kind != DK_FED_ACCEPTED) {
            fprintf(stderr, "bench_fedavg: refused: %s\n", v.reason);
            return 1;
        }
        /* the last submission also closed the round: time it separately */
        if (s + 1 < sites)
            submit_s += t1 - t0;
        else
            close_s = t1 - t0;
        for (int p = 0; p < model.count; p++)
            free(data[p]);
        free(data), free(t);
    }
    printf("student: %d levels, base width %d, %zu parameters in %d tensors\n", levels, width,
           dk_fed_model_numel(&model), model.count);
    printf("update on the wire (float16 delta): %.2f MB\n", wire / 1e6);
    printf("accepted submission: %.3f s (mean of %d)\n", submit_s / (sites - 1), sites - 1);
    printf("last submission + closing the round over %d deltas: %.3f s\n", sites, close_s);
    dk_fed_model_release(&model);
    dk_fed_coord_close(coord);
    dk_fed_store_close(store);
    return 0;
}

int main(int argc, char **argv)
{
    int sites = 4, levels = 5, width = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--sites") == 0)
            sites = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--levels") == 0)
            levels = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--width") == 0)
            width = atoi(argv[i + 1]);
    }
    if (sites < 2) sites = 2;
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bench_fedavg-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("bench_fedavg: mkdtemp");
        return 1;
    }
    int rc = run(dir, sites, levels, width);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_fedavg: could not remove %s\n", dir);
    return rc;
}
