/* Dereferences NULL: must die of SIGSEGV (exit status 139 from sbx). */
#include <stdio.h>

int main(void) {
    printf("before\n");
    fflush(stdout);
    volatile int *p = 0;
    *p = 42;
    printf("after\n");
    return 0;
}
