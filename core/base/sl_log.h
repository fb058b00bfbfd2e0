/*
 * sl_log.h: the error log.
 *
 * One process-wide log target (a file opened O_APPEND, or stderr) and a level. Lines look
 * like nginx's: "2026/11/21 06:10:57 [error] 1234#0: message". Messages longer than the
 * line buffer are truncated, never overflowed. Not thread-safe (Sluice has no threads).
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include "sl_core.h"

enum {
    SL_LOG_EMERG = 0,
    SL_LOG_ALERT,
    SL_LOG_CRIT,
    SL_LOG_ERR,
    SL_LOG_WARN,
    SL_LOG_NOTICE,
    SL_LOG_INFO,
    SL_LOG_DEBUG
};

/* Parses "debug".."emerg" (and "error"/"warn"); returns -1 for anything else. */
int sl_log_level_parse(const char *name);
const char *sl_log_level_name(int level);

/* Opens path for appending (creating it) and makes it the target; NULL or "stderr" means
 * stderr, "off" drops everything. Returns SL_OK or SL_ERROR (errno kept). */
int sl_log_open(const char *path, int level);
void sl_log_set_level(int level);
int sl_log_get_level(void);
/* The fd lines go to (stderr's 2 when no file is open), for dup2() onto stderr. */
int sl_log_fd(void);
void sl_log_close(void);

void sl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sl_log_error(...) sl_log(SL_LOG_ERR, __VA_ARGS__)
#define sl_log_warn(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_log_notice(...) sl_log(SL_LOG_NOTICE, __VA_ARGS__)
#define sl_log_info(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_log_debug(...)                                                                     \
    do {                                                                                      \
        if (sl_log_get_level() >= SL_LOG_DEBUG)                                               \
            sl_log(SL_LOG_DEBUG, __VA_ARGS__);                                                \
    } while (0)

#endif
