#include "process/sl_master.h"
#include "process/sl_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
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
#include "net/sl_listener.h"
#include "process/sl_worker.h"

#define MAX_WORKERS 256

typedef struct {
    pid_t pid;
    int index;
    int old;              /* from a previous generation, draining */
    time_t started;
} worker_slot_t;

static volatile sig_atomic_t sig_chld, sig_hup, sig_quit, sig_term;

static void on_signal(int sig)
{
    switch (sig) {
    case SIGCHLD: sig_chld = 1; break;
    case SIGHUP: sig_hup = 1; break;
    case SIGQUIT: sig_quit = 1; break;
    default: sig_term = 1; break;
    }
}

void sl_master_dispose(sl_master_t *m)
{
    if (m->decl)
        sl_decl_destroy(m->decl, m->L);
    if (m->L)
        lua_close(m->L);
    if (m->conf)
        sl_conf_destroy(m->conf);
    free(m->conf_path);
    free(m->prefix);
    m->decl = NULL;
    m->L = NULL;
    m->conf = NULL;
    m->conf_path = NULL;
    m->prefix = NULL;
}

static void log_conf_warning(void *ud, const char *msg)
{
    (void)ud;
    sl_log_warn("%s", msg);
}

static void stderr_conf_warning(void *ud, const char *msg)
{
    (void)ud;
    fprintf(stderr, "Warning: %s\n", msg);
}

sl_conf_t *sl_master_load_conf(const char *conf_path, const char *prefix_override, char *err,
                               size_t errlen)
{
    sl_conf_t *c = sl_conf_load(conf_path, NULL,
                                getppid() == 1 ? log_conf_warning : stderr_conf_warning, NULL, err,
                                errlen);
    if (c == NULL)
        return NULL;
    if (prefix_override != NULL) {
        free(c->prefix);
        c->prefix = strdup(prefix_override);
    }
    /* make the prefix absolute so the daemon and the CLI agree on it */
    if (c->prefix && c->prefix[0] != '/') {
        char cwd[4096];
        if (getcwd(cwd, sizeof(cwd)) != NULL) {
            size_t n = strlen(cwd) + strlen(c->prefix) + 2;
            char *abs = malloc(n);
            if (abs == NULL)
                abort();
            snprintf(abs, n, "%s/%s", cwd, c->prefix);
            free(c->prefix);
            c->prefix = abs;
        }
    }
    size_t n = strlen(c->prefix);
    while (n > 1 && c->prefix[n - 1] == '/')
        c->prefix[--n] = '\0';
    return c;
}

int sl_master_load_plugins(lua_State *L, const sl_conf_t *conf, char *err, size_t errlen)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "sluice.plugins");
    if (sl_lua_pcall(L, 1, 1, err, errlen) != SL_OK)
        return SL_ERROR;
    lua_getfield(L, -1, "load");
    lua_remove(L, -2);
    lua_pushstring(L, conf->plugins && conf->plugins[0] ? conf->plugins : "bundled");
    if (sl_lua_pcall(L, 1, 2, err, errlen) != SL_OK)
        return SL_ERROR;
    if (!lua_toboolean(L, -2)) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "plugins");
        lua_pop(L, 2);
        return SL_ERROR;
    }
    lua_pop(L, 2);
    return SL_OK;
}

int sl_master_load_decl(sl_conf_t *conf, lua_State **Lout, sl_decl_t **dout, char *err,
                        size_t errlen)
{
    lua_State *L = sl_lua_vm_create(conf, err, errlen);
    if (L == NULL)
        return SL_ERROR;
    /* plugins first: the declarative loader validates plugin rows against them */
    if (sl_master_load_plugins(L, conf, err, errlen) != SL_OK) {
        lua_close(L);
        return SL_ERROR;
    }
    sl_decl_t *d;
    int store = conf->database && strcmp(conf->database, "off") != 0;
    if (store) {
        /* the store is the truth (declarative_config is not read, as in Kong): it must be
         * reachable and migrated; each worker loads the entities itself */
        if ((conf->declarative_config && conf->declarative_config[0]) ||
            (conf->declarative_config_string && conf->declarative_config_string[0])) {
            /* easy to miss: say it where the operator looks */
            const char *msg = "declarative_config is ignored with database = %s (set database "
                              "= off to serve it, or load it with 'sluice config db_import')";
            fprintf(stderr, "Warning: ");
            fprintf(stderr, msg, conf->database);
            fputc('\n', stderr);
            sl_log_warn(msg, conf->database);
        }
        lua_getglobal(L, "require");
        lua_pushliteral(L, "sluice.db");
        if (sl_lua_pcall(L, 1, 1, err, errlen) != SL_OK) {
            lua_close(L);
            return SL_ERROR;
        }
        lua_getfield(L, -1, "check_start");
        lua_getglobal(L, "kong");
        lua_getfield(L, -1, "configuration");
        lua_remove(L, -2);
        if (sl_lua_pcall(L, 1, 2, err, errlen) != SL_OK) {
            lua_close(L);
            return SL_ERROR;
        }
        if (!lua_toboolean(L, -2)) {
            const char *msg = lua_tostring(L, -1);
            snprintf(err, errlen, "%s", msg ? msg : "the configuration store is not usable");
            lua_close(L);
            return SL_ERROR;
        }
        lua_pop(L, 3);
        d = sl_decl_empty(err, errlen);
    } else if (conf->declarative_config && conf->declarative_config[0]) {
        d = sl_decl_load(L, conf->declarative_config, NULL, err, errlen);
    } else if (conf->declarative_config_string && conf->declarative_config_string[0]) {
        d = sl_decl_load(L, NULL, conf->declarative_config_string, err, errlen);
    } else {
        d = sl_decl_empty(err, errlen);
    }
    if (d == NULL) {
        lua_close(L);
        return SL_ERROR;
    }
    *Lout = L;
    *dout = d;
    return SL_OK;
}

/* The listeners. An entry with the reuseport flag holds no socket in the master: each
 * worker gets its own SO_REUSEPORT socket at spawn, so the kernel spreads connections
 * over the workers (a socket the master kept listening would take a share no one
 * accepts). Entries without the flag are one socket that every worker accepts from. */
typedef struct {
    sl_listen_fd_t fds[64];
    sl_listen_t specs[64];
    const char *props[64];
    size_t n;
} listen_set_t;

static void listen_set_close(listen_set_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->fds[i].fd >= 0)
            close(s->fds[i].fd);
    }
    s->n = 0;
}

static int open_list(listen_set_t *s, const sl_listen_list_t *l, const char *prop, int admin,
                     char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n; i++) {
        if (s->n >= SL_ARRAY_SIZE(s->fds)) {
            snprintf(err, errlen, "%s: too many listeners", prop);
            return SL_ERROR;
        }
        int fd = sl_listener_open(&l->items[i], prop, err, errlen);
        if (fd < 0)
            return SL_ERROR;
        if (l->items[i].reuseport) {
            /* bound once to report a taken port now; the workers open their own */
            close(fd);
            fd = -1;
        }
        s->specs[s->n] = l->items[i];
        s->props[s->n] = prop;
        s->fds[s->n].fd = fd;
        s->fds[s->n].ssl = l->items[i].ssl;
        s->fds[s->n].port = l->items[i].port;
        s->fds[s->n].admin = admin;
        s->n++;
    }
    return SL_OK;
}

static int open_listeners(const sl_conf_t *c, listen_set_t *s, char *err, size_t errlen)
{
    s->n = 0;
    if (open_list(s, &c->proxy_listen, "proxy_listen", 0, err, errlen) != SL_OK ||
        open_list(s, &c->admin_listen, "admin_listen", 1, err, errlen) != SL_OK) {
        listen_set_close(s);
        return SL_ERROR;
    }
    return SL_OK;
}

static int any_ssl(const sl_listen_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->items[i].ssl)
            return 1;
    }
    return 0;
}

/* The server TLS contexts of c's ssl listeners (certificates loaded or generated), built
 * before the fork so errors stop start/reload and the workers share ticket keys. */
static int build_tls(const sl_conf_t *c, sl_listener_tls_t **proxy, sl_listener_tls_t **admin,
                     char *err, size_t errlen)
{
    *proxy = NULL;
    *admin = NULL;
    if (any_ssl(&c->proxy_listen) && (*proxy = sl_listener_tls_create(c, 0, err, errlen)) == NULL)
        return SL_ERROR;
    if (any_ssl(&c->admin_listen) && (*admin = sl_listener_tls_create(c, 1, err, errlen)) == NULL) {
        sl_listener_tls_destroy(*proxy);
        *proxy = NULL;
        return SL_ERROR;
    }
    return SL_OK;
}

int sl_master_check_tls(const sl_conf_t *c, char *err, size_t errlen)
{
    sl_listener_tls_t *proxy, *admin;
    if (build_tls(c, &proxy, &admin, err, errlen) != SL_OK)
        return SL_ERROR;
    sl_listener_tls_destroy(proxy);
    sl_listener_tls_destroy(admin);
    return SL_OK;
}

static int same_listeners(const sl_conf_t *a, const sl_conf_t *b)
{
    const sl_listen_list_t *la[2] = {&a->proxy_listen, &a->admin_listen};
    const sl_listen_list_t *lb[2] = {&b->proxy_listen, &b->admin_listen};
    for (int k = 0; k < 2; k++) {
        if (la[k]->n != lb[k]->n)
            return 0;
        for (size_t i = 0; i < la[k]->n; i++) {
            if (strcmp(la[k]->items[i].host, lb[k]->items[i].host) != 0 ||
                la[k]->items[i].port != lb[k]->items[i].port ||
                la[k]->items[i].ssl != lb[k]->items[i].ssl)
                return 0;
        }
    }
    return 1;
}

static int worker_count(const sl_conf_t *c)
{
    int n = c->worker_processes;
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    return n > MAX_WORKERS ? MAX_WORKERS : n;
}

static worker_slot_t slots[MAX_WORKERS * 4];
static size_t nslots;

static pid_t spawn(sl_master_t *m, listen_set_t *ls, int index)
{
    sl_listen_fd_t fds[SL_ARRAY_SIZE(ls->fds)];
    for (size_t i = 0; i < ls->n; i++) {
        fds[i] = ls->fds[i];
        if (ls->specs[i].reuseport) {
            char err[512];
            fds[i].fd = sl_listener_open(&ls->specs[i], ls->props[i], err, sizeof(err));
            if (fds[i].fd < 0)
                sl_log_error("worker %d starts without this listener: %s", index, err);
        }
    }
    pid_t pid = fork();
    if (pid < 0)
        sl_log_error("fork() failed: %s", strerror(errno));
    if (pid == 0) {
        signal(SIGCHLD, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        sl_worker_main(index, m->conf, m->decl, m->L, fds, ls->n);
    }
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->specs[i].reuseport && fds[i].fd >= 0)
            close(fds[i].fd);
    }
    if (pid < 0)
        return -1;
    if (nslots < SL_ARRAY_SIZE(slots)) {
        slots[nslots].pid = pid;
        slots[nslots].index = index;
        slots[nslots].old = 0;
        slots[nslots].started = time(NULL);
        nslots++;
    }
    sl_log_notice("start worker process %d", (int)pid);
    return pid;
}

static void signal_workers(int sig, int only_old)
{
    for (size_t i = 0; i < nslots; i++) {
        if (!only_old || slots[i].old)
            kill(slots[i].pid, sig);
    }
}

static void remove_slot(size_t i)
{
    slots[i] = slots[nslots - 1];
    nslots--;
}

static int write_pid_file(const char *prefix)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/pids/sluice.pid", prefix);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return SL_ERROR;
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return SL_OK;
}

static void remove_pid_file(const char *prefix)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/pids/sluice.pid", prefix);
    unlink(path);
}

static int open_error_log(const sl_conf_t *c)
{
    int level = sl_log_level_parse(c->log_level ? c->log_level : "notice");
    if (level < 0)
        level = SL_LOG_NOTICE;
    char *path = sl_conf_prefixed(c, c->proxy_error_log ? c->proxy_error_log : "logs/error.log");
    int rc = sl_log_open(path, level);
    free(path);
    return rc;
}

static void reload(sl_master_t *m, listen_set_t *ls)
{
    char err[4096];
    sl_log_notice("reloading configuration");
    char pathfile[4096];
    snprintf(pathfile, sizeof(pathfile), "%s/.sluice_conf_path", m->prefix);
    char conf_path[4096] = "";
    FILE *f = fopen(pathfile, "r");
    if (f != NULL) {
        if (fgets(conf_path, sizeof(conf_path), f) != NULL)
            conf_path[strcspn(conf_path, "\n")] = '\0';
        fclose(f);
    } else if (m->conf_path) {
        snprintf(conf_path, sizeof(conf_path), "%s", m->conf_path);
    }
    sl_conf_t *conf = sl_master_load_conf(conf_path[0] ? conf_path : NULL, m->prefix, err,
                                          sizeof(err));
    if (conf == NULL) {
        sl_log_error("reload failed, keeping the running configuration: %s", err);
        return;
    }
    lua_State *L = NULL;
    sl_decl_t *decl = NULL;
    if (sl_master_load_decl(conf, &L, &decl, err, sizeof(err)) != SL_OK) {
        sl_log_error("reload failed, keeping the running configuration: %s", err);
        sl_conf_destroy(conf);
        return;
    }
    sl_listener_tls_t *tls_proxy, *tls_admin;
    if (build_tls(conf, &tls_proxy, &tls_admin, err, sizeof(err)) != SL_OK) {
        sl_log_error("reload failed, keeping the running configuration: %s", err);
        sl_decl_destroy(decl, L);
        lua_close(L);
        sl_conf_destroy(conf);
        return;
    }
    listen_set_t fresh = {.n = 0};
    int new_listeners = !same_listeners(m->conf, conf);
    if (new_listeners) {
        listen_set_close(ls);
        if (open_listeners(conf, &fresh, err, sizeof(err)) != SL_OK) {
            sl_log_error("reload failed, keeping the running configuration: %s", err);
            /* reopen the old ones */
            char err2[512];
            if (open_listeners(m->conf, ls, err2, sizeof(err2)) != SL_OK)
                sl_log(SL_LOG_ALERT, "cannot reopen the old listeners: %s", err2);
            sl_listener_tls_destroy(tls_proxy);
            sl_listener_tls_destroy(tls_admin);
            sl_decl_destroy(decl, L);
            lua_close(L);
            sl_conf_destroy(conf);
            return;
        }
        *ls = fresh;
    }
    sl_listener_tls_install(tls_proxy, tls_admin);
    for (size_t i = 0; i < nslots; i++)
        slots[i].old = 1;
    signal_workers(SIGQUIT, 1);
    sl_decl_destroy(m->decl, m->L);
    lua_close(m->L);
    sl_conf_destroy(m->conf);
    m->conf = conf;
    m->decl = decl;
    m->L = L;
    if (conf_path[0]) {
        free(m->conf_path);
        m->conf_path = strdup(conf_path);
    }
    open_error_log(conf);
    int n = worker_count(conf);
    for (int i = 0; i < n; i++)
        spawn(m, ls, i);
    sl_log_notice("configuration reloaded: %zu services, %zu routes, %zu plugins from %s",
                  decl->nservices, decl->nroutes, decl->nplugins, decl->source);
}

static void reap(sl_master_t *m, listen_set_t *ls, int stopping)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < nslots; i++) {
            if (slots[i].pid != pid)
                continue;
            int old = slots[i].old, index = slots[i].index;
            time_t started = slots[i].started;
            remove_slot(i);
            if (WIFSIGNALED(status))
                sl_log(old || stopping ? SL_LOG_NOTICE : SL_LOG_ALERT,
                       "worker process %d exited on signal %d", (int)pid, WTERMSIG(status));
            else
                sl_log(old || stopping || WEXITSTATUS(status) == 0 ? SL_LOG_NOTICE : SL_LOG_ALERT,
                       "worker process %d exited with code %d", (int)pid, WEXITSTATUS(status));
            if (!old && !stopping) {
                if (time(NULL) - started < 1)
                    sleep(1); /* a worker that dies at once must not spin the master */
                spawn(m, ls, index);
            }
            break;
        }
    }
}

int sl_master_run(sl_master_t *m, char *err, size_t errlen)
{
    listen_set_t ls = {.n = 0};
    if (sl_stats_init() != SL_OK)
        sl_log_warn("cannot map the shared statistics page: GET /status counts stay 0");
    sl_listener_tls_t *tls_proxy, *tls_admin;
    if (build_tls(m->conf, &tls_proxy, &tls_admin, err, errlen) != SL_OK)
        return 1;
    sl_listener_tls_install(tls_proxy, tls_admin);
    if (open_listeners(m->conf, &ls, err, errlen) != SL_OK) {
        sl_listener_tls_install(NULL, NULL);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGCHLD, SIGHUP, SIGQUIT, SIGTERM, SIGINT};
    sigset_t block, empty;
    sigemptyset(&block);
    sigemptyset(&empty);
    for (size_t i = 0; i < SL_ARRAY_SIZE(sigs); i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&block, sigs[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    sigprocmask(SIG_BLOCK, &block, NULL);

    if (write_pid_file(m->prefix) != SL_OK) {
        snprintf(err, errlen, "cannot write %s/pids/sluice.pid: %s", m->prefix, strerror(errno));
        listen_set_close(&ls);
        return 1;
    }
    int n = worker_count(m->conf);
    for (int i = 0; i < n; i++)
        spawn(m, &ls, i);
    sl_log_notice("sluice %s started: %d workers, %zu services, %zu routes, %zu plugins", SLUICE_VERSION,
                  n, m->decl->nservices, m->decl->nroutes, m->decl->nplugins);
    if (m->ready_fd >= 0) {
        ssize_t w = write(m->ready_fd, "1", 1);
        (void)w;
        close(m->ready_fd);
        m->ready_fd = -1;
    }

    int stopping = 0;
    time_t term_deadline = 0;
    for (;;) {
        if (!sig_chld && !sig_hup && !sig_quit && !sig_term) {
            if (stopping == 2) {
                /* fast stop: wake up every 100 ms to check the deadline */
                struct timespec ts = {0, 100 * 1000 * 1000};
                sigprocmask(SIG_SETMASK, &empty, NULL);
                nanosleep(&ts, NULL);
                sigprocmask(SIG_BLOCK, &block, NULL);
            } else {
                sigsuspend(&empty);
            }
        }
        if (sig_chld) {
            sig_chld = 0;
            reap(m, &ls, stopping);
        }
        if (sig_term && stopping != 2) {
            sig_term = 0;
            sl_log_notice("received stop signal, exiting");
            stopping = 2;
            listen_set_close(&ls);
            signal_workers(SIGTERM, 0);
            term_deadline = time(NULL) + 5;
        }
        if (sig_quit && !stopping) {
            sig_quit = 0;
            sl_log_notice("received quit signal, draining");
            stopping = 1;
            listen_set_close(&ls);
            signal_workers(SIGQUIT, 0);
        }
        if (sig_hup) {
            sig_hup = 0;
            if (!stopping)
                reload(m, &ls);
        }
        if (stopping == 2 && time(NULL) >= term_deadline)
            signal_workers(SIGKILL, 0);
        if (stopping && nslots == 0)
            break;
    }
    listen_set_close(&ls);
    sl_listener_tls_install(NULL, NULL);
    remove_pid_file(m->prefix);
    sl_log_notice("exit");
    return 0;
}
