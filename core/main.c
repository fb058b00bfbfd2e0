/*
 * main.c: the `sluice` command line: start, stop, quit, reload, restart, health, check,
 * config parse, version. Exit codes: 0 success, 1 failure (with a message on stderr).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <luajit.h>
#include <openssl/opensslv.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/sl_log.h"
#include "lua/sl_lua_vm.h"
#include "lua/sl_shdict.h"
#include "process/sl_master.h"

typedef struct {
    const char *conf;
    const char *prefix;
    int foreground;
    int all;
    int timeout;  /* quit: seconds before TERM */
    const char *arg; /* positional argument (check FILE, config parse FILE) */
    const char *sub; /* config subcommand */
} cli_t;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sluice COMMAND [OPTIONS]\n\n"
            "Commands:\n"
            "  start [-c CONF] [-p PREFIX] [--foreground]  start the gateway (daemon by default)\n"
            "  stop [-p PREFIX]                             stop at once (SIGTERM)\n"
            "  quit [-p PREFIX] [-t SECONDS]                stop gracefully, draining requests\n"
            "  reload [-c CONF] [-p PREFIX]                 reload the configuration (SIGHUP)\n"
            "  restart [-c CONF] [-p PREFIX]                stop, then start\n"
            "  health [-p PREFIX]                           tell whether the gateway runs\n"
            "  check CONF                                   validate a configuration file\n"
            "  config parse FILE                            validate a declarative kong.yml\n"
            "  config db_import FILE [-c CONF] [-p PREFIX]  load a kong.yml into the store\n"
            "  config db_export [FILE] [-c CONF]            write the store as a kong.yml\n"
            "  migrations bootstrap|up|list|reset [-y]      manage the store's schema\n"
            "  version [-a]                                 print the version\n");
}

static int make_dirs(const char *prefix, char *err, size_t errlen)
{
    const char *sub[] = {"", "/logs", "/pids"};
    for (size_t i = 0; i < SL_ARRAY_SIZE(sub); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s%s", prefix, sub[i]);
        /* mkdir -p for the prefix itself */
        for (char *p = path + 1; *p; p++) {
            if (*p == '/') {
                *p = '\0';
                mkdir(path, 0755);
                *p = '/';
            }
        }
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
            return SL_ERROR;
        }
    }
    return SL_OK;
}

static pid_t read_pid(const char *prefix)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/pids/sluice.pid", prefix);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int pid = 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid > 0 ? (pid_t)pid : 0;
}

/* A zombie (exited, not yet reaped by its parent, init for a daemon) is not running. */
static int zombie(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *end = strrchr(buf, ')'); /* the state follows "(comm)" */
    return end != NULL && end[1] == ' ' && end[2] == 'Z';
}

static int running(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM) && !zombie(pid);
}

static char *abs_path(const char *p)
{
    if (p == NULL)
        return NULL;
    if (p[0] == '/')
        return strdup(p);
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return strdup(p);
    size_t n = strlen(cwd) + strlen(p) + 2;
    char *s = malloc(n);
    if (s == NULL)
        abort();
    snprintf(s, n, "%s/%s", cwd, p);
    return s;
}

/* The prefix a command acts on: -p, else the conf's prefix (from -c or defaults + env). */
static char *resolve_prefix(const cli_t *cli, char *err, size_t errlen)
{
    if (cli->prefix)
        return abs_path(cli->prefix);
    sl_conf_t *c = sl_master_load_conf(cli->conf, NULL, err, errlen);
    if (c == NULL)
        return NULL;
    char *p = strdup(c->prefix);
    sl_conf_destroy(c);
    return p;
}

static void absolutize(char **path)
{
    if (*path && (*path)[0] && (*path)[0] != '/') {
        char *a = abs_path(*path);
        free(*path);
        *path = a;
    }
}

/* lua_shared_dict = name size, name size: the zones every worker shares (ngx.shared),
 * created once here, before the first fork; a reload keeps them. */
static int create_shared_dicts(const sl_conf_t *conf, char *err, size_t errlen)
{
    const char *spec = sl_conf_get(conf, "lua_shared_dict");
    if (spec == NULL)
        return SL_OK;
    char *copy = strdup(spec);
    if (copy == NULL)
        abort();
    char *save = NULL;
    int rc = SL_OK;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char name[128], size[64];
        if (sscanf(item, " %127s %63s", name, size) != 2) {
            snprintf(err, errlen, "property 'lua_shared_dict': expected \"name size\", got \"%s\"",
                     item);
            rc = SL_ERROR;
            break;
        }
        ssize_t bytes = sl_shdict_parse_size(size, strlen(size));
        if (bytes <= 0) {
            snprintf(err, errlen, "property 'lua_shared_dict': invalid size \"%s\" for %s", size,
                     name);
            rc = SL_ERROR;
            break;
        }
        if (sl_shdict_find(name, strlen(name)) != NULL)
            continue;
        char e[256];
        if (sl_shdict_create(name, (size_t)bytes, e, sizeof(e)) == NULL) {
            snprintf(err, errlen, "property 'lua_shared_dict': %s", e);
            rc = SL_ERROR;
            break;
        }
    }
    free(copy);
    return rc;
}

static int cmd_start(const cli_t *cli)
{
    char err[8192];
    char *conf_path = abs_path(cli->conf);
    sl_conf_t *conf = sl_master_load_conf(conf_path, cli->prefix, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        free(conf_path);
        return 1;
    }
    absolutize(&conf->declarative_config);
    if (make_dirs(conf->prefix, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "Error: %s\n", err);
        sl_conf_destroy(conf);
        free(conf_path);
        return 1;
    }
    pid_t old = read_pid(conf->prefix);
    if (running(old)) {
        fprintf(stderr, "Error: Sluice is already running in %s (pid %d)\n", conf->prefix,
                (int)old);
        sl_conf_destroy(conf);
        free(conf_path);
        return 1;
    }
    if (create_shared_dicts(conf, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "Error: %s\n", err);
        sl_conf_destroy(conf);
        free(conf_path);
        return 1;
    }
    lua_State *L = NULL;
    sl_decl_t *decl = NULL;
    if (sl_master_load_decl(conf, &L, &decl, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "Error: %s\n", err);
        sl_conf_destroy(conf);
        free(conf_path);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/.sluice_conf_path", conf->prefix);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s\n", conf_path ? conf_path : "");
        fclose(f);
    }

    sl_master_t m = {.conf_path = conf_path, .prefix = strdup(conf->prefix), .conf = conf,
                     .decl = decl, .L = L, .ready_fd = -1};
    int rc = 1;
    int level = sl_log_level_parse(conf->log_level ? conf->log_level : "notice");
    char *elog = sl_conf_prefixed(conf, conf->proxy_error_log ? conf->proxy_error_log
                                                              : "logs/error.log");
    if (sl_log_open(elog, level < 0 ? SL_LOG_NOTICE : level) != SL_OK) {
        fprintf(stderr, "Error: cannot open error log %s: %s\n", elog, strerror(errno));
        free(elog);
        sl_master_dispose(&m);
        return 1;
    }
    free(elog);

    int daemon = conf->daemon && !cli->foreground;
    if (!daemon) {
        printf("Sluice started (foreground, prefix %s)\n", m.prefix);
        fflush(stdout);
        rc = sl_master_run(&m, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "Error: %s\n", err);
        sl_master_dispose(&m);
        return rc;
    }
    int pfd[2], efd[2];
    if (pipe(pfd) < 0 || pipe(efd) < 0) {
        fprintf(stderr, "Error: pipe() failed: %s\n", strerror(errno));
        sl_master_dispose(&m);
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "Error: fork() failed: %s\n", strerror(errno));
        sl_master_dispose(&m);
        return 1;
    }
    if (pid > 0) {
        close(pfd[1]);
        close(efd[1]);
        sl_master_dispose(&m);
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        int ok = poll(&pf, 1, 15000) == 1;
        char c = 0;
        ok = ok && read(pfd[0], &c, 1) == 1 && c == '1';
        if (!ok) {
            char msg[4096];
            ssize_t n = read(efd[0], msg, sizeof(msg) - 1);
            msg[n > 0 ? n : 0] = '\0';
            fprintf(stderr, "Error: %s\n", n > 0 ? msg : "the gateway did not start");
            return 1;
        }
        printf("Sluice started\n");
        return 0;
    }
    close(pfd[0]);
    close(efd[0]);
    setsid();
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        if (devnull > 2)
            close(devnull);
    }
    dup2(sl_log_fd(), 2);
    m.ready_fd = pfd[1];
    rc = sl_master_run(&m, err, sizeof(err));
    if (rc != 0) {
        ssize_t w = write(efd[1], err, strlen(err));
        (void)w;
    }
    sl_master_dispose(&m);
    sl_log_close();
    return rc;
}

static int wait_gone(pid_t pid, int seconds)
{
    for (int i = 0; i < seconds * 20; i++) {
        if (!running(pid))
            return 1;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return !running(pid);
}

static int cmd_signal(const cli_t *cli, const char *cmd)
{
    char err[4096];
    char *prefix = resolve_prefix(cli, err, sizeof(err));
    if (prefix == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    pid_t pid = read_pid(prefix);
    if (!running(pid)) {
        fprintf(stderr, "Error: Sluice is not running at %s\n", prefix);
        free(prefix);
        return 1;
    }
    int rc = 0;
    if (strcmp(cmd, "stop") == 0) {
        kill(pid, SIGTERM);
        if (!wait_gone(pid, 10)) {
            kill(pid, SIGKILL);
            wait_gone(pid, 2);
        }
        printf("Sluice stopped\n");
    } else if (strcmp(cmd, "quit") == 0) {
        kill(pid, SIGQUIT);
        int t = cli->timeout > 0 ? cli->timeout : 10;
        if (!wait_gone(pid, t)) {
            fprintf(stderr, "Timeout, sending SIGTERM\n");
            kill(pid, SIGTERM);
            wait_gone(pid, 10);
        }
        printf("Sluice stopped (gracefully)\n");
    } else if (strcmp(cmd, "reload") == 0) {
        /* validate before signalling, so a bad file is reported here and changes nothing */
        char *conf_path = NULL;
        if (cli->conf) {
            conf_path = abs_path(cli->conf);
        } else {
            char path[4096], line[4096] = "";
            snprintf(path, sizeof(path), "%s/.sluice_conf_path", prefix);
            FILE *f = fopen(path, "r");
            if (f) {
                if (fgets(line, sizeof(line), f))
                    line[strcspn(line, "\n")] = '\0';
                fclose(f);
            }
            conf_path = line[0] ? strdup(line) : NULL;
        }
        sl_conf_t *conf = sl_master_load_conf(conf_path, prefix, err, sizeof(err));
        lua_State *L = NULL;
        sl_decl_t *decl = NULL;
        if (conf != NULL)
            absolutize(&conf->declarative_config);
        if (conf == NULL || sl_master_check_tls(conf, err, sizeof(err)) != SL_OK ||
            sl_master_load_decl(conf, &L, &decl, err, sizeof(err)) != SL_OK) {
            fprintf(stderr, "Error: %s\nThe running configuration was kept.\n", err);
            if (conf)
                sl_conf_destroy(conf);
            free(conf_path);
            free(prefix);
            return 1;
        }
        sl_decl_destroy(decl, L);
        lua_close(L);
        sl_conf_destroy(conf);
        if (cli->conf) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/.sluice_conf_path", prefix);
            FILE *f = fopen(path, "w");
            if (f) {
                fprintf(f, "%s\n", conf_path);
                fclose(f);
            }
        }
        free(conf_path);
        kill(pid, SIGHUP);
        printf("Sluice reloaded\n");
    }
    free(prefix);
    return rc;
}

static int cmd_health(const cli_t *cli)
{
    char err[4096];
    char *prefix = resolve_prefix(cli, err, sizeof(err));
    if (prefix == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    pid_t pid = read_pid(prefix);
    if (!running(pid)) {
        fprintf(stderr, "Error: Sluice is not running at %s\n", prefix);
        free(prefix);
        return 1;
    }
    printf("master.......running\nSluice is healthy at %s\n", prefix);
    free(prefix);
    return 0;
}

static int cmd_check(const cli_t *cli)
{
    if (cli->arg == NULL) {
        fprintf(stderr, "Error: missing the configuration file: sluice check FILE\n");
        return 1;
    }
    char err[8192];
    sl_conf_t *conf = sl_master_load_conf(cli->arg, NULL, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (conf->declarative_config && conf->declarative_config[0]) {
        lua_State *L = NULL;
        sl_decl_t *decl = NULL;
        if (sl_master_load_decl(conf, &L, &decl, err, sizeof(err)) != SL_OK) {
            fprintf(stderr, "Error: %s\n", err);
            rc = 1;
        } else {
            sl_decl_destroy(decl, L);
            lua_close(L);
        }
    }
    if (rc == 0)
        printf("configuration at %s is valid\n", cli->arg);
    sl_conf_destroy(conf);
    return rc;
}

static int cmd_config(const cli_t *cli)
{
    if (cli->sub == NULL || strcmp(cli->sub, "parse") != 0) {
        fprintf(stderr, "Error: unknown config command '%s' (supported: parse)\n",
                cli->sub ? cli->sub : "");
        return 1;
    }
    if (cli->arg == NULL) {
        fprintf(stderr, "Error: missing the declarative file: sluice config parse FILE\n");
        return 1;
    }
    char err[8192];
    sl_conf_t *conf = sl_master_load_conf(cli->conf, NULL, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    lua_State *L = sl_lua_vm_create(conf, err, sizeof(err));
    if (L == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        sl_conf_destroy(conf);
        return 1;
    }
    if (sl_master_load_plugins(L, conf, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "Error: %s\n", err);
        lua_close(L);
        sl_conf_destroy(conf);
        return 1;
    }
    sl_decl_t *d = sl_decl_load(L, cli->arg, NULL, err, sizeof(err));
    int rc = 0;
    if (d == NULL) {
        fprintf(stderr, "Error: failed parsing declarative configuration: %s\n", err);
        rc = 1;
    } else {
        printf("parse successful: %zu services, %zu routes, %zu plugins, %zu consumers\n",
               d->nservices, d->nroutes, d->nplugins, d->nconsumers);
        sl_decl_destroy(d, L);
    }
    lua_close(L);
    sl_conf_destroy(conf);
    return rc;
}

/* migrations and config db_import/db_export: the store's commands, written in Lua
 * (lua/sluice/db/cli.lua), get the whole command line and the loaded configuration. */
static int cmd_store(int argc, char **argv, const cli_t *cli)
{
    char err[8192];
    sl_conf_t *conf = sl_master_load_conf(cli->conf, cli->prefix, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        return 1;
    }
    lua_State *L = sl_lua_vm_create(conf, err, sizeof(err));
    if (L == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        sl_conf_destroy(conf);
        return 1;
    }
    int rc = 1;
    if (sl_master_load_plugins(L, conf, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "Error: %s\n", err);
        goto done;
    }
    lua_getglobal(L, "require");
    lua_pushliteral(L, "sluice.db.cli");
    if (sl_lua_pcall(L, 1, 1, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "Error: %s\n", err);
        goto done;
    }
    lua_getfield(L, -1, "run");
    lua_createtable(L, argc - 1, 0);
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_getglobal(L, "kong");
    lua_getfield(L, -1, "configuration");
    lua_remove(L, -2);
    if (sl_lua_pcall(L, 2, 1, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "Error: %s\n", err);
        goto done;
    }
    rc = (int)lua_tointeger(L, -1);
done:
    lua_close(L);
    sl_conf_destroy(conf);
    return rc;
}

static int cmd_version(const cli_t *cli)
{
    printf("Sluice %s\n", SLUICE_VERSION);
    if (cli->all) {
        char pcre[64] = "";
        pcre2_config(PCRE2_CONFIG_VERSION, pcre);
        printf("%s\nlibevent %s\n%s\nPCRE2 %s\n", LUAJIT_VERSION, event_get_version(),
               OPENSSL_VERSION_TEXT, pcre);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    cli_t cli = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--conf") == 0) && i + 1 < argc) {
            cli.conf = argv[++i];
        } else if ((strcmp(a, "-p") == 0 || strcmp(a, "--prefix") == 0) && i + 1 < argc) {
            cli.prefix = argv[++i];
        } else if ((strcmp(a, "-t") == 0 || strcmp(a, "--timeout") == 0) && i + 1 < argc) {
            cli.timeout = atoi(argv[++i]);
        } else if (strcmp(a, "--foreground") == 0 || strcmp(a, "-f") == 0) {
            cli.foreground = 1;
        } else if (strcmp(a, "-a") == 0 || strcmp(a, "--all") == 0) {
            cli.all = 1;
        } else if (strcmp(a, "--v") == 0 || strcmp(a, "--vv") == 0) {
            /* verbosity flags accepted for Kong compatibility */
        } else if (a[0] == '-' && (strcmp(cmd, "migrations") == 0 ||
                                   (cli.sub != NULL && strncmp(cli.sub, "db_", 3) == 0))) {
            /* -y, -q, -f ...: lua/sluice/db/cli.lua reads them */
        } else if (a[0] == '-') {
            fprintf(stderr, "Error: unknown option '%s'\n", a);
            usage(stderr);
            return 1;
        } else if (strcmp(cmd, "config") == 0 && cli.sub == NULL) {
            cli.sub = a;
        } else if (cli.arg == NULL) {
            cli.arg = a;
        } else if (strcmp(cmd, "migrations") == 0) {
            /* more words are the store command's own */
        } else {
            fprintf(stderr, "Error: unexpected argument '%s'\n", a);
            return 1;
        }
    }
    if (strcmp(cmd, "start") == 0)
        return cmd_start(&cli);
    if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "quit") == 0 || strcmp(cmd, "reload") == 0)
        return cmd_signal(&cli, cmd);
    if (strcmp(cmd, "restart") == 0) {
        char err[4096];
        char *prefix = resolve_prefix(&cli, err, sizeof(err));
        if (prefix && running(read_pid(prefix))) {
            cli_t stop = cli;
            stop.prefix = prefix;
            if (cmd_signal(&stop, "stop") != 0) {
                free(prefix);
                return 1;
            }
        }
        free(prefix);
        return cmd_start(&cli);
    }
    if (strcmp(cmd, "health") == 0)
        return cmd_health(&cli);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(&cli);
    if (strcmp(cmd, "migrations") == 0 ||
        (strcmp(cmd, "config") == 0 && cli.sub != NULL &&
         (strcmp(cli.sub, "db_import") == 0 || strcmp(cli.sub, "db_export") == 0)))
        return cmd_store(argc, argv, &cli);
    if (strcmp(cmd, "config") == 0)
        return cmd_config(&cli);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "-v") == 0)
        return cmd_version(&cli);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "Error: unknown command '%s'\n", cmd);
    usage(stderr);
    return 1;
}
