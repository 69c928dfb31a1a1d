/* batchlab plugins: list the plugins found, or show one plugin's options. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: batchlab plugins [--plugin-path DIR] [NAME | FILE.so]\n"
            "\n"
            "Without NAME, lists every plugin found on the search path (kind, name, version,\n"
            "file, summary); files that fail to load are reported on stderr with the reason.\n"
            "With NAME, shows that plugin's options with their types, defaults and help.\n"
            "A path to a shared object shows the plugins of that file.\n"
            "\n"
            "options:\n"
            "  --plugin-path DIR  search DIR first (may be repeated: searched in that order)\n"
            "\n"
            "search order: --plugin-path, BATCHLAB_PLUGIN_PATH (':'-separated), the build\n"
            "tree's plugin directory, the install prefix's plugin directory.\n");
}

typedef struct row {
    const bl_plugin *plugin;
    const char *file;
} row;

static int cmp_row(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->plugin->kind != y->plugin->kind)
        return (int)x->plugin->kind - (int)y->plugin->kind;
    return strcmp(x->plugin->name, y->plugin->name);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static void print_search_path(FILE *out, const bl_registry *reg)
{
    const char **dirs;
    size_t n = bl_registry_search_path(reg, &dirs);
    fprintf(out, "plugin search path:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %s\n", dirs[i]);
}

/* The table of every plugin, sorted by kind and name. */
static int list_all(const bl_registry *reg)
{
    size_t n = bl_registry_count(reg);
    if (n == 0) {
        fprintf(stderr, "batchlab: no plugins found\n");
        print_search_path(stderr, reg);
        return CLI_OK;
    }
    row *rows = malloc(n * sizeof *rows);
    if (!rows) {
        cli_error("out of memory");
        return CLI_FAILED;
    }
    int w_kind = 4, w_name = 4, w_ver = 7, w_file = 4;
    for (size_t i = 0; i < n; i++) {
        rows[i].plugin = bl_registry_at(reg, i, &rows[i].file);
        const bl_plugin *p = rows[i].plugin;
        int k = (int)strlen(bl_plugin_kind_name(p->kind)), nm = (int)strlen(p->name);
        int v = (int)strlen(or_empty(p->version)), f = (int)strlen(rows[i].file);
        w_kind = k > w_kind ? k : w_kind;
        w_name = nm > w_name ? nm : w_name;
        w_ver = v > w_ver ? v : w_ver;
        w_file = f > w_file ? f : w_file;
    }
    qsort(rows, n, sizeof *rows, cmp_row);
    printf("%-*s  %-*s  %-*s  %-*s  %s\n", w_kind, "KIND", w_name, "NAME", w_ver, "VERSION",
           w_file, "FILE", "SUMMARY");
    for (size_t i = 0; i < n; i++) {
        const bl_plugin *p = rows[i].plugin;
        printf("%-*s  %-*s  %-*s  %-*s  %s\n", w_kind, bl_plugin_kind_name(p->kind), w_name,
               p->name, w_ver, or_empty(p->version), w_file, rows[i].file, or_empty(p->summary));
    }
    free(rows);
    return CLI_OK;
}

/* How a declared default reads in the table. */
static const char *default_text(const bl_option *o)
{
    if (!o->default_value)
        return "(required)";
    if (o->default_value[0] == '\0')
        return o->type == BL_TYPE_STRING ? "\"\"" : "(empty)";
    return o->default_value;
}

static void describe(const bl_plugin *p, const char *file)
{
    printf("%s %s %s\n", bl_plugin_kind_name(p->kind), p->name, or_empty(p->version));
    if (p->summary && p->summary[0])
        printf("  %s\n", p->summary);
    printf("file: %s\n", file);
    const bl_option *opts = p->options;
    if (!opts || !opts[0].name) {
        printf("options: none\n");
        return;
    }
    int w_name = 4, w_type = 4, w_def = 7;
    for (const bl_option *o = opts; o->name; o++) {
        int a = (int)strlen(o->name), b = (int)strlen(bl_type_name(o->type)),
            c = (int)strlen(default_text(o));
        w_name = a > w_name ? a : w_name;
        w_type = b > w_type ? b : w_type;
        w_def = c > w_def ? c : w_def;
    }
    printf("options:\n");
    printf("  %-*s  %-*s  %-*s  %s\n", w_name, "NAME", w_type, "TYPE", w_def, "DEFAULT", "HELP");
    for (const bl_option *o = opts; o->name; o++)
        printf("  %-*s  %-*s  %-*s  %s\n", w_name, o->name, w_type, bl_type_name(o->type), w_def,
               default_text(o), or_empty(o->help));
}

/* Every plugin called `name` (of any kind), or the plugins of a file. */
static int show(bl_ctx *ctx, bl_registry *reg, const char *name)
{
    size_t name_len = strlen(name);
    bool is_path = strchr(name, '/') || (name_len > 3 && strcmp(name + name_len - 3, ".so") == 0);
    if (is_path) {
        if (bl_registry_load(ctx, reg, name) != BL_OK)
            return cli_fail(ctx);
    } else if (bl_registry_scan(ctx, reg) != BL_OK) {
        return cli_fail(ctx);
    }
    size_t n = bl_registry_count(reg), shown = 0;
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) {
        cli_error("out of memory");
        return CLI_FAILED;
    }
    for (size_t i = 0; i < n; i++) {
        const char *file;
        const bl_plugin *p = bl_registry_at(reg, i, &file);
        names[i] = p->name;
        if (is_path || strcmp(p->name, name) == 0) {
            if (shown++)
                printf("\n");
            describe(p, file);
        }
    }
    if (shown == 0) {
        const char *near = bl_nearest_name(name, names, n);
        /* The names, sorted, each once (a model and a scheduler may share one). */
        qsort(names, n, sizeof *names, cmp_name);
        char avail[2048] = "";
        size_t len = 0;
        for (size_t i = 0; i < n && len < sizeof avail; i++)
            if (i == 0 || strcmp(names[i - 1], names[i]) != 0)
                len += (size_t)snprintf(avail + len, sizeof avail - len, "%s%s", len ? ", " : "",
                                        names[i]);
        if (near)
            cli_error("no plugin named '%s'; did you mean '%s'? available: %s", name, near,
                      n ? avail : "none");
        else
            cli_error("no plugin named '%s'; available: %s", name, n ? avail : "none");
        print_search_path(stderr, reg);
    }
    free(names);
    return shown ? CLI_OK : CLI_FAILED;
}

/* A flag of `plugins`: --plugin-path DIR (each added in order) and --help. */
static int plugins_flag(void *user, int id, const char *name, const char *value)
{
    (void)user;
    (void)name;
    if (id == 'h') {
        usage(stdout);
        return CLI_OK;
    }
    return cli_add_plugin_path(value) == CLI_OK ? CLI_CONTINUE : CLI_FAILED;
}

int cmd_plugins(int argc, char **argv)
{
    static const struct option flags[] = {{"plugin-path", required_argument, NULL, 'P'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int first = 0;
    int parsed = cli_getopt("plugins", argc, argv, "h", flags, CLI_OPERANDS_ANYWHERE,
                            plugins_flag, NULL, &first);
    if (parsed != CLI_CONTINUE)
        return parsed;
    if (first + 1 < argc)
        return cli_usage_error("plugins", "one plugin name at a time ('%s' and '%s')",
                               argv[first], argv[first + 1]);
    const char *name = first < argc ? argv[first] : NULL;

    bl_ctx *ctx = cli_ctx_new();
    if (!ctx)
        return CLI_FAILED;
    bl_registry *reg = NULL;
    int status;
    if (bl_registry_new(ctx, &reg) != BL_OK)
        status = cli_fail(ctx);
    else if (name)
        status = show(ctx, reg, name);
    else if (bl_registry_scan(ctx, reg) != BL_OK)
        status = cli_fail(ctx);
    else
        status = list_all(reg);
    bl_registry_free(reg);
    bl_ctx_free(ctx);
    return status;
}
