/* test_server_upload.c: the routes that take an uploaded array, through the
 * real socket: POST /v1/evaluate scores a label map against a held-out
 * sample (perfect, empty and shifted maps, the last against datasets/metrics
 * run here); POST /v1/distill queues a real `dualkd teacher precompute` child
 * whose targets equal the precompute of the same volume run in this process;
 * every bad body (bad magic, truncated header, overflowing shape, dtype
 * mismatch, Fortran order, wrong type, oversize) is a 4xx problem naming it. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/metrics.h"
#include "datasets/npy.h"
#include "distill/half.h"
#include "serverutil.h"
#include "teacher/precompute.h"
#include "testutil.h"

static dk_test_env env;

static dk_server_config upload_config(void)
{
    return (dk_server_config){.rate = -1, .binary = dk_test_bin()};
}

static void setup(void)
{
    dk_test_dir_setup();
    dk_test_env_setup(&env, false);
    dk_test_env_start(&env, upload_config());
}

static void teardown(void)
{
    dk_test_env_teardown(&env);
    dk_test_dir_teardown();
}

TestSuite(server_upload, .init = setup, .fini = teardown, .timeout = 300);

static const char *npy_type[] = {"Content-Type: application/x-npy", NULL};

/* A stored array of profile A as a decoded .npy (dtype as stored, or f4). */
static dk_npy_array fetch(const char *sample, const char *kind, bool f4)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/targets/%s/%s?profile=%s%s", sample, kind, DK_TEST_PROFILE_A,
             f4 ? "&dtype=f4" : "");
    dk_http_reply r = dk_http(&env, "GET", path, env.all, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    dk_npy_array a;
    dk_err err = {0};
    cr_assert_eq(dk_npy_decode(r.body, r.len, 0, &a, &err), DK_OK, "%s", err.msg);
    dk_http_free(&r);
    return a;
}

static dk_http_reply post_array(const char *path, const char *token, const dk_npy_array *a)
{
    void *bytes;
    size_t n;
    dk_err err = {0};
    cr_assert_eq(dk_npy_encode(a, false, &bytes, &n, &err), DK_OK, "%s", err.msg);
    dk_http_reply r = dk_http_bytes(&env, "POST", path, token, npy_type, bytes, n);
    free(bytes);
    return r;
}

/* The problem's detail after checking status and media type (caller frees). */
static char *problem(dk_http_reply *r, long status)
{
    cr_assert_eq(r->status, status, "want %ld: %ld %s", status, r->status, r->body);
    char ct[128];
    cr_assert_str_eq(dk_http_header(r, "Content-Type", ct, sizeof ct), "application/problem+json");
    json_t *j = json_loads(r->body, 0, NULL);
    cr_assert_not_null(j, "%s", r->body);
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), status);
    char *detail = strdup(json_string_value(json_object_get(j, "detail")));
    json_decref(j);
    dk_http_free(r);
    return detail;
}

static void expect_problem(dk_http_reply r, long status, const char *words)
{
    char *detail = problem(&r, status);
    cr_assert(strstr(detail, words), "'%s' not in '%s'", words, detail);
    free(detail);
}

static const char eval_path[] = "/v1/evaluate?profile=" DK_TEST_PROFILE_A "&sample=vol-03";

static json_t *evaluate(const dk_npy_array *pred)
{
    dk_http_reply r = post_array(eval_path, env.evaluate, pred);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    cr_assert_not_null(j, "%s", r.body);
    dk_http_free(&r);
    return json_object_get(j, "metrics") ? j : NULL;
}

Test(server_upload, evaluate_scores_a_held_out_sample_in_mm)
{
    dk_npy_array truth = fetch("vol-03", "label", false);
    json_t *j = evaluate(&truth); /* the truth itself: perfect */
    cr_assert_str_eq(json_string_value(json_object_get(j, "split")), "validation");
    const char *name;
    json_t *m;
    int classes = 0;
    json_object_foreach(json_object_get(j, "metrics"), name, m)
    {
        classes++;
        if (json_is_null(json_object_get(m, "empty")))
            cr_assert(json_real_value(json_object_get(m, "dice")) == 1 &&
                          json_number_value(json_object_get(m, "hd95")) == 0 &&
                          json_number_value(json_object_get(m, "assd")) == 0,
                      "%s", name);
    }
    cr_assert(classes >= 1);
    json_decref(j);
    /* nothing predicted: Dice 0 and null distances where the truth has the class */
    dk_npy_array empty = truth;
    empty.data = calloc(truth.numel, 1);
    j = evaluate(&empty);
    json_object_foreach(json_object_get(j, "metrics"), name, m)
    {
        if (!json_integer_value(json_object_get(m, "truth_voxels"))) continue;
        cr_assert_eq(json_number_value(json_object_get(m, "dice")), 0);
        cr_assert(json_is_null(json_object_get(m, "hd95")) &&
                  json_is_null(json_object_get(m, "assd")));
        cr_assert_str_eq(json_string_value(json_object_get(m, "empty")), "prediction");
    }
    json_decref(j);
    /* shifted one voxel along x: the numbers datasets/metrics gives on the sample's grid */
    uint8_t *shifted = empty.data, *t = truth.data;
    size_t nx = truth.shape[2];
    for (size_t k = 0; k < truth.numel; k++)
        shifted[k] = k % nx ? t[k - 1] : 0;
    j = evaluate(&empty);
    json_t *spacing = json_object_get(j, "spacing");
    int dims[3] = {(int)truth.shape[0], (int)truth.shape[1], (int)truth.shape[2]};
    double sp[3];
    for (int d = 0; d < 3; d++)
        sp[d] = json_number_value(json_array_get(spacing, (size_t)d));
    cr_assert(fabs(sp[0] - 3.3) < 1e-9, "the profile's anisotropic grid: %g", sp[0]);
    dk_class_metrics want[DK_MAX_CLASSES];
    dk_err err = {0};
    classes = 1 + (int)json_object_size(json_object_get(j, "metrics"));
    cr_assert_eq(dk_metrics_labels(shifted, t, dims, sp, classes, want, &err), DK_OK, "%s",
                 err.msg);
    int k = 1;
    json_object_foreach(json_object_get(j, "metrics"), name, m)
    {
        double hd95 = json_is_null(json_object_get(m, "hd95"))
                          ? want[k].hd95
                          : json_number_value(json_object_get(m, "hd95"));
        cr_assert(fabs(json_number_value(json_object_get(m, "dice")) - want[k].dice) < 1e-6, "%s",
                  name);
        cr_assert(hd95 == want[k].hd95 || fabs(hd95 - want[k].hd95) < 1e-6, "%s", name);
        k++;
    }
    json_decref(j);
    dk_npy_array_free(&empty);
    dk_npy_array_free(&truth);
}

Test(server_upload, evaluate_refusals_name_the_fault)
{
    dk_npy_array truth = fetch("vol-03", "label", false);
    dk_http_reply r = post_array("/v1/evaluate?profile=" DK_TEST_PROFILE_A, env.evaluate, &truth);
    expect_problem(r, 400, "'sample' is required; the held-out samples of profile");
    r = post_array("/v1/evaluate?profile=" DK_TEST_PROFILE_A "&sample=vol-99", env.evaluate,
                   &truth);
    expect_problem(r, 404, "the held-out ones are: vol-03");
    r = post_array("/v1/evaluate?profile=" DK_TEST_PROFILE_A "&sample=vol-00", env.evaluate,
                   &truth);
    expect_problem(r, 409, "split 'train'");
    r = post_array("/v1/evaluate?sample=vol-03", env.evaluate, &truth);
    expect_problem(r, 400, "'profile' is required");
    r = post_array(eval_path, env.all, &truth);
    expect_problem(r, 403, "needs 'evaluate'");
    r = dk_http(&env, "GET", eval_path, env.evaluate, NULL);
    char allow[64];
    cr_assert_str_eq(dk_http_header(&r, "Allow", allow, sizeof allow), "POST");
    expect_problem(r, 405, "use POST");
    r = dk_http_body(&env, "POST", eval_path, env.evaluate, NULL, "x=1");
    expect_problem(r, 415, "Content-Type: application/x-npy");
    ((uint8_t *)truth.data)[7] = 9;
    r = post_array(eval_path, env.evaluate, &truth);
    expect_problem(r, 400, "holds 9 at flat index 7");
    truth.shape[0] -= 1, truth.numel = truth.shape[0] * truth.shape[1] * truth.shape[2];
    r = post_array(eval_path, env.evaluate, &truth);
    expect_problem(r, 400, "but sample 'vol-03' has the grid");
    truth.dtype = DK_NPY_I1; /* same bytes, another dtype */
    r = post_array(eval_path, env.evaluate, &truth);
    expect_problem(r, 400, "must be a 3D (z, y, x) array of dtype u1; got dtype i1");
    dk_npy_array_free(&truth);
}

/* .npy bodies no client should send, to both upload routes. */
static const char distill[] = "/v1/distill?spacing=3.3,0.31,0.31";

static void send_raw(const char *path, const char *token, const void *bytes, size_t n,
                     const char *words)
{
    dk_http_reply r = dk_http_bytes(&env, "POST", path, token, npy_type, bytes, n);
    expect_problem(r, 400, words);
}

static size_t header_of(char *buf, const char *dict)
{
    size_t hlen = strlen(dict);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(hlen & 0xff), buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, hlen);
    return 10 + hlen;
}

Test(server_upload, malformed_npy_bodies_are_400_naming_the_fault)
{
    const struct {
        const char *path, *token;
    } routes[] = {{eval_path, env.evaluate}, {distill, env.distill}};
    char buf[512];
    for (int i = 0; i < 2; i++) {
        const char *path = routes[i].path, *token = routes[i].token;
        send_raw(path, token, "PK\x03\x04 not numpy at all", 22, "bad magic");
        size_t n = header_of(buf, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2), }");
        send_raw(path, token, buf, n - 20, "truncated header");
        n = header_of(buf, "{'descr': '|u1', 'fortran_order': False, 'shape': "
                           "(99999999999, 99999999999, 99999999999), }");
        send_raw(path, token, buf, n, "overflows");
        n = header_of(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }");
        memset(buf + n, 0, 8); /* 8 bytes: uint8 data under a float32 header */
        send_raw(path, token, buf, n + 8, "declares 32 data bytes");
        n = header_of(buf, "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 2, 2), }");
        memset(buf + n, 0, 8);
        send_raw(path, token, buf, n + 8, "Fortran order");
        n = header_of(buf, "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 2, 2), }");
        send_raw(path, token, buf, n + 64, "npy");
        send_raw(path, token, "", 0, "the body is empty");
    }
    /* a dtype the route does not take */
    dk_npy_array a = {.dtype = DK_NPY_F8, .rank = 3, .shape = {2, 2, 2}, .numel = 8};
    a.data = calloc(8, 8);
    dk_http_reply r = post_array(distill, env.distill, &a);
    expect_problem(r, 400, "dtype f4, i2, u2; got dtype f8");
    a.dtype = DK_NPY_F4;
    ((float *)a.data)[3] = NAN;
    r = post_array(distill, env.distill, &a);
    expect_problem(r, 400, "NaN or infinity at flat index 3");
    r = post_array("/v1/distill?spacing=3.3,0.31", env.distill, &a);
    expect_problem(r, 400, "'spacing' must be the voxel size in mm as Z,Y,X");
    r = post_array("/v1/distill?spacing=3.3,0.31,0.31", env.all, &a);
    expect_problem(r, 403, "needs 'distill'");
    free(a.data);
    /* oversize: refused before the body is read */
    dk_server_config c = upload_config();
    c.max_upload = 1000;
    dk_test_env_start(&env, c);
    static char big[5000];
    r = dk_http_bytes(&env, "POST", eval_path, env.evaluate, npy_type, big, sizeof big);
    expect_problem(r, 413, "exceeds 1000 bytes (the server's --max-upload)");
    dk_http_reply alive = dk_http(&env, "GET", "/healthz", NULL, NULL);
    cr_assert_eq(alive.status, 200);
    dk_http_free(&alive);
}

/* Poll a job until done or failed; returns its record. */
static json_t *wait_job(const char *location)
{
    for (int i = 0; i < 6000; i++) {
        dk_http_reply r = dk_http(&env, "GET", location, env.distill, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        json_t *j = json_loads(r.body, 0, NULL);
        dk_http_free(&r);
        const char *state = json_string_value(json_object_get(j, "state"));
        if (!strcmp(state, "done") || !strcmp(state, "failed")) return j;
        json_decref(j);
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    cr_assert_fail("job %s did not finish", location);
    return NULL;
}

static void post_volume(const dk_npy_array *a, const char *spacing, char location[128])
{
    char path[128];
    snprintf(path, sizeof path, "/v1/distill?spacing=%s", spacing);
    dk_http_reply r = post_array(path, env.distill, a);
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_not_null(dk_http_header(&r, "Location", location, 128));
    dk_http_free(&r);
}

/* The targets precompute makes for volume v in this process, as the job's child does. */
static void precompute_here(const dk_volume *v, dk_targets *t)
{
    dk_precompute_options o = dk_precompute_options_default();
    o.teacher_path = env.teacher;
    dk_profile p = {.slice_thickness = v->spacing[0], .contrast = "dess"};
    snprintf(p.name, sizeof p.name, "here");
    memcpy(p.spacing, v->spacing, sizeof p.spacing);
    o.profile = p;
    dk_err err = {0};
    dk_precomputer *pc = dk_precomputer_create(&o, &err);
    cr_assert_not_null(pc, "%s", err.msg);
    cr_assert_eq(dk_precompute_volume(pc, v, 0, t, &err), DK_OK, "%s", err.msg);
    dk_precomputer_free(pc);
}

Test(server_upload, distill_job_gives_the_targets_precompute_makes)
{
    dk_npy_array in = fetch("vol-01", "input", true); /* a scan at the profile's grid */
    char location[128];
    post_volume(&in, "3.3,0.31,0.31", location);
    json_t *job = wait_job(location);
    cr_assert_str_eq(json_string_value(json_object_get(job, "state")), "done", "%s",
                     json_dumps(job, 0));
    cr_assert_str_eq(json_string_value(json_object_get(job, "kind")), "distill");
    json_t *arrays = json_object_get(job, "arrays");
    cr_assert(json_array_size(arrays) >= 4, "%s", json_dumps(job, 0));
    json_decref(job);
    /* another site does not see the job */
    dk_http_reply r = dk_http(&env, "GET", location, env.all, NULL);
    expect_problem(r, 404, "no job");
    char path[200];
    snprintf(path, sizeof path, "%s/targets/response", location);
    r = dk_http(&env, "GET", path, env.all, NULL);
    expect_problem(r, 404, "no distill job");
    snprintf(path, sizeof path, "%s/targets/nothing", location);
    r = dk_http(&env, "GET", path, env.distill, NULL);
    expect_problem(r, 404, "has no array 'nothing'");
    /* the served targets are what precompute computes for this volume here */
    dk_volume v;
    int dims[3] = {(int)in.shape[0], (int)in.shape[1], (int)in.shape[2]};
    dk_err err = {0};
    cr_assert_eq(dk_volume_alloc(&v, "upload", dims, false, &err), DK_OK);
    memcpy(v.image, in.data, in.numel * sizeof(float));
    v.spacing[0] = 3.3, v.spacing[1] = 0.31, v.spacing[2] = 0.31;
    dk_targets t;
    precompute_here(&v, &t);
    const char *kinds[] = {"input", "response", "uncertainty"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/targets/%s?dtype=f4", location, kinds[k]);
        r = dk_http(&env, "GET", path, env.distill, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        dk_npy_array got;
        cr_assert_eq(dk_npy_decode(r.body, r.len, 0, &got, &err), DK_OK, "%s", err.msg);
        dk_http_free(&r);
        const float *want = k == 0 ? t.input.image : k == 1 ? t.response : t.uncertainty;
        size_t n = k == 1 ? got.numel : in.numel; /* classes x grid */
        cr_assert(got.numel % in.numel == 0 && (k != 1 || got.numel >= 2 * in.numel));
        cr_assert_eq(got.numel, n, "%s: %zu elements, want %zu", kinds[k], got.numel, n);
        double worst = 0;
        for (size_t i = 0; i < n; i++) /* float16 as stored: within its rounding */
            worst = fmax(worst, fabs(((float *)got.data)[i] - want[i]) / fmax(1, fabs(want[i])));
        cr_assert(worst <= 2e-3, "%s differs by %g", kinds[k], worst);
        dk_npy_array_free(&got);
    }
    dk_targets_release(&t);
    dk_volume_release(&v);
    dk_npy_array_free(&in);
}

Test(server_upload, a_failed_job_says_why_and_a_full_queue_is_429)
{
    dk_npy_array thin = {.dtype = DK_NPY_U2, .rank = 3, .shape = {1, 8, 8}, .numel = 64};
    thin.data = calloc(64, 2); /* one slice: the teacher's pooling cannot halve it */
    char location[128], path[200];
    post_volume(&thin, "3,1,1", location);
    json_t *job = wait_job(location);
    cr_assert_str_eq(json_string_value(json_object_get(job, "state")), "failed");
    json_decref(job);
    snprintf(path, sizeof path, "%s/targets/response", location);
    dk_http_reply r = dk_http(&env, "GET", path, env.distill, NULL);
    expect_problem(r, 409, "is failed");
    dk_server_config c = upload_config();
    c.job_queue = 1;
    dk_test_env_start(&env, c);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 4; i++) {
        r = post_array("/v1/distill?spacing=3,1,1", env.distill, &thin);
        char after[32];
        if (r.status == 202) {
            accepted++;
            dk_http_free(&r);
            continue;
        }
        cr_assert_not_null(dk_http_header(&r, "Retry-After", after, sizeof after));
        expect_problem(r, 429, "queue is full");
        refused++;
    }
    cr_assert(accepted >= 1 && refused >= 1, "%d accepted, %d refused", accepted, refused);
    free(thin.data);
}

/* 50 clients download every array of a profile (checked against the
 * catalogue's SHA-256) while one more sends nothing but broken uploads and raw
 * garbage; every answer must be the right one and the server (in this
 * process, so ASan/UBSan watch it) must stay up. */
static const char crowd_py[] =
    "import hashlib, io, os, socket, struct, sys, threading, requests\n"
    "import numpy as np\n"
    "port, token, etoken, dtoken = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]\n"
    "base = 'http://127.0.0.1:%d' % port\n"
    "P = {'profile': 'clinical-3.3mm'}\n"
    "cat = requests.get(base + '/v1/targets', params=P,\n"
    "                   headers={'Authorization': 'Bearer ' + token}).json()\n"
    "want = sorted((s['id'], a['kind'], a['sha256']) for s in cat['samples'] for a in "
    "s['arrays'])\n"
    "errors, done, got, counts = [], threading.Event(), [], {'bad': 0}  # list.append is atomic\n"
    "def download(k):\n"
    "    H = {'Authorization': 'Bearer ' + token}\n"
    "    with requests.Session() as s:\n"
    "        for i, (sid, kind, digest) in enumerate(want):\n"
    "            if (i + k) % 4: continue\n"
    "            r = s.get(base + '/v1/targets/%s/%s' % (sid, kind), params=P, headers=H)\n"
    "            if r.status_code != 200: errors.append((sid, kind, r.status_code)); continue\n"
    "            a = np.load(io.BytesIO(r.content))\n"
    "            if hashlib.sha256(a.tobytes()).hexdigest() != digest: errors.append((sid, kind))\n"
    "            got.append(1)\n"
    "def npy(dict_text, data=b''):\n"
    "    h = dict_text.encode()\n"
    "    return b'\\x93NUMPY\\x01\\x00' + struct.pack('<H', len(h)) + h + data\n"
    "def saved(a):\n"
    "    b = io.BytesIO(); np.save(b, a); return b.getvalue()\n"
    "shape = \"'shape': (2, 2, 2), }\"\n"
    "bad = [(b'PK\\x03\\x04' + os.urandom(300), 'bad magic'),\n"
    "       (npy(\"{'descr': '|u1', 'fortran_order': False, \" + shape)[:30], 'truncated "
    "header'),\n"
    "       (npy(\"{'descr': '|u1', 'fortran_order': False, 'shape': (9999999999999, \"\n"
    "            \"9999999999999, 9999999999999), }\"), 'overflows'),\n"
    "       (npy(\"{'descr': '<f4', 'fortran_order': False, \" + shape, b'\\0' * 8), 'declares "
    "32'),\n"
    "       (npy(\"{'descr': '|u1', 'fortran_order': True, \" + shape, b'\\0' * 8), 'Fortran'),\n"
    "       (saved(np.zeros((2, 2, 2), np.float64)), 'got dtype f8'),\n"
    "       (b'', 'the body is empty')]\n"
    "routes = [('/v1/evaluate?profile=clinical-3.3mm&sample=vol-03', etoken),\n"
    "          ('/v1/distill?spacing=3.3,0.31,0.31', dtoken)]\n"
    "def raw(data):\n"
    "    s = socket.create_connection(('127.0.0.1', port), timeout=30)\n"
    "    try:\n"
    "        s.sendall(data); s.shutdown(socket.SHUT_WR); out = s.recv(65536)\n"
    "    except OSError: out = b''\n"
    "    s.close()\n"
    "    if out and not out.startswith(b'HTTP/1.'): errors.append(('raw', out[:60]))\n"
    "def garbage():\n"
    "    with requests.Session() as s:\n"
    "        while not done.is_set() or counts['bad'] < 3 * len(bad) * len(routes):\n"
    "            for path, tok in routes:\n"
    "                H = {'Authorization': 'Bearer ' + tok, 'Content-Type': 'application/x-npy'}\n"
    "                for body, words in bad:\n"
    "                    r = s.post(base + path, data=body, headers=H)\n"
    "                    ok = (r.status_code == 400 and\n"
    "                          r.headers['Content-Type'] == 'application/problem+json' and\n"
    "                          words in r.json()['detail'])\n"
    "                    if not ok: errors.append((path, words, r.status_code, r.text[:200]))\n"
    "                    counts['bad'] += 1\n"
    "                r = s.post(base + path, data=b'{}', headers=dict(H, **{'Content-Type': "
    "'application/json'}))\n"
    "                if r.status_code != 415: errors.append((path, 'json', r.status_code))\n"
    "            A = ('Authorization: Bearer %s\\r\\n' % etoken).encode()\n"
    "            raw(b'POST /v1/evaluate?profile=clinical-3.3mm&sample=vol-03 HTTP/1.1\\r\\nHost: "
    "x\\r\\n'\n"
    "                + A + b'Content-Type: application/x-npy\\r\\nContent-Length: "
    "99999999999\\r\\n\\r\\n')\n"
    "            raw(b'POST /v1/evaluate?profile=clinical-3.3mm&sample=vol-03 HTTP/1.1\\r\\nHost: "
    "x\\r\\n'\n"
    "                + A + b'Content-Type: application/x-npy\\r\\nTransfer-Encoding: "
    "chunked\\r\\n\\r\\n'\n"
    "                + b'10\\r\\n\\x93NUMPY\\x01\\x00\\xff\\xff{{{{{{\\r\\n')\n"
    "            raw(os.urandom(2000))\n"
    "threads = [threading.Thread(target=download, args=(k,)) for k in range(50)]\n"
    "g = threading.Thread(target=garbage)\n"
    "g.start(); [t.start() for t in threads]; [t.join() for t in threads]\n"
    "done.set(); g.join()\n"
    "assert not errors, errors[:5]\n"
    "assert len(got) == 50 * len(want) // 4, len(got)\n"
    "assert requests.get(base + '/healthz').status_code == 200\n"
    "print('crowd ok', len(got), counts['bad'])\n";

Test(server_upload, fifty_clients_download_while_one_sends_garbage)
{
    char *script = dk_test_path("crowd.py"), cmd[8192], out[16384];
    FILE *f = fopen(script, "w");
    fputs(crowd_py, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s %s %d %s %s %s", dk_test_python(), script, env.port, env.all,
             env.evaluate, env.distill);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out);
    cr_assert(strstr(out, "crowd ok 250"), "%s", out);
    cr_log_info("%s", out);
    free(script);
}

/* ---- the curl examples of docs/api.md, run as written ---- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void save_npy(const char *name, const dk_npy_array *a)
{
    void *bytes;
    size_t n;
    dk_err err = {0};
    cr_assert_eq(dk_npy_encode(a, false, &bytes, &n, &err), DK_OK, "%s", err.msg);
    char *path = dk_test_path(name);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(bytes, 1, n, f) == n && fclose(f) == 0);
    free(bytes), free(path);
}

/* Run one example (its lines joined) with the tokens and job id in the
 * environment; check the first documented output line and every "detail". */
static void run_example(const char *command, const char *documented, char job[32])
{
    char cmd[8192], base[64], out[16384];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", env.port);
    char *script = dk_test_path("example.sh");
    FILE *f = fopen(script, "w");
    const char *p = command, *hit;
    while ((hit = strstr(p, "http://127.0.0.1:8080"))) { /* the documented port -> this one */
        fprintf(f, "%.*s%s", (int)(hit - p), p, base);
        p = hit + strlen("http://127.0.0.1:8080");
    }
    fprintf(f, "%s\n", p);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && D=%s E=%s J=%s sh %s", dk_test_dir, env.distill,
             env.evaluate, job, script);
    int rc = dk_test_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "%s: exit %d: %s", command, rc, out);
    cr_log_info("$ %s\n%s", command, out);
    char first[256];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(documented, "\n"), documented);
    cr_assert(!*first || strncmp(out, first, strlen(first)) == 0, "%s:\nwant '%s'\ngot '%.300s'",
              command, first, out);
    for (const char *d = documented; (d = strstr(d, "\"detail\"")); d++) {
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)strcspn(d, "\n"), d);
        cr_assert(strstr(out, line), "%s: '%s' not in '%s'", command, line, out);
    }
    const char *loc = strstr(out, "Location: /v1/jobs/");
    if (loc) {
        snprintf(job, 32, "%.*s", (int)strcspn(loc + 19, "\r\n"), loc + 19);
        char path[64];
        snprintf(path, sizeof path, "/v1/jobs/%s", job);
        json_decref(wait_job(path));
    }
    free(script);
}

Test(server_upload, the_curl_examples_in_docs_api_md_run_as_shown)
{
    dk_npy_array scan = fetch("vol-01", "input", true), label = fetch("vol-03", "label", false);
    save_npy("scan.npy", &scan);
    save_npy("label.npy", &label);
    dk_npy_array_free(&scan), dk_npy_array_free(&label);
    char path[4096], job[32] = "none";
    snprintf(path, sizeof path, "%s/docs/api.md", dk_test_source());
    char *doc = read_text(path);
    char *from = strstr(doc, "### `POST /v1/distill`"), *to = from ? strstr(from, "\n## ") : 0;
    cr_assert(from && to, "the distill and evaluate sections are missing from docs/api.md");
    *to = '\0';
    int examples = 0;
    for (char *line = strstr(from, "\n$ curl"); line; line = strstr(line, "\n$ curl")) {
        char command[4096] = "", *p = line + 3;
        for (;;) { /* the command and its continuation lines */
            size_t n = strcspn(p, "\n");
            bool more = n && p[n - 1] == '\\';
            snprintf(command + strlen(command), sizeof command - strlen(command), "%.*s%s",
                     (int)(more ? n - 1 : n), p, more ? " " : "");
            p += n + (p[n] != '\0');
            if (!more) break;
        }
        char *hash = strstr(command, "      #"); /* a trailing comment */
        if (hash) *hash = '\0';
        char *end = strstr(p, "\n$ "), *fence = strstr(p, "```");
        char documented[4096];
        size_t len = (size_t)((end && (!fence || end < fence) ? end : fence) - p);
        snprintf(documented, sizeof documented, "%.*s", (int)len, p);
        run_example(command, documented, job);
        examples++;
        line = p - 1;
    }
    cr_assert_eq(examples, 7, "%d examples", examples);
}
