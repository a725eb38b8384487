/* Prints its arguments and exits with the status given by the first one. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("hello from %d args:", argc);
    for (int i = 1; i < argc; i++)
        printf(" [%s]", argv[i]);
    printf("\n");
    return argc > 1 ? atoi(argv[1]) : 0;
}
