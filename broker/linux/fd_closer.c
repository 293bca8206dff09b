// SPDX-License-Identifier: Apache-2.0
// A pipe of descriptor numbers and one thread that closes them.
#include "fd_closer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct fd_closer {
    // The event loop writes descriptor numbers to pipe[1] (non-blocking);
    // the worker reads them from pipe[0] and closes them until end of file.
    int pipe[2];
    pthread_t worker;
    bool started;
};

static void *close_loop(void *arg) {
    struct fd_closer *closer = arg;
    int fd;

    for (;;) {
        ssize_t n = read(closer->pipe[0], &fd, sizeof(fd));
        if (n < 0 && errno == EINTR)
            continue;
        // A pipe write of sizeof(int) is atomic, so n is all or nothing.
        if (n != (ssize_t)sizeof(fd))
            break;
        close(fd);
    }
    return NULL;
}

int fd_closer_new(struct fd_closer **out) {
    struct fd_closer *closer = calloc(1, sizeof(*closer));
    int status = -ENOMEM;

    if (closer == NULL)
        goto out;
    closer->pipe[0] = closer->pipe[1] = -1;
    if (pipe2(closer->pipe, O_CLOEXEC) < 0) {
        status = -errno;
        goto out;
    }
    if (fcntl(closer->pipe[1], F_SETFL, O_NONBLOCK) < 0) {
        status = -errno;
        goto out;
    }
    status = -pthread_create(&closer->worker, NULL, close_loop, closer);
    if (status < 0)
        goto out;
    closer->started = true;
    *out = closer;
    closer = NULL;
    status = 0;
out:
    fd_closer_free(closer);
    return status;
}

void fd_closer_close(struct fd_closer *closer, int fd) {
    if (fd < 0)
        return;
    // A full pipe (thousands pending) or no worker: close here, slowly but
    // surely, rather than leak.
    if (closer == NULL ||
        write(closer->pipe[1], &fd, sizeof(fd)) != (ssize_t)sizeof(fd))
        close(fd);
}

void fd_closer_free(struct fd_closer *closer) {
    if (closer == NULL)
        return;
    // End of file tells the worker to finish what is queued and stop.
    if (closer->pipe[1] >= 0)
        close(closer->pipe[1]);
    if (closer->started)
        pthread_join(closer->worker, NULL);
    if (closer->pipe[0] >= 0)
        close(closer->pipe[0]);
    free(closer);
}
