/*
 * cpn-db-multi MYSQL_URL: connects as every program does (cpn_db) and
 * checks that a connection refuses two statements in one query (nothing
 * the programs send needs it; a connection that takes them turns one
 * injected quote into any statement), while couponctl migrate, whose
 * files hold several, still works on it. Prints one line; exit 0 when
 * both hold. Run by test_hardening.py.
 */
#include <stdio.h>
#include <string.h>

#include "cpn/db.h"
#include "db-internal.h"

int main(int argc, char **argv) {
        struct cpn_db_url url;
        struct cpn_error err = { { 0 } };
        struct cpn_db *db;
        int r;

        if (argc != 2 || cpn_db_url_parse(&url, argv[1], &err) != 0 || cpn_db_new(&db, &url, 5000, 30000) != 0) {
                fprintf(stderr, "usage: cpn-db-multi MYSQL_URL (%s)\n", err.msg);
                return 2;
        }
        r = cpn_db_exec(db, "SELECT 1; SELECT 2", &err);
        if (r == 0) {
                printf("FAIL: a connection ran two statements in one query\n");
                cpn_db_free(db);
                return 1;
        }
        printf("refused: %s\n", err.msg);
        r = cpn_db_migrate(db, NULL, &err);
        if (r == 0)
                r = cpn_db_exec(db, "SELECT 1; SELECT 2", &err) == 0 ? -1 : 0;
        cpn_db_free(db);
        if (r) {
                printf("FAIL: migrate %s\n", r == -1 ? "left multi-statement mode on" : err.msg);
                return 1;
        }
        printf("ok: migrate works, multi-statement mode is off again\n");
        return 0;
}
