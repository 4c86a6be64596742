/* test_server_federation.c: federated rounds over HTTP, through the real
 * socket. The sites are Python clients (tests/fed_sites.py: requests + numpy,
 * updates written by np.savez, the global read with h5py):
 *   - 3 sites x 2 rounds on the in-process server: the global after each round
 *     equals the FedAvg computed by hand (weighted by labelled volumes, a
 *     float16 update among them); a duplicate, a late, a NaN, an infinite, a
 *     mis-shaped, an oversized, an adapter-carrying and a compressed update are
 *     refused with problem+json and never reach the model; bytes up and down
 *     per site and round in the status and /metrics match what was sent;
 *   - a site that never reports: the deadline closes the round (the ticker,
 *     not a request) with the other two;
 *   - `dualkd serve` SIGKILLed mid-round (and again with an update in flight),
 *     restarted on the same directory: the federation finishes with the same
 *     global values, bit for bit, as an uninterrupted run, no update counted
 *     twice;
 *   - `dualkd fed create` (also uploading the initial student) and `dualkd fed
 *     status` against the server. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill/checkpoint.h"
#include "distill/unet.h"
#include "serverutil.h"
#include "testutil.h"

static dk_test_env env;
static char admin[DK_TOKEN_CHARS], site[3][DK_TOKEN_CHARS];
static char *student, *fed_dir;

/* A small real U-Net as the initial student. */
static void write_student(void)
{
    dk_unet_config cfg = dk_unet_config_default(1, 2);
    cfg.levels = 2;
    cfg.base_width = 2;
    dk_err err = {0};
    dk_unet *net = dk_unet_create(&cfg, 42, &err);
    cr_assert_not_null(net, "%s", err.msg);
    char *arch = dk_unet_config_to_json(&cfg);
    student = dk_test_path("student.h5");
    cr_assert_eq(dk_checkpoint_save(student, arch, dk_unet_params(net), NULL, NULL, &err), DK_OK,
                 "%s", err.msg);
    free(arch);
    dk_unet_free(net);
}

/* Federation tokens added to the fixture's token file. */
static void add_tokens(void)
{
    dk_tokens t;
    dk_err err = {0};
    cr_assert_eq(dk_tokens_load(env.tokens, false, &t, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(dk_token_generate(admin, &err), DK_OK);
    cr_assert_eq(dk_tokens_add(&t, admin, "operator",
                               DK_SCOPE_FEDERATION | DK_SCOPE_FEDERATION_ADMIN, NULL, &err),
                 DK_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "site-%d", i + 1);
        cr_assert_eq(dk_token_generate(site[i], &err), DK_OK);
        cr_assert_eq(dk_tokens_add(&t, site[i], name, DK_SCOPE_FEDERATION, NULL, &err), DK_OK, "%s",
                     err.msg);
    }
    cr_assert_eq(dk_tokens_save(env.tokens, &t, &err), DK_OK, "%s", err.msg);
    dk_tokens_free(&t);
}

static void setup(void)
{
    dk_test_dir_setup();
    dk_test_env_setup(&env, false);
    add_tokens();
    write_student();
    fed_dir = dk_test_path("federation");
}

static void teardown(void)
{
    dk_test_env_teardown(&env);
    free(student), free(fed_dir);
    dk_test_dir_teardown();
}

TestSuite(server_federation, .init = setup, .fini = teardown, .timeout = 600);

static void run_sites(const char *mode)
{
    char cmd[16384], out[16384], base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", env.port);
    snprintf(cmd, sizeof cmd, "%s %s/tests/fed_sites.py %s %s %s %s %s %s %s", dk_test_python(),
             dk_test_source(), mode, base, admin, site[0], site[1], site[2], env.all);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s: exit %d: %s", mode, rc, out);
    cr_log_info("%s", out);
}

Test(server_federation, three_sites_two_rounds_refusals_and_a_deadline)
{
    dk_test_env_start(&env, (dk_server_config){.rate = -1,
                                               .federation_dir = fed_dir,
                                               .fed_student = student,
                                               .fed_tick_seconds = 0.2});
    run_sites("full");
    run_sites("deadline");
}

Test(server_federation, sigkill_mid_round_then_restart_finishes_identically)
{
    char cmd[16384], out[16384];
    char *work = dk_test_path("crash");
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && %s %s/tests/fed_sites.py crash %s %s %s %s %s %s %s %s %s %s", work,
             dk_test_python(), dk_test_source(), dk_test_bin(), env.teacher, env.store_dir,
             env.tokens, student, work, admin, site[0], site[1], site[2]);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "crash ok"), "%s", out);
    cr_log_info("%s", out);
    free(work);
}

Test(server_federation, without_federation_dir_the_routes_say_so)
{
    dk_test_env_start(&env, (dk_server_config){.rate = -1});
    char auth[128];
    snprintf(auth, sizeof auth, "%s", admin);
    dk_http_reply r = dk_http(&env, "GET", "/v1/federation/knee", auth, NULL);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    cr_assert(strstr(r.body, "--federation"), "%s", r.body);
    dk_http_free(&r);
}

Test(server_federation, fed_create_and_status_commands)
{
    dk_test_env_start(
        &env, (dk_server_config){.rate = -1, .federation_dir = fed_dir, .fed_student = student});
    char *op = dk_test_path("op.txt"), *s1 = dk_test_path("s1.txt"), cmd[8192], out[8192];
    FILE *f = fopen(op, "w");
    fprintf(f, "%s\n", admin);
    fclose(f);
    f = fopen(s1, "w");
    fprintf(f, "%s\n", site[0]);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "%s fed create --server http://127.0.0.1:%d --token-file %s --name knee --rounds 3 "
             "--quorum 2 --deadline 600",
             dk_test_bin(), env.port, op);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "federation 'knee' created: 3 rounds, quorum 2"), "%s", out);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out); /* again: the name is taken */
    cr_assert(strstr(out, "HTTP 409: federation 'knee' already exists"), "%s", out);
    snprintf(cmd, sizeof cmd,
             "%s fed create --server http://127.0.0.1:%d --token-file %s --name other --rounds 1 "
             "--quorum 1 --deadline 60",
             dk_test_bin(), env.port, s1);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "HTTP 403") && strstr(out, "federation-admin"), "%s", out);
    snprintf(
        cmd, sizeof cmd,
        "%s fed create --server http://127.0.0.1:%d --token-file %s --name uploaded --rounds 1 "
        "--quorum 1 --deadline 60 --student %s",
        dk_test_bin(), env.port, op, student);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "federation 'uploaded' created"), "%s", out);
    snprintf(cmd, sizeof cmd,
             "%s fed create --server http://127.0.0.1:%d --token-file %s --name junk --rounds 1 "
             "--quorum 1 --deadline 60 --student %s",
             dk_test_bin(), env.port, op, env.tokens);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "HTTP 400: initial checkpoint:"), "%s", out);
    dk_http_reply r = dk_http(&env, "POST", "/v1/federation/knee/join", site[0], NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    dk_http_free(&r);
    snprintf(cmd, sizeof cmd,
             "%s fed status --server http://127.0.0.1:%d --token-file %s --name knee",
             dk_test_bin(), env.port, s1);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(
        strstr(out, "federation knee: active, round 0 of 3, quorum 2, deadline 600 s, members 1"),
        "%s", out);
    cr_assert(strstr(out, "0      open"), "%s", out);
    snprintf(cmd, sizeof cmd,
             "%s fed status --server http://127.0.0.1:%d --token-file %s --name nope",
             dk_test_bin(), env.port, s1);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "HTTP 404: federation 'nope' does not exist"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s fed create --server http://127.0.0.1:%d --name x", dk_test_bin(),
             env.port);
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 2, "%s", out);
    free(op), free(s1);
}
