/* sha256sum with examples/c/include/edgekit_sha256.h: one "<hex>  <file>" line per argument. Compiled as
 * C and as C++ by tests/embed/test_hostile.py, which checks it against known vectors and hashlib. */
#include "edgekit_sha256.h"

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        char hex[65];
        uint64_t size = 0;
        if (ek_sha256_file(argv[i], hex, &size) != 0) return perror(argv[i]), 1;
        printf("%s  %s\n", hex, argv[i]);
    }
    return 0;
}
