/* trusted_ips ranges: parsing and matching. */
#include <stdlib.h>
#include <string.h>

#include "net/sl_cidr.h"
#include "sl_core.h"
#include "test/sl_test.h"

int main(void)
{
    static const struct {
        const char *list;
        const char *ip;
        int match;
    } cases[] = {
        {"127.0.0.1", "127.0.0.1", 1},
        {"127.0.0.1", "127.0.0.2", 0},
        {"10.0.0.0/8", "10.200.3.4", 1},
        {"10.0.0.0/8", "11.0.0.1", 0},
        {"192.168.1.0/25", "192.168.1.127", 1},
        {"192.168.1.0/25", "192.168.1.128", 0},
        {"0.0.0.0/0", "203.0.113.9", 1},
        {"0.0.0.0/0", "::1", 0},
        {"0.0.0.0/0, ::/0", "2001:db8::1", 1},
        {"::1", "::1", 1},
        {"2001:db8::/32", "2001:db8:ffff::1", 1},
        {"2001:db8::/32", "2001:db9::1", 0},
        {"127.0.0.0/8", "::ffff:127.0.0.5", 1},
        {"unix:", "unix:", 1},
        {"127.0.0.1", "unix:", 0},
        {"", "127.0.0.1", 0},
        {"10.0.0.1", "not-an-ip", 0},
    };
    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        sl_cidr_t *list;
        size_t n;
        char err[128];
        int rc = sl_cidr_parse_list(cases[i].list, &list, &n, err, sizeof(err));
        SL_CHECK(rc == SL_OK, "case %zu: parse '%s': %s", i, cases[i].list, err);
        int m = sl_cidr_match_text(list, n, cases[i].ip, strlen(cases[i].ip));
        SL_CHECK(m == cases[i].match, "case %zu: '%s' in '%s' = %d", i, cases[i].ip,
                 cases[i].list, m);
        free(list);
    }
    static const char *bad[] = {"10.0.0.0/33", "::/129", "10.0.0/8", "abc", "10.0.0.1/x",
                                "1.2.3.4/-1"};
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad); i++) {
        sl_cidr_t *list;
        size_t n;
        char err[128] = "";
        int rc = sl_cidr_parse_list(bad[i], &list, &n, err, sizeof(err));
        SL_CHECK(rc == SL_ERROR && strstr(err, "trusted_ips") != NULL, "'%s' must be refused",
                 bad[i]);
    }
    SL_TEST_MAIN("cidr");
}
