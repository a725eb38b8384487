/* Checks argv, envp and the auxiliary vector the sentry built.
 * Usage: auxv EXPECTED_ARG1 (with SBX_TEST_ENV=value in the environment). */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); return 1; } } while (0)

int main(int argc, char **argv, char **envp) {
    CHECK(argc == 2);
    CHECK(strcmp(argv[1], "first-arg") == 0);
    CHECK(argv[2] == NULL);
    const char *e = getenv("SBX_TEST_ENV");
    CHECK(e != NULL && strcmp(e, "value with spaces") == 0);
    CHECK(getauxval(AT_PAGESZ) == 4096);
    unsigned char *rnd = (unsigned char *)getauxval(AT_RANDOM);
    CHECK(rnd != NULL);
    int nonzero = 0;
    for (int i = 0; i < 16; i++) nonzero |= rnd[i];
    CHECK(nonzero);
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    CHECK(execfn != NULL && strcmp(execfn, argv[0]) == 0);
    CHECK(getauxval(AT_UID) == getuid());
    CHECK(getauxval(AT_ENTRY) != 0);
    CHECK(getauxval(AT_PHDR) != 0);
    CHECK(getauxval(AT_SYSINFO_EHDR) == 0); /* no vDSO */
    const char *plat = (const char *)getauxval(AT_PLATFORM);
    CHECK(plat != NULL && strcmp(plat, "x86_64") == 0);
    /* envp ends in NULL and the auxv follows it. */
    char **p = envp;
    while (*p) p++;
    Elf64_auxv_t *av = (Elf64_auxv_t *)(p + 1);
    int seen_pagesz = 0;
    for (; av->a_type != AT_NULL; av++)
        if (av->a_type == AT_PAGESZ) seen_pagesz = 1;
    CHECK(seen_pagesz);
    CHECK(getpid() > 0);
    printf("OK\n");
    return 0;
}
