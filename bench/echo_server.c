// SPDX-License-Identifier: Apache-2.0
// The baseline: a bare SOCK_SEQPACKET server answering every datagram.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

// Answers one readable connection; closes it at end of stream.
static void serve(int epoll_fd, int fd, const char *reply, size_t len) {
    char request[8192];
    ssize_t n = recv(fd, request, sizeof(request), MSG_DONTWAIT);

    if (n > 0) {
        send(fd, reply, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

// The child's whole life: one epoll loop, like the broker's, without the
// work the broker does per request. Never returns.
static void run_server(int listen_fd, const char *reply, size_t len) {
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listen_fd};
    struct epoll_event ready[64];
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);

    if (epoll_fd < 0 ||
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &event) < 0)
        _exit(1);
    for (;;) {
        int n = epoll_wait(epoll_fd, ready, 64, -1);
        if (n < 0 && errno != EINTR)
            _exit(1);
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd != listen_fd) {
                serve(epoll_fd, fd, reply, len);
                continue;
            }
            int client =
                accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (client < 0)
                continue;
            struct epoll_event client_event = {.events = EPOLLIN,
                                               .data.fd = client};
            if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, client, &client_event) < 0)
                close(client);
        }
    }
}

static int listen_on(const char *path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    strcpy(address.sun_path, path);
    if (bind(fd, (const struct sockaddr *)&address, sizeof(address)) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool echo_server_start(struct echo_server *server, const char *reply,
                       size_t len) {
    pid_t parent = getpid();
    int listen_fd = -1;
    bool status = false;

    server->pid = 0;
    strcpy(server->dir, "/tmp/vmnet-broker-bench-echo-XXXXXX");
    if (mkdtemp(server->dir) == NULL) {
        server->dir[0] = '\0';
        goto out;
    }
    snprintf(server->socket_path, sizeof(server->socket_path), "%s/echo.sock",
             server->dir);
    // Listening before the fork: the socket accepts connections as soon as
    // this returns.
    listen_fd = listen_on(server->socket_path);
    if (listen_fd < 0)
        goto out;
    server->pid = fork();
    if (server->pid < 0) {
        server->pid = 0;
        goto out;
    }
    if (server->pid == 0) {
        // Never outlive the bench.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        run_server(listen_fd, reply, len);
    }
    status = true;
out:
    if (listen_fd >= 0)
        close(listen_fd);
    return status;
}

void echo_server_stop(struct echo_server *server) {
    if (server->pid > 0) {
        kill(server->pid, SIGKILL);
        waitpid(server->pid, NULL, 0);
        server->pid = 0;
    }
    if (server->dir[0] != '\0') {
        unlink(server->socket_path);
        rmdir(server->dir);
        server->dir[0] = '\0';
    }
}
