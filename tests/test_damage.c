/* Class 3 of the reliability pass: damaged and foreign database files. The test builds its own
 * corpus (bit flips in the meta, root, branch and leaf pages; truncation; an empty file; a foreign
 * LMDB file) and checks that every message names the file, says what happened and gives advice
 * that works (`mctune db check`, `--salvage`). */
#include <lmdb.h>   /* only to write the foreign LMDB file of the corpus */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db/db.h"
#include "tests/check.h"

#define NREC 300
#define PS 4096

static char root[256], bin[512];
static int have_cli;

static void wl_of(int i, char *buf, size_t n)
{
    snprintf(buf, n, "matmul f32 nn M=%d N=256 K=512 epi=none", i + 1);
}

/* A database written in many transactions (so the previous snapshot holds nearly everything). */
static int build(const char *dir)
{
    mct_db *db = NULL;
    char err[2048];
    if (mct_db_open(dir, MCT_DB_NOSYNC, err, sizeof err, &db)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    for (int i = 0; i < NREC; i++) {
        mct_db_rec r;
        memset(&r, 0, sizeof r);
        wl_of(i, r.workload, sizeof r.workload);
        r.cpu = 0xab;
        r.threads = 1;
        snprintf(r.schedule, sizeof r.schedule, "tile(j, %d)", i % 50 + 1);
        r.median_ns = 1000 + i;
        r.gflops = 1;
        r.samples = 1;
        if (mct_db_put_trial(db, &r) || mct_db_put_best(db, &r, NULL)) {
            fprintf(stderr, "%s\n", mct_db_errmsg(db));
            mct_db_close(db);
            return -1;
        }
    }
    mct_db_close(db);
    return 0;
}

static unsigned char *slurp(const char *dir, size_t *n)
{
    char f[600];
    snprintf(f, sizeof f, "%s/data.mdb", dir);
    return (unsigned char *)check_slurp(f, n);
}

static const char *write_copy(const char *tag, const unsigned char *d, size_t n)
{
    static char dir[8][600];
    static int ring;
    char *p = dir[ring++ % 8], f[700];
    snprintf(p, 600, "%s/%s", root, tag);
    mkdir(p, 0755);
    snprintf(f, sizeof f, "%s/data.mdb", p);
    FILE *o = fopen(f, "wb");
    if (o) {
        if (n)
            fwrite(d, 1, n, o);
        fclose(o);
    }
    return p;
}

static uint64_t u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int cur_meta(const unsigned char *d)
{
    return u64(d + 144) < u64(d + PS + 144);
}

static int cli(char *out, size_t n, const char *args, const char *dir)
{
    return check_sh(out, n, "%s %s --db %s 2>&1", bin, args, dir);
}

/* What every damaged-file message must do: name the file, say damaged, point to db check. */
static void expect_damaged(const char *dir, const char *what)
{
    char out[8192];
    int rc = check_sh(out, sizeof out, "%s db export --db %s 2>&1 >/dev/null", bin, dir);
    CHECKF(rc == 1 && strstr(out, dir) && strstr(out, "damaged") &&
           strstr(out, "mctune db check --db") && strstr(out, what), "%s: rc %d: %s", what, rc,
           out);
}

/* The advice works: check reports the damage, salvage writes a database that opens and exports. */
static void expect_salvage(const char *dir, const char *tag, size_t min_ok)
{
    char out[16384], sv[700];
    snprintf(sv, sizeof sv, "%s/salvage-%s", root, tag);
    int rc = cli(out, sizeof out, "db check", dir);
    CHECKF(rc == 1 && strstr(out, "damaged") && !strstr(out, " 0 damaged"), "%s: rc %d: %s",
           tag, rc, out);
    char args[800];
    snprintf(args, sizeof args, "db check --salvage %s", sv);
    rc = cli(out, sizeof out, args, dir);
    const char *s = strstr(out, "salvaged ");
    size_t got = s ? strtoul(s + 9, NULL, 10) : 0;
    CHECKF(rc == 1 && s && got >= min_ok, "%s: rc %d, salvaged %zu < %zu: %s", tag, rc, got,
           min_ok, out);
    rc = cli(out, sizeof out, "db check", sv);
    CHECKF(rc == 0 && strstr(out, " 0 damaged"), "%s salvage: rc %d: %s", tag, rc, out);
    rc = check_sh(out, sizeof out, "%s db export --db %s 2>&1 >/dev/null", bin, sv);
    CHECKF(rc == 0, "%s salvage export: rc %d: %s", tag, rc, out);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char good[400], out[8192];
    size_t n = 0;
    snprintf(root, sizeof root, "%s/mct-damage-XXXXXX", tmp);
    if (!mkdtemp(root))
        return perror("mkdtemp"), 1;
    snprintf(bin, sizeof bin, "%s", getenv("MCTUNE") ? getenv("MCTUNE") : "build/mctune");
    have_cli = access(bin, X_OK) == 0;
    snprintf(good, sizeof good, "%s/good", root);
    CHECK(build(good) == 0);
    unsigned char *d = slurp(good, &n), *c = d ? malloc(n) : NULL;
    if (!d || !c || !have_cli) {
        printf("note: no database or no %s; damage checks skipped\n", bin);
        CHECK(d && c);
        free(d);
        free(c);
        return check_done();
    }
    CHECK(cli(out, sizeof out, "db check", good) == 0 && strstr(out, " 0 damaged"));
    int cm = cur_meta(d);

    /* meta page: the map size (once "Cannot allocate memory"), the page size, the signature */
    const struct { int page; int off; const char *what; } metas[] = {
        {cm, 39, "impossible size"}, {cm, 43, "page size"}, {cm, 17, "no LMDB signature"},
        {!cm, 17, "no LMDB signature"}, {cm, 130, "root page"},
    };
    for (size_t i = 0; i < sizeof metas / sizeof metas[0]; i++) {
        char tag[32];
        memcpy(c, d, n);
        c[metas[i].page * PS + metas[i].off] ^= 0xff;
        snprintf(tag, sizeof tag, "meta%zu", i);
        const char *dir = write_copy(tag, c, n);
        expect_damaged(dir, metas[i].what);
        CHECK(cli(out, sizeof out, "db import /dev/null", dir) == 1 && strstr(out, "damaged"));
        if (i == 0)
            expect_salvage(dir, tag, 2 * NREC - 4);
    }

    /* root page (the table of tables): a table's name flipped. Once "not an mctune one". */
    memcpy(c, d, n);
    long rp = (long)u64(d + cm * PS + 128);
    unsigned char *hit = rp > 1 && (size_t)(rp + 1) * PS <= n
                         ? memmem(c + rp * PS, PS, "trials", 6) : NULL;
    CHECK(hit != NULL);
    if (hit) {
        hit[1] ^= 0x20;
        const char *dir = write_copy("root", c, n);
        expect_damaged(dir, "table of tables");
        CHECK(!strstr(out, "not an mctune"));
    }

    /* the trials table's root (a branch page: 300 records fill many leaves) and its first leaf,
     * found through the table of tables as LMDB reads them (stale copies lie elsewhere) */
    long bp = -1, lp = -1;
    if (rp > 1 && (size_t)(rp + 1) * PS <= n) {
        unsigned char *nm = memmem(d + rp * PS, PS, "trials", 6);
        if (nm) {
            bp = (long)u64(nm + 6 + 40);
            uint16_t fl, off;
            if (bp > 1 && (size_t)(bp + 1) * PS <= n) {
                memcpy(&fl, d + bp * PS + 10, 2);
                memcpy(&off, d + bp * PS + 16, 2);
                if (fl == 1 && off <= PS - 8) {
                    uint16_t lo, hi;
                    memcpy(&lo, d + bp * PS + off, 2);
                    memcpy(&hi, d + bp * PS + off + 2, 2);
                    lp = (long)lo | (long)hi << 16;
                } else {
                    bp = -1;
                }
            }
        }
    }
    CHECKF(bp > 1 && lp > 1 && (size_t)(lp + 1) * PS <= n, "root %ld branch %ld leaf %ld", rp, bp, lp);
    if (bp > 1) {
        /* branch page: a child page number flipped */
        memcpy(c, d, n);
        uint16_t off;
        memcpy(&off, c + bp * PS + 16, 2);
        c[bp * PS + off + 2] ^= 0xff;
        const char *dir = write_copy("branch", c, n);
        expect_damaged(dir, "page");
        expect_salvage(dir, "branch", NREC);
    }
    unsigned char *j = NULL;
    if (lp > 1 && (size_t)(lp + 1) * PS <= n) {
        uint16_t off, ks;  /* the first node's value: header (8 bytes), key, then the JSON */
        memcpy(&off, d + lp * PS + 16, 2);
        memcpy(&ks, d + lp * PS + off + 6, 2);
        if (off + 8 + ks < PS && d[lp * PS + off + 8 + ks] == '{')
            j = d + lp * PS + off + 8 + ks;
    }
    CHECK(j != NULL);
    if (j) {
        /* leaf page: a record's JSON damaged; export fails naming it, check finds exactly it */
        memcpy(c, d, n);
        c[j - d] = '#';
        const char *dir = write_copy("leaf", c, n);
        expect_damaged(dir, "not valid JSON");
        expect_salvage(dir, "leaf", 2 * NREC - 2);
    }

    /* truncated: half the file */
    const char *dir = write_copy("trunc", d, n / 2);
    CHECK(check_sh(out, sizeof out, "%s db export --db %s 2>&1 >/dev/null", bin, dir) == 1 &&
          strstr(out, "truncated") &&
          strstr(out, "export"));

    /* empty: refused (once "Bad file descriptor"), and import does not initialise it */
    dir = write_copy("empty", d, 0);
    CHECK(cli(out, sizeof out, "db export", dir) == 1 && strstr(out, "empty (0 bytes)") &&
          strstr(out, "rm "));
    CHECK(cli(out, sizeof out, "db import /dev/null", dir) == 1 && strstr(out, "empty (0 bytes)"));
    {
        char f[700];
        struct stat st;
        snprintf(f, sizeof f, "%s/data.mdb", dir);
        CHECK(stat(f, &st) == 0 && st.st_size == 0);
    }

    /* not LMDB at all: some other file */
    memcpy(c, d, n);
    memset(c, 'x', 2 * PS);
    dir = write_copy("text", c, n);
    CHECK(cli(out, sizeof out, "db export", dir) == 1 && strstr(out, "not an LMDB database") &&
          !strstr(out, "damaged"));

    /* a foreign LMDB file: an LMDB environment with other tables */
    {
        char fd[600];
        MDB_env *env;
        MDB_txn *t;
        MDB_dbi dbi;
        MDB_val k = {5, "hello"}, v = {5, "world"};
        snprintf(fd, sizeof fd, "%s/foreign", root);
        mkdir(fd, 0755);
        int ok = mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 4) == 0 &&
                 mdb_env_open(env, fd, 0, 0644) == 0 && mdb_txn_begin(env, NULL, 0, &t) == 0 &&
                 mdb_dbi_open(t, "users", MDB_CREATE, &dbi) == 0 &&
                 mdb_put(t, dbi, &k, &v, 0) == 0 && mdb_txn_commit(t) == 0;
        mdb_env_close(env);
        CHECK(ok);
        CHECK(cli(out, sizeof out, "db export", fd) == 1 && strstr(out, "not an mctune one") &&
              !strstr(out, "damaged"));
        CHECK(cli(out, sizeof out, "db import /dev/null", fd) == 1 &&
              strstr(out, "not an mctune one"));
    }
    /* a salvage never writes into an existing database */
    CHECK(check_sh(out, sizeof out, "%s db check --db %s --salvage %s 2>&1", bin, good, good) == 1);
    free(d);
    free(c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (check_fail_)
        fprintf(stderr, "kept %s for a look\n", root);
    else if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return check_done();
}
