#include "base/sl_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = 2;
static int log_level = SL_LOG_NOTICE;
static int log_off;

static const char *const level_names[] = {"emerg", "alert", "crit",  "error",
                                          "warn",  "notice", "info", "debug"};

int sl_log_level_parse(const char *name)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    }
    if (strcmp(name, "err") == 0)
        return SL_LOG_ERR;
    if (strcmp(name, "warning") == 0)
        return SL_LOG_WARN;
    return -1;
}

const char *sl_log_level_name(int level)
{
    if (level < 0 || level >= (int)SL_ARRAY_SIZE(level_names))
        return "unknown";
    return level_names[level];
}

int sl_log_open(const char *path, int level)
{
    log_level = level;
    if (path == NULL || strcmp(path, "stderr") == 0 || strcmp(path, "/dev/stderr") == 0) {
        sl_log_close();
        log_off = 0;
        return SL_OK;
    }
    if (strcmp(path, "off") == 0) {
        sl_log_close();
        log_off = 1;
        return SL_OK;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return SL_ERROR;
    sl_log_close();
    log_fd = fd;
    log_off = 0;
    return SL_OK;
}

void sl_log_set_level(int level) { log_level = level; }

int sl_log_get_level(void) { return log_level; }

int sl_log_fd(void) { return log_fd; }

void sl_log_close(void)
{
    if (log_fd > 2)
        close(log_fd);
    log_fd = 2;
}

void sl_log(int level, const char *fmt, ...)
{
    if (level > log_level || log_off)
        return;
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d/%02d/%02d %02d:%02d:%02d [%s] %d#0: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, sl_log_level_name(level), (int)getpid());
    if (n < 0)
        return;
    size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
    va_end(ap);
    if (m > 0)
        used += (size_t)m < sizeof(line) - used ? (size_t)m : sizeof(line) - used - 1;
    if (used >= sizeof(line) - 1)
        used = sizeof(line) - 2;
    line[used++] = '\n';
    int saved = errno;
    ssize_t w = write(log_fd, line, used);
    (void)w;
    errno = saved;
}
