#define _GNU_SOURCE
#include "upgrade_support.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <link.h>
#include <malloc.h>
#include <linux/close_range.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

int hs_memfd_create(const char *name) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int hs_cloexec_from(unsigned int first) {
    // Through syscall(2): glibc's wrapper exists from 2.34 only.
    long status = syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC);
    return status == 0 ? 0 : -errno;
}

char *const *hs_environ(void) { return environ; }

int hs_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno; }

int hs_die_with_parent(int original_parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return 0;
    return getppid() != original_parent;
}

struct build_id_search {
    char *out;
    size_t capacity;
    size_t written;
};

// Called for each loaded object; the first one is the main executable.
static int find_build_id(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct build_id_search *search = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[i];
        if (header->p_type != PT_NOTE) continue;
        const unsigned char *note = (const unsigned char *)(info->dlpi_addr + header->p_vaddr);
        const unsigned char *end = note + header->p_memsz;
        while (note + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nhdr = (const ElfW(Nhdr) *)note;
            size_t name_size = (nhdr->n_namesz + 3) & ~(size_t)3;
            size_t desc_size = (nhdr->n_descsz + 3) & ~(size_t)3;
            const unsigned char *name = note + sizeof(ElfW(Nhdr));
            const unsigned char *desc = name + name_size;
            if (desc + desc_size > end) break;
            if (nhdr->n_type == NT_GNU_BUILD_ID && nhdr->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                static const char digits[] = "0123456789abcdef";
                if (nhdr->n_descsz * 2 + 1 > search->capacity) return 1;
                for (size_t b = 0; b < nhdr->n_descsz; b++) {
                    search->out[b * 2] = digits[desc[b] >> 4];
                    search->out[b * 2 + 1] = digits[desc[b] & 0xF];
                }
                search->out[nhdr->n_descsz * 2] = 0;
                search->written = nhdr->n_descsz * 2;
                return 1;
            }
            note = desc + desc_size;
        }
    }
    return 1;  // only the first object (the executable) is of interest
}

size_t hs_build_id(char *out, size_t capacity) {
    struct build_id_search search = {out, capacity, 0};
    if (capacity > 0) out[0] = 0;
    dl_iterate_phdr(find_build_id, &search);
    return search.written;
}

int hs_set_process_name(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    char cut[16];
    strncpy(cut, name, sizeof cut - 1);
    cut[sizeof cut - 1] = '\0';
    return prctl(PR_SET_NAME, (unsigned long)cut, 0, 0, 0) == 0 ? 0 : -errno;
}

int hs_malloc_trim(void) {
    return malloc_trim(0);
}
