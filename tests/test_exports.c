/* The shared library exports exactly the header's API: the `l2l_` names that
 * `nm -D --defined-only BUILD/libl2l.so` lists equal the functions include/l2l.h declares
 * with L2L_API. The library is compiled with -fvisibility=hidden, so an internal helper
 * can only leak out by being marked L2L_API, and a declared function can only go missing
 * by losing its definition; either way this test names it.
 * BUILD is found from this program's own path (BUILD/tests/test_exports), the header from
 * this file's path as the compiler saw it (__FILE__, relative to where make ran). */
#include <ctype.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define MAX_NAMES 512
#define NAME_LEN 128

typedef struct {
    int n;
    char name[MAX_NAMES][NAME_LEN];
} name_set;

static void set_add(name_set *s, const char *name, size_t len, const char *source)
{
    if (len >= NAME_LEN)
        fail_msg("%s: name '%.*s...' longer than %d characters", source, 40, name, NAME_LEN - 1);
    if (s->n == MAX_NAMES) fail_msg("%s: more than %d names; raise MAX_NAMES", source, MAX_NAMES);
    memcpy(s->name[s->n], name, len);
    s->name[s->n][len] = '\0';
    s->n++;
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

/* Sorts and removes repeats (a function may be declared twice). */
static void set_finish(name_set *s)
{
    qsort(s->name, (size_t)s->n, NAME_LEN, cmp_name);
    int k = 0;
    for (int i = 0; i < s->n; i++)
        if (k == 0 || strcmp(s->name[i], s->name[k - 1]) != 0)
            memmove(s->name[k++], s->name[i], NAME_LEN);
    s->n = k;
}

static void require_file(const char *path, const char *what, const char *hint)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        fail_msg("%s not found at %s; %s", what, path, hint);
}

/* ------------------------------------------------------------ the library */

/* BUILD/libl2l.so, BUILD being the parent of the folder that holds this program. */
static void library_path(char *out, size_t size)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) fail_msg("cannot read /proc/self/exe to find the build folder");
    exe[n] = '\0';
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) fail_msg("unexpected program path %s: expected BUILD/tests/test_exports", exe);
        *slash = '\0';
    }
    snprintf(out, size, "%s/libl2l.so", exe);
}

static void exported_names(const char *lib, name_set *s)
{
    require_file(lib, "the shared library",
                 "build it with `make` (this program expects to live in BUILD/tests/)");
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s' 2>&1", lib);
    FILE *p = popen(cmd, "r");
    if (!p) fail_msg("cannot run: %s", cmd);
    char line[1024], first_line[1024] = "";
    int lines = 0;
    while (fgets(line, sizeof line, p)) {
        if (lines++ == 0) snprintf(first_line, sizeof first_line, "%s", line);
        /* "ADDRESS TYPE NAME[@VERSION]": the name is the last field */
        char *name = strrchr(line, ' ');
        name = name ? name + 1 : line;
        size_t len = strcspn(name, "@\n");
        if (strncmp(name, "l2l_", 4) == 0) set_add(s, name, len, lib);
    }
    int rc = pclose(p);
    if (rc != 0)
        fail_msg("`%s` failed (exit status %d): %s(is binutils' nm installed?)", cmd,
                 WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, first_line);
}

/* ------------------------------------------------------------- the header */

static char *read_text(const char *path)
{
    require_file(path, "the public header",
                 "run this program from the folder make compiled it in (the repository root)");
    size_t n;
    return tu_read_file(path, &n);
}

/* Blanks out comments and preprocessor lines (the #define of L2L_API itself), keeping
 * line breaks, so that what is left is declarations. */
static void strip(char *t)
{
    int line_start = 1;
    for (char *c = t; *c;) {
        if (c[0] == '/' && c[1] == '*') {
            char *end = strstr(c + 2, "*/");
            end = end ? end + 2 : c + strlen(c);
            for (; c < end; c++)
                if (*c != '\n') *c = ' ';
        } else if (c[0] == '/' && c[1] == '/') {
            for (; *c && *c != '\n'; c++) *c = ' ';
        } else if (line_start && *c == '#') {
            /* a directive runs to a newline not escaped by a backslash */
            for (int escaped = 0; *c && !(*c == '\n' && !escaped); c++) {
                escaped = *c == '\\';
                if (*c != '\n') *c = ' ';
            }
        } else {
            if (*c == '\n') line_start = 1;
            else if (!isspace((unsigned char)*c)) line_start = 0;
            c++;
        }
    }
}

static int is_ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Every `L2L_API ... name(`: the identifier just before the declaration's first '('. */
static void declared_names(const char *path, name_set *s)
{
    char *text = read_text(path);
    strip(text);
    for (char *c = text; (c = strstr(c, "L2L_API")) != NULL; c += 7) {
        if ((c > text && is_ident(c[-1])) || is_ident(c[7])) continue;
        char *paren = strchr(c, '(');
        char *semi = strchr(c, ';');
        if (!paren || (semi && semi < paren))
            fail_msg("%s: an L2L_API declaration without a parameter list near '%.60s'", path, c);
        char *end = paren;
        while (end > c && isspace((unsigned char)end[-1])) end--;
        char *begin = end;
        while (begin > c && is_ident(begin[-1])) begin--;
        if (end - begin < 5 || strncmp(begin, "l2l_", 4) != 0)
            fail_msg("%s: cannot read the function name of the declaration '%.*s'; every L2L_API "
                     "function's name starts with l2l_", path, (int)(paren - c), c);
        set_add(s, begin, (size_t)(end - begin), path);
    }
    free(text);
}

/* ------------------------------------------------------------------- test */

static void test_exports_equal_header(void **state)
{
    (void)state;
    static name_set exported, declared;
    char lib[4160], header[4096]; /* lib: room for the 4096-byte build path and the name */
    library_path(lib, sizeof lib);
    const char *src = __FILE__, *slash = strrchr(src, '/');
    /* tests/test_exports.c -> include/l2l.h, beside tests/ */
    snprintf(header, sizeof header, "%.*s%s../include/l2l.h", slash ? (int)(slash - src) : 0,
             src, slash ? "/" : "");
    exported_names(lib, &exported);
    declared_names(header, &declared);
    set_finish(&exported);
    set_finish(&declared);
    if (exported.n == 0) fail_msg("%s exports no l2l_ names at all", lib);
    if (declared.n == 0) fail_msg("%s declares no L2L_API functions at all", header);

    int missing = 0, extra = 0, i = 0, j = 0;
    while (i < exported.n || j < declared.n) {
        int c = i == exported.n   ? 1
                : j == declared.n ? -1
                                  : strcmp(exported.name[i], declared.name[j]);
        if (c < 0) {
            print_error("exported but not declared in l2l.h: %s\n", exported.name[i++]);
            extra++;
        } else if (c > 0) {
            print_error("declared L2L_API but not exported: %s\n", declared.name[j++]);
            missing++;
        } else {
            i++, j++;
        }
    }
    print_message("%s: %d l2l_ names exported; %s: %d declared\n", lib, exported.n, header,
                  declared.n);
    if (extra || missing)
        fail_msg("the library's exports and the header differ: %d exported but not declared, "
                 "%d declared but not exported (listed above)", extra, missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exports_equal_header),
    };
    return cmocka_run_group_tests_name("exports", tests, NULL, NULL);
}
