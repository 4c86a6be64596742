/* test_fed_store.c: the SQLite federation store on real files: schema version
 * and migration refusal, durability settings, the rules every operation keeps
 * (one accepted update per site and round, only into an open round, closing
 * only from aggregating), rounds advancing and traffic accounting. */
#include <criterion/criterion.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpapi/fed_store.h"
#include "testutil.h"

TestSuite(fed_store, .init = dk_test_dir_setup, .fini = dk_test_dir_teardown);

static dk_fed_store *open_store(const char *name)
{
    char *path = dk_test_path(name);
    dk_fed_store *s = NULL;
    dk_err err = {0};
    cr_assert_eq(dk_fed_store_open_sqlite(path, &s, &err), DK_OK, "%s", err.msg);
    free(path);
    return s;
}

static void create_fed(dk_fed_store *s, const char *name, int rounds, int quorum)
{
    dk_fed_info info = {.rounds = rounds,
                        .quorum = quorum,
                        .deadline_seconds = 60,
                        .architecture_json = "{\"kind\":\"unet3d\"}"};
    snprintf(info.name, sizeof info.name, "%s", name);
    dk_fed_conflict conflict;
    dk_err err = {0};
    cr_assert_eq(s->ops->create_federation(s, &info, "/g0.h5", "ab", 1000, &conflict, &err), DK_OK,
                 "%s", err.msg);
    cr_assert_eq(conflict, DK_FED_NO_CONFLICT);
}

static dk_fed_update_row update(int round, const char *site, bool accepted, int64_t bytes)
{
    dk_fed_update_row u = {.round = round,
                           .labelled = 3,
                           .bytes = bytes,
                           .norm = 1.5,
                           .val_dice = NAN,
                           .accepted = accepted,
                           .received_at = 1010};
    snprintf(u.site, sizeof u.site, "%s", site);
    snprintf(u.delta_path, sizeof u.delta_path, "/d-%s.h5", site);
    snprintf(u.delta_sha256, sizeof u.delta_sha256, "%064d", 7);
    if (!accepted) snprintf(u.reason, sizeof u.reason, "bad");
    return u;
}

Test(fed_store, creates_a_versioned_wal_database_and_reopens_it)
{
    dk_fed_store *s = open_store("fed.db");
    create_fed(s, "knee", 3, 2);
    dk_fed_store_close(s);
    s = open_store("fed.db");
    dk_fed_info info;
    dk_err err = {0};
    cr_assert_eq(s->ops->get_federation(s, "knee", &info, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(info.rounds, 3);
    cr_assert_eq(info.quorum, 2);
    cr_assert_str_eq(info.architecture_json, "{\"kind\":\"unet3d\"}");
    dk_fed_info_release(&info);
    cr_assert_eq(s->ops->get_federation(s, "hip", &info, &err), DK_ENOTFOUND);
    cr_assert(strstr(err.msg, "'hip'"), "%s", err.msg);
    dk_fed_store_close(s);

    char *path = dk_test_path("fed.db");
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *stmt;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(stmt, 0), "wal");
    sqlite3_finalize(stmt);
    sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &stmt, NULL);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(stmt, 0), DK_FED_SCHEMA_VERSION);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    free(path);
}

Test(fed_store, refuses_a_store_from_a_newer_dualkd)
{
    dk_fed_store_close(open_store("fed.db"));
    char *path = dk_test_path("fed.db");
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "UPDATE schema_version SET version = 99", 0, 0, 0), SQLITE_OK);
    sqlite3_close(db);
    dk_fed_store *s = NULL;
    dk_err err = {0};
    cr_assert_eq(dk_fed_store_open_sqlite(path, &s, &err), DK_EFORMAT);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "schema version 99") && strstr(err.msg, "up to 1"), "%s", err.msg);
    free(path);
}

Test(fed_store, duplicate_federation_is_a_conflict)
{
    dk_fed_store *s = open_store("fed.db");
    create_fed(s, "knee", 2, 1);
    dk_fed_info info = {.rounds = 5, .quorum = 1, .deadline_seconds = 9, .architecture_json = "1"};
    snprintf(info.name, sizeof info.name, "knee");
    dk_fed_conflict conflict;
    cr_assert_eq(s->ops->create_federation(s, &info, "/x", "cd", 5, &conflict, NULL), DK_OK);
    cr_assert_eq(conflict, DK_FED_CONFLICT_EXISTS);
    dk_fed_info got;
    cr_assert_eq(s->ops->get_federation(s, "knee", &got, NULL), DK_OK);
    cr_assert_eq(got.rounds, 2, "the first federation is unchanged");
    dk_fed_info_release(&got);
    dk_fed_store_close(s);
}

Test(fed_store, one_accepted_update_per_site_and_only_into_an_open_round)
{
    dk_fed_store *s = open_store("fed.db");
    create_fed(s, "knee", 2, 2);
    dk_err err = {0};
    cr_assert_eq(s->ops->join(s, "knee", "a", 1001, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(s->ops->join(s, "knee", "a", 1002, &err), DK_OK, "joining twice is fine");
    cr_assert_eq(s->ops->join(s, "knee", "b", 1003, &err), DK_OK);
    cr_assert_eq(s->ops->join(s, "hip", "b", 1003, &err), DK_ENOTFOUND);

    dk_fed_conflict c;
    dk_fed_update_row a = update(0, "a", true, 100);
    cr_assert_eq(s->ops->record_update(s, "knee", &a, &c, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(c, DK_FED_NO_CONFLICT);
    cr_assert_eq(s->ops->record_update(s, "knee", &a, &c, &err), DK_OK);
    cr_assert_eq(c, DK_FED_CONFLICT_EXISTS);
    dk_fed_update_row refused = update(0, "a", false, 40);
    cr_assert_eq(s->ops->record_update(s, "knee", &refused, &c, &err), DK_OK);
    cr_assert_eq(c, DK_FED_NO_CONFLICT, "refusals are recorded");
    dk_fed_update_row early = update(1, "b", true, 10);
    cr_assert_eq(s->ops->record_update(s, "knee", &early, &c, &err), DK_OK);
    cr_assert_eq(c, DK_FED_CONFLICT_NOT_OPEN);

    dk_fed_update_row *rows;
    int n;
    cr_assert_eq(s->ops->list_updates(s, "knee", 0, true, &rows, &n, &err), DK_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(rows[0].site, "a");
    cr_assert(isnan(rows[0].val_dice));
    cr_assert_eq(rows[0].norm, 1.5);
    free(rows);
    cr_assert_eq(s->ops->list_updates(s, "knee", 0, false, &rows, &n, &err), DK_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(rows[1].reason, "bad");
    cr_assert_str_eq(rows[1].delta_path, "", "a refused update references no file");
    free(rows);

    /* once aggregating, the round takes no more accepted updates */
    cr_assert_eq(s->ops->begin_aggregation(s, "knee", 0, 1020, &c, &err), DK_OK);
    dk_fed_update_row b = update(0, "b", true, 10);
    cr_assert_eq(s->ops->record_update(s, "knee", &b, &c, &err), DK_OK);
    cr_assert_eq(c, DK_FED_CONFLICT_NOT_OPEN);
    dk_fed_store_close(s);
}

Test(fed_store, closing_rounds_opens_the_next_and_finishes_the_federation)
{
    dk_fed_store *s = open_store("fed.db");
    create_fed(s, "knee", 2, 1);
    dk_fed_conflict c;
    dk_err err = {0};
    cr_assert_eq(s->ops->close_round(s, "knee", 0, "/g1.h5", "11", 1100, &c, &err), DK_OK);
    cr_assert_eq(c, DK_FED_CONFLICT_STATE, "an open round cannot close without aggregating");
    cr_assert_eq(s->ops->begin_aggregation(s, "knee", 0, 1100, &c, &err), DK_OK);
    cr_assert_eq(c, DK_FED_NO_CONFLICT);
    dk_fed_round_ref *refs;
    int n;
    cr_assert_eq(s->ops->list_aggregating(s, &refs, &n, &err), DK_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(refs[0].federation, "knee");
    free(refs);
    cr_assert_eq(s->ops->close_round(s, "knee", 0, "/g1.h5", "11", 1101, &c, &err), DK_OK);
    cr_assert_eq(c, DK_FED_NO_CONFLICT);

    dk_fed_round_row r;
    cr_assert_eq(s->ops->current_round(s, "knee", &r, &err), DK_OK, "%s", err.msg);
    cr_assert_eq(r.index, 1);
    cr_assert_eq(r.state, DK_ROUND_OPEN);
    cr_assert_eq(r.opened_at, 1101);
    cr_assert_str_eq(r.base_path, "/g1.h5");
    cr_assert_eq(s->ops->begin_aggregation(s, "knee", 1, 1200, &c, &err), DK_OK);
    cr_assert_eq(s->ops->close_round(s, "knee", 1, "/g2.h5", "22", 1201, &c, &err), DK_OK);
    dk_fed_round_row *rows;
    cr_assert_eq(s->ops->list_rounds(s, "knee", &rows, &n, &err), DK_OK);
    cr_assert_eq(n, 2, "no round after the last");
    cr_assert_eq(rows[1].state, DK_ROUND_CLOSED);
    cr_assert_eq(rows[1].closed_at, 1201);
    cr_assert_str_eq(rows[1].result_sha256, "22");
    free(rows);
    dk_fed_info info;
    cr_assert_eq(s->ops->get_federation(s, "knee", &info, &err), DK_OK);
    cr_assert_eq(info.state, DK_FED_FINISHED);
    dk_fed_info_release(&info);
    cr_assert_eq(s->ops->begin_aggregation(s, "knee", 1, 1300, &c, &err), DK_OK);
    cr_assert_eq(c, DK_FED_CONFLICT_STATE);
    dk_fed_store_close(s);
}

Test(fed_store, traffic_is_summed_per_site_and_round)
{
    dk_fed_store *s = open_store("fed.db");
    create_fed(s, "knee", 2, 1);
    s->ops->join(s, "knee", "a", 1, NULL);
    dk_fed_conflict c;
    dk_fed_update_row u = update(0, "a", false, 300);
    cr_assert_eq(s->ops->record_update(s, "knee", &u, &c, NULL), DK_OK);
    u = update(0, "a", true, 200);
    cr_assert_eq(s->ops->record_update(s, "knee", &u, &c, NULL), DK_OK);
    cr_assert_eq(s->ops->add_download(s, "knee", 0, "a", 1000, NULL), DK_OK);
    cr_assert_eq(s->ops->add_download(s, "knee", 0, "a", 1000, NULL), DK_OK);
    dk_fed_traffic_row *rows;
    int n;
    cr_assert_eq(s->ops->list_traffic(s, "knee", &rows, &n, NULL), DK_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(rows[0].bytes_up, 500);
    cr_assert_eq(rows[0].bytes_down, 2000);
    free(rows);
    cr_assert_eq(s->ops->add_download(s, "knee", 0, "stranger", 5, NULL), DK_EIO,
                 "traffic of a non-member violates the foreign key");
    dk_fed_store_close(s);
}

Test(fed_store, names_are_checked)
{
    cr_assert(dk_fed_name_valid("site-01.a_b"));
    cr_assert_not(dk_fed_name_valid(""));
    cr_assert_not(dk_fed_name_valid(".."));
    cr_assert_not(dk_fed_name_valid("a/b"));
    cr_assert_not(dk_fed_name_valid("a b"));
    char longname[80];
    memset(longname, 'x', sizeof longname - 1);
    longname[79] = 0;
    cr_assert_not(dk_fed_name_valid(longname));
}

Test(fed_store, a_file_that_is_not_a_database_is_refused)
{
    char *path = dk_test_path("fed.db");
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 200; i++)
        fputs("not a database, ", f);
    fclose(f);
    dk_fed_store *s = NULL;
    dk_err err = {0};
    cr_assert_eq(dk_fed_store_open_sqlite(path, &s, &err), DK_EFORMAT, "%s", err.msg);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "fed.db") && strstr(err.msg, "not a database"), "%s", err.msg);
    free(path);
}
