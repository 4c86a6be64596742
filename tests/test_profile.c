/* test_profile.c: site profiles: built-ins, JSON round trip, every malformed profile
 * with its message, loading from files, and `dualkd data profiles`. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/profile.h"
#include "testutil.h"

Test(profile, builtins_mirror_real_protocols)
{
    cr_assert_eq(dk_profile_builtin_count(), 3);
    cr_assert_str_eq(dk_profile_builtin_name(0), "repository");
    cr_assert_str_eq(dk_profile_builtin_name(1), "clinical-3.3mm");
    cr_assert_str_eq(dk_profile_builtin_name(2), "clinical-4.5mm");
    cr_assert_null(dk_profile_builtin_name(3));
    cr_assert_null(dk_profile_builtin_name(-1));
    dk_profile p;
    dk_err err = {0};
    cr_assert_eq(dk_profile_builtin("repository", &p, &err), DK_OK);
    cr_assert_eq(p.spacing[0], 0.7);
    cr_assert_eq(p.spacing[1], 0.36);
    cr_assert_eq(p.spacing[2], 0.36);
    cr_assert_str_eq(p.contrast, "dess");
    cr_assert_eq(p.noise, 0.02);
    cr_assert_eq(p.bias, 0.1);
    cr_assert_eq(dk_profile_builtin("clinical-3.3mm", &p, &err), DK_OK);
    cr_assert_eq(p.spacing[0], 3.3);
    cr_assert_eq(p.spacing[1], 0.31);
    cr_assert_eq(p.slice_thickness, 3.0); /* a 0.3 mm gap */
    cr_assert_str_eq(p.contrast, "pd-fs");
    cr_assert(p.oa_grades[0] > 0 && p.oa_grades[4] > 0, "a grade mix");
    cr_assert_eq(dk_profile_builtin("clinical-4.5mm", &p, &err), DK_OK);
    cr_assert_eq(p.spacing[0], 4.5);
    cr_assert_eq(p.spacing[2], 0.30);
    cr_assert_eq(p.slice_thickness, 3.5); /* a 1.0 mm gap */
    cr_assert(p.noise > 0.05 && p.bias > 0.2);
    cr_assert(p.oa_grades[3] > p.oa_grades[0], "the OA clinic sees more advanced grades");
    cr_assert(p.fov_scale[0] < 1 && p.fov_scale[1] > 1 && p.wrap_probability > 0,
              "clinical scans are planned by hand");
    cr_assert_eq(dk_profile_builtin("repository", &p, &err), DK_OK);
    cr_assert(p.fov_scale[1] == 0 && p.slice_coverage[1] == 0 && p.wrap_probability == 0,
              "the repository's protocol fixes the field of view");
    cr_assert_eq(dk_profile_builtin("clinical", &p, &err), DK_ENOTFOUND);
    cr_assert(strstr(err.msg, "'clinical'") && strstr(err.msg, "clinical-4.5mm"), "%s", err.msg);
}

static void check_round_trip(const dk_profile *p)
{
    char *json = dk_profile_to_json(p);
    cr_assert_not_null(json);
    cr_assert_eq(json[strlen(json) - 1], '\n');
    dk_profile back;
    dk_err err = {0};
    cr_assert_eq(dk_profile_from_json_text(json, "round trip", &back, &err), DK_OK, "%s\n%s",
                 err.msg, json);
    cr_assert_arr_eq(p, &back, sizeof *p, "round trip changed the profile:\n%s", json);
    free(json);
}

Test(profile, json_round_trip)
{
    for (int i = 0; i < dk_profile_builtin_count(); i++) {
        dk_profile p;
        cr_assert_eq(dk_profile_builtin(dk_profile_builtin_name(i), &p, NULL), DK_OK);
        check_round_trip(&p);
    }
    dk_profile repo;
    dk_profile_builtin("repository", &repo, NULL);
    char *json = dk_profile_to_json(&repo);
    cr_assert(strstr(json, "0.36,") && !strstr(json, "0.3599"), "short numbers please:\n%s", json);
    cr_assert(strstr(json, "\"contrast\": \"dess\""), "%s", json);
    free(json);
    /* a value that needs all 17 digits still reads back exactly */
    dk_profile odd = {"odd_site", {0.1 + 0.2, 1.0 / 3, 0.5}, 2.0 / 3, "t1", 0.07, 0.0, "tiny-unet",
                      {0}, {0}, {0}, 0, {0}};
    check_round_trip(&odd);
    odd.fov_scale[0] = 0.9, odd.fov_scale[1] = 1.0 / 0.9;
    odd.slice_coverage[0] = odd.slice_coverage[1] = 0.7;
    odd.wrap_probability = 1.0 / 7, odd.wrap_mm[1] = 0.1 + 0.2;
    check_round_trip(&odd);
}

Test(profile, optional_fields_default)
{
    dk_profile p;
    dk_err err = {0};
    cr_assert_eq(dk_profile_from_json_text(
                     "{\"name\": \"site-a\", \"spacing\": [3, 0.4, 0.4], \"contrast\": \"t1\"}",
                     "site-a.json", &p, &err),
                 DK_OK, "%s", err.msg);
    cr_assert_eq(p.slice_thickness, 3.0);
    cr_assert_eq(p.noise, 0.0);
    cr_assert_eq(p.bias, 0.0);
    cr_assert_str_eq(p.student, "");
    cr_assert_str_eq(p.name, "site-a");
    /* no planning fields: a fixed field of view, no wrap-around */
    cr_assert(p.fov_scale[0] == 0 && p.fov_scale[1] == 0 && p.slice_coverage[1] == 0);
    cr_assert(p.wrap_probability == 0 && p.wrap_mm[1] == 0);
}

/* Each malformed profile and the words its message must contain. */
static const struct {
    const char *json, *want1, *want2;
} bad_cases[] = {
    {"{\"name\": \"a\", ", "not valid JSON", "line 1"},
    {"[1, 2]", "expected a JSON object", ""},
    {"{\"spacing\": [1, 1, 1], \"contrast\": \"t1\"}", "field 'name'", "missing"},
    {"{\"name\": \"\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\"}", "field 'name'", "non-empty"},
    {"{\"name\": \"a b\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\"}", "field 'name'",
     "letters"},
    {"{\"name\": 3, \"spacing\": [1, 1, 1], \"contrast\": \"t1\"}", "field 'name'", "string"},
    {"{\"name\": \"a\", \"contrast\": \"t1\"}", "field 'spacing'", "missing"},
    {"{\"name\": \"a\", \"spacing\": [1, 1], \"contrast\": \"t1\"}", "field 'spacing'",
     "3 positive"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1, 1], \"contrast\": \"t1\"}", "field 'spacing'",
     "3 positive"},
    {"{\"name\": \"a\", \"spacing\": [1, -0.3, 1], \"contrast\": \"t1\"}", "field 'spacing'",
     "positive"},
    {"{\"name\": \"a\", \"spacing\": [1, 0, 1], \"contrast\": \"t1\"}", "field 'spacing'",
     "positive"},
    {"{\"name\": \"a\", \"spacing\": [1, \"1\", 1], \"contrast\": \"t1\"}", "field 'spacing'",
     "numbers"},
    {"{\"name\": \"a\", \"spacing\": 0.5, \"contrast\": \"t1\"}", "field 'spacing'", "array"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1]}", "field 'contrast'", "missing"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"flair\"}", "field 'contrast'",
     "'flair'"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": 1}", "field 'contrast'", "\"pd-fs\""},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"noise\": -0.1}",
     "field 'noise'", "[0, 1)"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"noise\": \"low\"}",
     "field 'noise'", "number"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"bias\": -0.2}",
     "field 'bias'", "[0, 1)"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"bias\": 1.5}",
     "field 'bias'", "[0, 1)"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"slice_thickness\": 0}",
     "field 'slice_thickness'", "> 0"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"student\": 7}",
     "field 'student'", "architecture"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"oa_grades\": [1, 0]}",
     "field 'oa_grades'", "5 numbers"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", "
     "\"oa_grades\": [0, 0, 0, 0, 0]}",
     "field 'oa_grades'", "not all 0"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"fov_scale\": [1.1, 0.9]}",
     "field 'fov_scale'", "lo <= hi"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"fov_scale\": 1}",
     "field 'fov_scale'", "[lo, hi]"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", "
     "\"slice_coverage\": [0.2, 1]}",
     "field 'slice_coverage'", "0.5 <= lo"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", "
     "\"slice_coverage\": [1, \"all\"]}",
     "field 'slice_coverage'", "hi <= 1.5"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", "
     "\"wrap_probability\": 1.2, \"wrap_mm\": [1, 2]}",
     "field 'wrap_probability'", "[0, 1]"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", "
     "\"wrap_probability\": 0.2}",
     "field 'wrap_mm'", "hi > 0"},
    {"{\"name\": \"a\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\", \"wrap_mm\": [0, 40]}",
     "field 'wrap_mm'", "hi <= 30"},
    {"{\"name\": \"a\", \"spacnig\": [1, 1, 1], \"contrast\": \"t1\"}", "unknown field 'spacnig'",
     "allowed"},
    {"{\"name\": \"a\", \"name\": \"b\", \"spacing\": [1, 1, 1], \"contrast\": \"t1\"}",
     "not valid JSON", "duplicate"},
};

Test(profile, malformed_json_is_named)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        dk_profile p;
        memset(&p, 0, sizeof p);
        strcpy(p.name, "untouched");
        dk_err err = {0};
        cr_assert_eq(dk_profile_from_json_text(bad_cases[i].json, "site.json", &p, &err),
                     DK_EFORMAT, "case %zu accepted: %s", i, bad_cases[i].json);
        cr_assert(strncmp(err.msg, "site.json: ", 11) == 0, "case %zu: %s", i, err.msg);
        cr_assert(strstr(err.msg, bad_cases[i].want1) && strstr(err.msg, bad_cases[i].want2),
                  "case %zu (%s): message '%s' lacks '%s' / '%s'", i, bad_cases[i].json, err.msg,
                  bad_cases[i].want1, bad_cases[i].want2);
        cr_assert_str_eq(p.name, "untouched", "case %zu wrote a partial profile", i);
    }
}

static char *write_file(const char *dir, const char *name, const char *text)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

Test(profile, load_builtin_or_file)
{
    char *dir = dk_test_tmpdir();
    char *good =
        write_file(dir, "site.json",
                   "{\"name\": \"site-b\", \"spacing\": [4, 0.35, 0.35], \"slice_thickness\": "
                   "3.5, \"contrast\": \"pd-fs\", \"noise\": 0.04, \"bias\": 0.15}\n");
    char *typo = write_file(dir, "typo.json",
                            "{\"name\": \"x\", \"spacing\": [4, 0.35, 0.35], \"contrast\": \"t1\", "
                            "\"nosie\": 0.1}");
    dk_profile p;
    dk_err err = {0};
    cr_assert_eq(dk_profile_load("clinical-4.5mm", &p, &err), DK_OK);
    cr_assert_str_eq(p.name, "clinical-4.5mm");
    cr_assert_eq(dk_profile_load(good, &p, &err), DK_OK, "%s", err.msg);
    cr_assert_str_eq(p.name, "site-b");
    cr_assert_eq(p.slice_thickness, 3.5);
    cr_assert_eq(p.spacing[0], 4.0);
    cr_assert_eq(dk_profile_load(typo, &p, &err), DK_EFORMAT);
    cr_assert(strstr(err.msg, typo) && strstr(err.msg, "'nosie'"), "%s", err.msg);
    cr_assert_eq(dk_profile_load("no-such-profile", &p, &err), DK_ENOTFOUND);
    cr_assert(strstr(err.msg, "'no-such-profile' is neither a built-in"), "%s", err.msg);
    dk_test_rmtree(dir);
    free(good);
    free(typo);
    free(dir);
}

Test(profile, cli_lists_and_shows)
{
    char out[4096], cmd[1024];
    snprintf(cmd, sizeof cmd, "%s data profiles", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "repository") && strstr(out, "0.7 x 0.36 x 0.36") &&
                  strstr(out, "clinical-3.3mm") && strstr(out, "pd-fs") &&
                  strstr(out, "clinical-4.5mm"),
              "%s", out);
    snprintf(cmd, sizeof cmd, "%s data profiles --show clinical-3.3mm 2>/dev/null", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 0, "%s", out);
    dk_profile p, want;
    dk_err err = {0};
    cr_assert_eq(dk_profile_from_json_text(out, "cli output", &p, &err), DK_OK, "%s\n%s", err.msg,
                 out);
    dk_profile_builtin("clinical-3.3mm", &want, NULL);
    cr_assert_arr_eq(&p, &want, sizeof p);
    snprintf(cmd, sizeof cmd, "%s data profiles --show /nonexistent/site.json", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "/nonexistent/site.json"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s data profiles --bogus", dk_test_bin());
    cr_assert_eq(dk_test_run(cmd, out, sizeof out), 2, "%s", out);
}
