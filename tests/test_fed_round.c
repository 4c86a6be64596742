/* test_fed_round.c: the federation coordinator on a real SQLite file and real
 * U-Net checkpoints: rounds closing on quorum and at the deadline (a site that
 * never reports does not stall), refusals that never reach the global model,
 * status JSON, and crash safety: a child process is SIGKILLed at named points
 * of a two-round federation, the parent reopens and finishes, and the final
 * global equals that of an uninterrupted run bit for bit.
 *
 * The crash points are a compile-time seam: this file compiles the
 * coordinator's sources itself with DK_FED_CRASH_POINT defined, so the library
 * (and its public API) carries no hook. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *crash_at; /* the point to die at, NULL: run through */
static int crash_countdown;  /* die at this hit of it */

static void crash_point(const char *name)
{
    if (crash_at && strcmp(name, crash_at) == 0 && --crash_countdown == 0) raise(SIGKILL);
}
#define DK_FED_CRASH_POINT(name) crash_point(name)
#include "httpapi/fed_aggregate.c"
#include "httpapi/fed_round.c"
#include "httpapi/fed_status.c"

#include "distill/checkpoint.h"
#include "distill/half.h"
#include "distill/unet.h"
#include "testutil.h"

TestSuite(fed_round, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

/* A small real U-Net as the initial student. */
static char *write_initial(void)
{
    dk_unet_config cfg = dk_unet_config_default(1, 2);
    cfg.levels = 2;
    cfg.base_width = 2;
    dk_err err = {0};
    dk_unet *net = dk_unet_create(&cfg, 42, &err);
    cr_assert_not_null(net, "%s", err.msg);
    char *arch = dk_unet_config_to_json(&cfg), *path = dk_test_path("initial.h5");
    cr_assert_eq(dk_checkpoint_save(path, arch, dk_unet_params(net), NULL, NULL, &err), DK_OK, "%s",
                 err.msg);
    free(arch);
    dk_unet_free(net);
    return path;
}

/* A site's update: one wire tensor per parameter of like, deterministic in seed,
 * values uniform in [-scale, scale), float16 on the wire when half. */
typedef struct update {
    dk_fed_wire_tensor t[64];
    void *data[64];
    int count;
} update;

static void make_update(update *u, const dk_fed_model *like, unsigned seed, float scale, bool half)
{
    memset(u, 0, sizeof *u);
    cr_assert(like->count <= 64);
    for (int p = 0; p < like->count; p++) {
        const dk_tensor *v = &like->params[p].value;
        size_t n = dk_tensor_numel(v);
        float *f = malloc(n * sizeof *f);
        dk_test_fill_uniform(f, n, seed * 131 + (unsigned)p, -scale, scale);
        if (half) {
            uint16_t *h = malloc(n * sizeof *h);
            for (size_t i = 0; i < n; i++)
                h[i] = dk_half_from_float(f[i]);
            free(f);
            u->data[p] = h;
        } else {
            u->data[p] = f;
        }
        u->t[p] = (dk_fed_wire_tensor){.name = like->params[p].name,
                                       .dtype = half ? DK_FED_FLOAT16 : DK_FED_FLOAT32,
                                       .rank = 5,
                                       .data = u->data[p],
                                       .nbytes = n * (half ? 2 : 4),
                                       .dims = {v->n, v->c, v->d, v->h, v->w}};
    }
    u->count = like->count;
}

static void free_update(update *u)
{
    for (int p = 0; p < u->count; p++)
        free(u->data[p]);
}

/* The value of element i of tensor p of an update, as the coordinator sees it. */
static double update_value(const update *u, int p, size_t i)
{
    if (u->t[p].dtype == DK_FED_FLOAT16) return dk_half_to_float(((uint16_t *)u->data[p])[i]);
    return ((float *)u->data[p])[i];
}

typedef struct fixture {
    dk_fed_store *store;
    dk_fed_coord *coord;
    dk_fed_model initial;
    char *initial_path;
} fixture;

static void open_fixture(fixture *f, const char *sub, int64_t now)
{
    char name[64];
    snprintf(name, sizeof name, "%s.db", sub);
    char *db = dk_test_path(name), *dir = dk_test_path(sub);
    dk_err err = {0};
    cr_assert_eq(dk_fed_store_open_sqlite(db, &f->store, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_fed_coord_open(dir, f->store, now, &f->coord, &err), DK_OK, "%s", err.msg);
    free(db);
    free(dir);
}

static void close_fixture(fixture *f)
{
    dk_fed_coord_close(f->coord);
    dk_fed_store_close(f->store);
    f->coord = NULL, f->store = NULL;
}

static void setup(fixture *f, const char *sub, int rounds, int quorum, int n_sites)
{
    memset(f, 0, sizeof *f);
    f->initial_path = write_initial();
    cr_assert_eq(dk_fed_model_load(f->initial_path, &f->initial, NULL), DK_OK);
    open_fixture(f, sub, 1000);
    dk_fed_verdict v;
    dk_err err = {0};
    dk_fed_create_req req = {"knee", rounds, quorum, 100, f->initial_path};
    cr_assert_eq(dk_fed_create(f->coord, &req, 1000, &v, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(v.kind, DK_FED_ACCEPTED, "%s", v.reason);
    for (int s = 0; s < n_sites; s++) {
        char site[8] = {(char)('a' + s), 0};
        cr_assert_eq(dk_fed_join(f->coord, "knee", site, 1000, &v, &err), DK_OK, "%s", err.msg);
        cr_assert_eq(v.kind, DK_FED_ACCEPTED, "%s", v.reason);
    }
}

static void teardown(fixture *f)
{
    close_fixture(f);
    dk_fed_model_release(&f->initial);
    free(f->initial_path);
}

static dk_fed_verdict submit(fixture *f, const char *site, int round, int64_t labelled,
                             const update *u, int64_t now)
{
    dk_fed_submission s = {"knee", site, round, labelled, NAN, 1000, u->t, u->count};
    dk_fed_verdict v;
    dk_err err = {0};
    cr_assert_eq(dk_fed_submit(f->coord, &s, now, &v, &err), DK_OK, "%s", err.msg);
    return v;
}

static dk_fed_round_row get_round(fixture *f, int index)
{
    dk_fed_round_row r;
    dk_err err = {0};
    cr_assert_eq(f->store->ops->get_round(f->store, "knee", index, &r, &err), DK_OK, "%s", err.msg);
    return r;
}

/* Assert that the result of round `index` is initial + sum(l_i u_i) / sum(l_i). */
static void expect_mean(fixture *f, int index, const update *const *ups, const int64_t *labelled,
                        int n)
{
    dk_fed_round_row r = get_round(f, index);
    cr_assert_eq(r.state, DK_ROUND_CLOSED);
    dk_fed_model got;
    cr_assert_eq(dk_fed_model_load(r.result_path, &got, NULL), DK_OK);
    double total = 0;
    for (int s = 0; s < n; s++)
        total += (double)labelled[s];
    for (int p = 0; p < got.count; p++) {
        size_t numel = dk_tensor_numel(&got.params[p].value);
        for (size_t i = 0; i < numel; i++) {
            double want = f->initial.params[p].value.data[i], sum = 0;
            for (int s = 0; s < n; s++)
                sum += (double)labelled[s] * update_value(ups[s], p, i);
            if (n) want += sum / total;
            float g = got.params[p].value.data[i];
            cr_assert(fabs(g - want) <= 1e-6 * fmax(1, fabs(want)), "%s[%zu]: %.9g, want %.9g",
                      got.params[p].name, i, g, want);
        }
    }
    dk_fed_model_release(&got);
}

Test(fed_round, a_quorum_closes_the_round_with_the_labelled_weighted_mean)
{
    fixture f;
    setup(&f, "fed", 2, 3, 3);
    update ua, ub, uc;
    make_update(&ua, &f.initial, 1, 0.01f, false);
    make_update(&ub, &f.initial, 2, 0.01f, true);
    make_update(&uc, &f.initial, 3, 0.01f, false);
    cr_assert_eq(submit(&f, "a", 0, 2, &ua, 1001).kind, DK_FED_ACCEPTED);
    cr_assert_eq(submit(&f, "b", 0, 5, &ub, 1002).kind, DK_FED_ACCEPTED);
    cr_assert_eq(get_round(&f, 0).state, DK_ROUND_OPEN);
    dk_fed_verdict v = submit(&f, "c", 0, 1, &uc, 1003);
    cr_assert_eq(v.kind, DK_FED_ACCEPTED, "%s", v.reason);
    cr_assert(v.round_closed);
    const update *ups[3] = {&ua, &ub, &uc};
    expect_mean(&f, 0, ups, (int64_t[]){2, 5, 1}, 3);
    dk_fed_round_row r1 = get_round(&f, 1);
    cr_assert_eq(r1.state, DK_ROUND_OPEN);
    cr_assert_str_eq(r1.base_sha256, get_round(&f, 0).result_sha256);

    char path[DK_FED_PATH_MAX], sha[DK_FED_SHA_HEX];
    int round;
    dk_err err = {0};
    cr_assert_eq(dk_fed_fetch_global(f.coord, "knee", "a", 1004, path, sha, &round, &v, &err),
                 DK_OK);
    cr_assert_eq(round, 1);
    cr_assert_str_eq(sha, r1.base_sha256);
    free_update(&ua), free_update(&ub), free_update(&uc);
    teardown(&f);
}

Test(fed_round, a_site_that_never_reports_does_not_stall_the_round)
{
    fixture f;
    setup(&f, "fed", 2, 3, 3);
    update ua, ub;
    make_update(&ua, &f.initial, 1, 0.01f, false);
    make_update(&ub, &f.initial, 2, 0.01f, false);
    cr_assert_eq(submit(&f, "a", 0, 4, &ua, 1010).kind, DK_FED_ACCEPTED);
    cr_assert_eq(submit(&f, "b", 0, 1, &ub, 1020).kind, DK_FED_ACCEPTED);
    cr_assert_eq(dk_fed_tick(f.coord, "knee", 1099, NULL), DK_OK);
    cr_assert_eq(get_round(&f, 0).state, DK_ROUND_OPEN, "before the deadline (1000 + 100)");
    /* c reports at the deadline: too late, and its own request closes the round */
    dk_fed_verdict late = submit(&f, "c", 0, 9, &ua, 1100);
    cr_assert_eq(late.kind, DK_FED_CONFLICT);
    cr_assert(strstr(late.reason, "round 0, which is closed; round 1 is open"), "%s", late.reason);
    const update *ups[2] = {&ua, &ub};
    expect_mean(&f, 0, ups, (int64_t[]){4, 1}, 2);
    cr_assert_eq(get_round(&f, 1).opened_at, 1100);

    /* round 1: nobody reports; the global carries over unchanged */
    cr_assert_eq(dk_fed_tick(f.coord, "knee", 1200, NULL), DK_OK);
    dk_fed_round_row r1 = get_round(&f, 1);
    cr_assert_eq(r1.state, DK_ROUND_CLOSED);
    dk_fed_model before, after;
    cr_assert_eq(dk_fed_model_load(get_round(&f, 0).result_path, &before, NULL), DK_OK);
    cr_assert_eq(dk_fed_model_load(r1.result_path, &after, NULL), DK_OK);
    for (int p = 0; p < before.count; p++)
        cr_assert_arr_eq(before.params[p].value.data, after.params[p].value.data,
                         dk_tensor_numel(&before.params[p].value) * sizeof(float));
    dk_fed_verdict v = submit(&f, "a", 1, 4, &ua, 1201);
    cr_assert_eq(v.kind, DK_FED_CONFLICT);
    cr_assert(strstr(v.reason, "finished its 2 rounds"), "%s", v.reason);
    dk_fed_model_release(&before), dk_fed_model_release(&after);
    free_update(&ua), free_update(&ub);
    teardown(&f);
}

Test(fed_round, refused_updates_never_reach_the_global_model)
{
    fixture f;
    setup(&f, "fed", 2, 4, 4);
    update good[4], nan_u, big;
    for (int s = 0; s < 4; s++)
        make_update(&good[s], &f.initial, 10 + s, 0.01f, false);
    make_update(&nan_u, &f.initial, 20, 0.01f, false);
    ((float *)nan_u.data[1])[0] = NAN;
    make_update(&big, &f.initial, 21, 1.0f, false);

    dk_fed_verdict v = submit(&f, "a", 0, 3, &nan_u, 1001);
    cr_assert_eq(v.kind, DK_FED_BAD_REQUEST);
    cr_assert(strstr(v.reason, "NaN"), "%s", v.reason);
    update shaped = good[0];
    shaped.t[0].dims[4] += 1;
    v = submit(&f, "a", 0, 3, &shaped, 1002);
    cr_assert_eq(v.kind, DK_FED_BAD_REQUEST);
    cr_assert(strstr(v.reason, shaped.t[0].name) && strstr(v.reason, "has shape"), "%s", v.reason);
    v = submit(&f, "a", 1, 3, &good[0], 1003);
    cr_assert_eq(v.kind, DK_FED_CONFLICT);
    cr_assert(strstr(v.reason, "has not opened"), "%s", v.reason);
    v = submit(&f, "a", 0, 0, &good[0], 1003);
    cr_assert_eq(v.kind, DK_FED_BAD_REQUEST, "no labelled volumes, no weight");
    v = submit(&f, "stranger", 0, 3, &good[0], 1003);
    cr_assert_eq(v.kind, DK_FED_FORBIDDEN);
    dk_fed_submission other = {"hip", "a", 0, 3, NAN, 10, good[0].t, good[0].count};
    cr_assert_eq(dk_fed_submit(f.coord, &other, 1003, &v, NULL), DK_OK);
    cr_assert_eq(v.kind, DK_FED_NOT_FOUND);

    cr_assert_eq(submit(&f, "a", 0, 3, &good[0], 1004).kind, DK_FED_ACCEPTED);
    v = submit(&f, "a", 0, 3, &good[1], 1005);
    cr_assert_eq(v.kind, DK_FED_CONFLICT);
    cr_assert(strstr(v.reason, "already has an accepted update"), "%s", v.reason);
    cr_assert_eq(submit(&f, "b", 0, 1, &good[1], 1006).kind, DK_FED_ACCEPTED);
    cr_assert_eq(submit(&f, "c", 0, 2, &good[2], 1007).kind, DK_FED_ACCEPTED);
    v = submit(&f, "d", 0, 2, &big, 1008); /* ~100x the others' norm */
    cr_assert_eq(v.kind, DK_FED_BAD_REQUEST);
    cr_assert(strstr(v.reason, "median"), "%s", v.reason);
    cr_assert_eq(dk_fed_tick(f.coord, "knee", 1100, NULL), DK_OK);
    const update *ups[3] = {&good[0], &good[1], &good[2]};
    expect_mean(&f, 0, ups, (int64_t[]){3, 1, 2}, 3);
    v = submit(&f, "d", 0, 2, &good[3], 1101);
    cr_assert_eq(v.kind, DK_FED_CONFLICT);
    cr_assert(strstr(v.reason, "round 0, which is closed"), "%s", v.reason);

    dk_fed_update_row *rows;
    int n;
    cr_assert_eq(f.store->ops->list_updates(f.store, "knee", 0, false, &rows, &n, NULL), DK_OK);
    cr_assert_eq(n, 9, "every refusal by a member is recorded with its reason");
    free(rows);
    for (int s = 0; s < 4; s++)
        free_update(&good[s]);
    free_update(&nan_u), free_update(&big);
    teardown(&f);
}

Test(fed_round, status_reports_rounds_sites_and_traffic)
{
    fixture f;
    setup(&f, "fed", 3, 2, 3);
    update ua;
    make_update(&ua, &f.initial, 1, 0.01f, false);
    dk_fed_submission s = {"knee", "a", 0, 2, 0.75, 4096, ua.t, ua.count};
    dk_fed_verdict v;
    cr_assert_eq(dk_fed_submit(f.coord, &s, 1001, &v, NULL), DK_OK);
    cr_assert_eq(v.kind, DK_FED_ACCEPTED, "%s", v.reason);
    cr_assert_eq(dk_fed_note_download(f.coord, "knee", "b", 0, 5000, NULL), DK_OK);
    cr_assert_eq(dk_fed_note_download(f.coord, "knee", "stranger", 0, 5000, NULL), DK_EINVAL);
    json_t *status;
    dk_err err = {0};
    cr_assert_eq(dk_fed_status_json(f.coord, "knee", 1050, &status, &v, &err), DK_OK, "%s",
                 err.msg);
    char *text = json_dumps(status, JSON_COMPACT);
    json_t *r0 = json_array_get(json_object_get(status, "rounds_history"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(r0, "state")), "open", "%s", text);
    cr_assert_eq(json_integer_value(json_object_get(r0, "deadline_at")), 1100);
    json_t *rep = json_array_get(json_object_get(r0, "reported"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(rep, "site")), "a");
    cr_assert_eq(json_real_value(json_object_get(rep, "val_dice")), 0.75);
    cr_assert_eq(json_array_size(json_object_get(r0, "missing")), 2, "%s", text);
    json_t *traffic = json_object_get(r0, "traffic");
    cr_assert_eq(json_array_size(traffic), 2, "%s", text);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(traffic, 0), "bytes_up")), 4096);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(traffic, 1), "bytes_down")),
                 5000);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(status, "architecture"), "kind")),
        "unet3d", "%s", text);
    cr_assert_null(strstr(text, dk_test_dir), "no server paths in the status: %s", text);
    free(text);
    json_decref(status);
    cr_assert_eq(dk_fed_status_json(f.coord, "hip", 1050, &status, &v, NULL), DK_OK);
    cr_assert_eq(v.kind, DK_FED_NOT_FOUND);
    free_update(&ua);
    teardown(&f);
}

Test(fed_round, create_refuses_bad_requests)
{
    fixture f;
    setup(&f, "fed", 2, 1, 0);
    dk_fed_verdict v;
    dk_fed_create_req again = {"knee", 2, 1, 100, f.initial_path};
    cr_assert_eq(dk_fed_create(f.coord, &again, 1001, &v, NULL), DK_OK);
    cr_assert_eq(v.kind, DK_FED_CONFLICT);
    dk_fed_create_req bad_name = {"../etc", 2, 1, 100, f.initial_path};
    cr_assert_eq(dk_fed_create(f.coord, &bad_name, 1001, &v, NULL), DK_OK);
    cr_assert_eq(v.kind, DK_FED_BAD_REQUEST);
    dk_fed_create_req zero = {"hip", 2, 0, 100, f.initial_path};
    cr_assert_eq(dk_fed_create(f.coord, &zero, 1001, &v, NULL), DK_OK);
    cr_assert(v.kind == DK_FED_BAD_REQUEST && strstr(v.reason, "quorum = 0"), "%s", v.reason);
    char *missing = dk_test_path("none.h5");
    dk_fed_create_req nofile = {"hip", 2, 1, 100, missing};
    cr_assert_eq(dk_fed_create(f.coord, &nofile, 1001, &v, NULL), DK_OK);
    cr_assert(v.kind == DK_FED_BAD_REQUEST && strstr(v.reason, "none.h5"), "%s", v.reason);
    free(missing);
    teardown(&f);
}

/* ---- crash safety ---------------------------------------------------------------------- */

/* Two rounds, three sites, quorum 3: round 0 closes on quorum; in round 1 site c
 * drops out and the deadline closes it. Replaying it after a crash resends
 * everything: what was acknowledged is refused as duplicate or late. */
static void run_federation(fixture *f, const char *sub)
{
    open_fixture(f, sub, 1003);
    dk_fed_verdict v;
    dk_err err = {0};
    dk_fed_create_req req = {"knee", 2, 3, 100, f->initial_path};
    cr_assert_eq(dk_fed_create(f->coord, &req, 1000, &v, &err), DK_OK, "%s", err.msg);
    const char *sites[3] = {"a", "b", "c"};
    const int64_t labelled[3] = {2, 5, 1};
    for (int s = 0; s < 3; s++)
        dk_fed_join(f->coord, "knee", sites[s], 1000, &v, &err);
    for (int round = 0; round < 2; round++)
        for (int s = 0; s < 3 - round; s++) {
            update u;
            make_update(&u, &f->initial, 100 * round + s, 0.01f, s == 1);
            submit(f, sites[s], round, labelled[s], &u, 1001 + 3 * round + s);
            free_update(&u);
        }
    cr_assert_eq(dk_fed_tick(f->coord, "knee", 2000, &err), DK_OK, "%s", err.msg);
    close_fixture(f);
}

/* The final global of the federation in sub, and a check that each site
 * counted at most once per round. */
static void final_global(fixture *f, const char *sub, dk_fed_model *out)
{
    open_fixture(f, sub, 2000);
    for (int round = 0; round < 2; round++) {
        dk_fed_update_row *rows;
        int n;
        cr_assert_eq(f->store->ops->list_updates(f->store, "knee", round, true, &rows, &n, NULL),
                     DK_OK);
        cr_assert_eq(n, 3 - round, "round %d counted %d updates", round, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++)
                cr_assert_str_neq(rows[i].site, rows[j].site);
        free(rows);
    }
    dk_fed_round_row last = get_round(f, 1);
    cr_assert_eq(last.state, DK_ROUND_CLOSED);
    cr_assert_eq(dk_fed_model_load(last.result_path, out, NULL), DK_OK);
    close_fixture(f);
}

static void crash_then_finish(const char *point, int hit, bool corrupt_orphan)
{
    fixture f = {0};
    f.initial_path = write_initial();
    cr_assert_eq(dk_fed_model_load(f.initial_path, &f.initial, NULL), DK_OK);
    dk_fed_model reference, recovered;
    run_federation(&f, "reference");
    final_global(&f, "reference", &reference);

    fflush(NULL);
    pid_t child = fork();
    cr_assert_neq(child, -1);
    if (child == 0) {
        crash_at = point;
        crash_countdown = hit;
        run_federation(&f, "crashed");
        _exit(0); /* the crash point was never reached */
    }
    int status = 0;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the child was to die at %s #%d (status 0x%x)", point, hit, status);
    if (corrupt_orphan) { /* a torn next global that no row references */
        char *orphan = dk_test_path("crashed/knee/global-0001.h5");
        FILE *fp = fopen(orphan, "wb");
        cr_assert_not_null(fp);
        fputs("not a checkpoint", fp);
        fclose(fp);
        free(orphan);
    }
    char *stray = dk_test_path("crashed/knee/round-0000/a.delta.h5.tmp-AbC123");
    FILE *fp = fopen(stray, "wb"); /* a temporary the crash could have left */
    cr_assert_not_null(fp);
    fclose(fp);
    run_federation(&f, "crashed");
    cr_assert_neq(access(stray, F_OK), 0, "the stray temporary is removed on open");
    free(stray);
    final_global(&f, "crashed", &recovered);
    cr_assert_eq(recovered.count, reference.count);
    for (int p = 0; p < reference.count; p++)
        cr_assert_arr_eq(recovered.params[p].value.data, reference.params[p].value.data,
                         dk_tensor_numel(&reference.params[p].value) * sizeof(float),
                         "%s differs after a crash at %s #%d", reference.params[p].name, point,
                         hit);
    dk_fed_model_release(&reference), dk_fed_model_release(&recovered);
    dk_fed_model_release(&f.initial);
    free(f.initial_path);
}

Test(fed_round, crash_after_a_delta_is_written_before_it_is_recorded)
{
    crash_then_finish("submit:delta-written", 2, false);
}

Test(fed_round, crash_after_an_update_is_recorded_before_the_reply)
{
    crash_then_finish("submit:recorded", 1, false);
}

Test(fed_round, crash_after_the_quorum_completing_update_is_recorded)
{
    crash_then_finish("submit:recorded", 3, false);
}

Test(fed_round, crash_while_a_round_is_aggregating)
{
    crash_then_finish("close:aggregating", 1, false);
}

Test(fed_round, crash_after_the_checkpoint_is_written_before_the_round_closes)
{
    crash_then_finish("close:checkpoint-written", 1, false);
}

Test(fed_round, crash_before_the_close_with_a_torn_orphan_checkpoint)
{
    crash_then_finish("close:checkpoint-written", 1, true);
}

Test(fed_round, crash_while_closing_the_deadline_round)
{
    crash_then_finish("close:checkpoint-written", 2, false);
}

Test(fed_round, a_stored_delta_that_changed_on_disk_stops_the_aggregation)
{
    fixture f;
    setup(&f, "fed", 2, 3, 3);
    update ua, ub;
    make_update(&ua, &f.initial, 1, 0.01f, false);
    make_update(&ub, &f.initial, 2, 0.01f, false);
    cr_assert_eq(submit(&f, "a", 0, 2, &ua, 1001).kind, DK_FED_ACCEPTED);
    cr_assert_eq(submit(&f, "b", 0, 2, &ub, 1002).kind, DK_FED_ACCEPTED);
    char *a = dk_test_path("fed/knee/round-0000/a.delta.h5");
    char *b = dk_test_path("fed/knee/round-0000/b.delta.h5");
    cr_assert_eq(rename(b, a), 0, "replace a's delta by b's, a valid checkpoint");
    dk_err err = {0};
    cr_assert_eq(dk_fed_tick(f.coord, "knee", 1100, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, "site 'a'") && strstr(err.msg, "SHA-256"), "%s", err.msg);
    cr_assert_eq(get_round(&f, 0).state, DK_ROUND_AGGREGATING, "no global from a changed file");
    cr_assert_eq(dk_fed_tick(f.coord, "knee", 1101, &err), DK_EFORMAT, "retried, refused again");
    cr_assert_eq(rename(a, b), 0);
    cr_assert_eq(dk_fed_tick(f.coord, "knee", 1102, &err), DK_ENOTFOUND, "a's delta is gone");
    cr_assert(strstr(err.msg, "a.delta.h5"), "%s", err.msg);
    free(a), free(b);
    free_update(&ua), free_update(&ub);
    teardown(&f);
}

typedef struct racer {
    fixture *f;
    const char *site;
    update *u;
    dk_fed_verdict v;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    dk_fed_submission s = {"knee", r->site, 0, 1, NAN, 10, r->u->t, r->u->count};
    if (dk_fed_submit(r->f->coord, &s, 1001, &r->v, NULL) != DK_OK) r->v.kind = -1;
    return NULL;
}

Test(fed_round, concurrent_submissions_close_the_round_once)
{
    fixture f;
    setup(&f, "fed", 2, 4, 4);
    update u[4];
    racer r[4];
    pthread_t threads[4];
    const char *sites[4] = {"a", "b", "c", "d"};
    for (int s = 0; s < 4; s++) {
        make_update(&u[s], &f.initial, 30 + s, 0.01f, false);
        r[s] = (racer){&f, sites[s], &u[s], {0}};
        cr_assert_eq(pthread_create(&threads[s], NULL, race, &r[s]), 0);
    }
    int closed = 0;
    for (int s = 0; s < 4; s++) {
        pthread_join(threads[s], NULL);
        cr_assert_eq(r[s].v.kind, DK_FED_ACCEPTED, "%s: %s", sites[s], r[s].v.reason);
        closed += r[s].v.round_closed;
    }
    cr_assert_eq(closed, 1, "exactly one submission completed the quorum");
    const update *ups[4] = {&u[0], &u[1], &u[2], &u[3]};
    expect_mean(&f, 0, ups, (int64_t[]){1, 1, 1, 1}, 4);
    for (int s = 0; s < 4; s++)
        free_update(&u[s]);
    teardown(&f);
}
