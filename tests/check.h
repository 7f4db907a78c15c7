/* The one test macro: CHECK(expr) counts a pass or reports the failing expression and line.
 * Each test program ends with `return check_done();`, which prints "N passed, N failed". */
#ifndef MCT_TESTS_CHECK_H
#define MCT_TESTS_CHECK_H
#include <stdio.h>

static int check_pass_, check_fail_;
#define CHECK(e) do { if (e) check_pass_++; else { check_fail_++; \
    fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #e); } } while (0)
#define CHECKF(e, ...) do { if (e) check_pass_++; else { check_fail_++; \
    fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #e); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_pass_, check_fail_);
    return check_fail_ ? 1 : 0;
}
#endif
