#include "formats/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

lc_status mapped_file_open(mapped_file *f, const char *path, lc_error *err) {
    f->data = NULL;
    f->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lc_fail(err, LC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return lc_fail(err, LC_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return lc_fail(err, LC_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return lc_fail(err, LC_ERR_FORMAT, "%s: file is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (p == MAP_FAILED) return lc_fail(err, LC_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
    f->data = p;
    f->size = (uint64_t)st.st_size;
    return LC_OK;
}

void mapped_file_close(mapped_file *f) {
    if (f->data) munmap((void *)f->data, (size_t)f->size);
    f->data = NULL;
    f->size = 0;
}
