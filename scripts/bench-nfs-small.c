/*
 * bench-nfs-small: creates (or verifies) N small files through libnfs over ONE connection,
 * for scripts/bench-nfs.sh. One process and one mount for all the files, so the figure is
 * the server's per-file cost (CREATE + WRITE + the client's round trips), not the start-up
 * of N client processes.
 *
 *   bench-nfs-small create URL DIR COUNT SIZE   mkdir DIR, then creat+write+close each file
 *   bench-nfs-small verify URL DIR COUNT SIZE   read every file back and compare its bytes
 *
 * URL names the export root, as for nfs-ls (e.g. 'nfs://127.0.0.1//?nfsport=P&mountport=P').
 * File i is DIR/fNNNNN with SIZE bytes derived from i, so verify needs no state. The sync
 * API is used as is: libnfs opens without O_SYNC, so WRITEs go UNSTABLE, and its close sends
 * a COMMIT; the same calls for every server.  Exit 0 on success; prints the elapsed seconds.
 *
 * Build: cc -O2 -o bench-nfs-small bench-nfs-small.c -lnfs   (Debian libnfs-dev)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nfsc/libnfs.h>

static void fill(unsigned char *buf, size_t size, unsigned i)
{
    uint32_t x = 2654435761u * (i + 1);
    for (size_t j = 0; j < size; j++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[j] = (unsigned char)x;
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s create|verify URL DIR COUNT SIZE\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *url_s = argv[2], *dir = argv[3];
    unsigned count = (unsigned)strtoul(argv[4], NULL, 10);
    size_t size = strtoul(argv[5], NULL, 10);
    int create = strcmp(mode, "create") == 0;
    if (!create && strcmp(mode, "verify") != 0) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }

    struct nfs_context *nfs = nfs_init_context();
    if (!nfs) {
        fprintf(stderr, "nfs_init_context failed\n");
        return 1;
    }
    struct nfs_url *url = nfs_parse_url_dir(nfs, url_s);
    if (!url) {
        fprintf(stderr, "bad URL %s: %s\n", url_s, nfs_get_error(nfs));
        return 1;
    }
    if (nfs_mount(nfs, url->server, url->path) != 0) {
        fprintf(stderr, "mount %s:%s failed: %s\n", url->server, url->path, nfs_get_error(nfs));
        return 1;
    }

    unsigned char *buf = malloc(size ? size : 1), *got = malloc(size + 1);
    char path[4096];
    double t0 = now();
    if (create && nfs_mkdir(nfs, dir) != 0) {
        fprintf(stderr, "mkdir %s failed: %s\n", dir, nfs_get_error(nfs));
        return 1;
    }
    for (unsigned i = 0; i < count; i++) {
        struct nfsfh *fh;
        snprintf(path, sizeof path, "%s/f%05u", dir, i);
        fill(buf, size, i);
        if (create) {
            if (nfs_creat(nfs, path, 0644, &fh) != 0) {
                fprintf(stderr, "creat %s failed: %s\n", path, nfs_get_error(nfs));
                return 1;
            }
            if (size && nfs_write(nfs, fh, size, buf) != (int)size) {
                fprintf(stderr, "write %s failed: %s\n", path, nfs_get_error(nfs));
                return 1;
            }
        } else {
            if (nfs_open(nfs, path, O_RDONLY, &fh) != 0) {
                fprintf(stderr, "open %s failed: %s\n", path, nfs_get_error(nfs));
                return 1;
            }
            int n = nfs_read(nfs, fh, size + 1, got);
            if (n != (int)size || memcmp(buf, got, size) != 0) {
                fprintf(stderr, "%s: content differs (read %d of %zu bytes)\n", path, n, size);
                return 1;
            }
        }
        if (nfs_close(nfs, fh) != 0) {
            fprintf(stderr, "close %s failed: %s\n", path, nfs_get_error(nfs));
            return 1;
        }
    }
    double secs = now() - t0;
    printf("%s %u files of %zu bytes in %.3f s (%.0f files/s)\n", mode, count, size, secs,
           count / secs);
    free(buf);
    free(got);
    nfs_destroy_url(url);
    nfs_destroy_context(nfs);
    return 0;
}
