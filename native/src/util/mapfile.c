/*
 * mapfile.c — a whole regular file mapped read-only, as every file reader
 * (GGUF bundles, .task, .litertlm) reads it: in place, nothing copied.
 */
#include "util/util.h"
#include "pocketlm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int plm_map_file(const char *path, uint64_t min_size, const uint8_t **map, uint64_t *size, char **error) {
    *map = NULL;
    *size = 0;
    const int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return plm_errorf(error, PLM_ERR_IO, "%s: cannot open the file", path);
    }
    *size = (uint64_t)st.st_size;
    if (*size && *size >= min_size) {
        void *m = mmap(NULL, (size_t)*size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return plm_errorf(error, PLM_ERR_IO, "%s: cannot map the file", path);
        }
        *map = (const uint8_t *)m;
    }
    close(fd);
    return PLM_OK;
}

void plm_unmap_file(const uint8_t *map, uint64_t size) {
    if (map) munmap((void *)map, (size_t)size);
}
