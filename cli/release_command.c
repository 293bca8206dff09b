// SPDX-License-Identifier: Apache-2.0
// "release": drop networks held by the connection a "run" command inherited.
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cli.h"

// A new connection holds nothing, so releasing over one is pointless: the
// networks to release are those of the connection "run" handed down.
static int inherited_fd(void) {
    const char *text = getenv("VMNET_BROKER_FD");
    char *end = NULL;
    struct stat st;
    long fd;

    if (text == NULL || text[0] == '\0') {
        fprintf(stderr,
                CLI_NAME ": release: no connection to release from: run it "
                         "inside '" CLI_NAME " run', which passes its "
                         "connection in VMNET_BROKER_FD (a network held by "
                         "any other program is released when it exits)\n");
        return -1;
    }
    errno = 0;
    fd = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || fd < 0 || fd > INT_MAX ||
        fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr,
                CLI_NAME ": release: VMNET_BROKER_FD is not an open socket\n");
        return -1;
    }
    return (int)fd;
}

// Sends one release and reads its reply. Returns 0, or 1 after saying why
// not.
static int release_one(int fd, const char *name) {
    json_t *request =
        json_pack("{s:s, s:s}", "command", "release", "network_name", name);
    char *text = request != NULL ? json_dumps(request, JSON_COMPACT) : NULL;
    char reply[65536];
    struct pollfd ready = {.fd = fd, .events = POLLIN};
    json_t *answer = NULL;
    const json_t *error;
    ssize_t n;
    int result = 1;

    json_decref(request);
    if (text == NULL) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    if (send(fd, text, strlen(text), MSG_NOSIGNAL) < 0) {
        fprintf(stderr, CLI_NAME ": release: cannot send: %s\n",
                strerror(errno));
        goto out;
    }
    // The library's default timeout: a broker that has not answered in 30 s
    // is stuck or stopped.
    if (poll(&ready, 1, (int)VMNET_BROKER_DEFAULT_TIMEOUT_MS) <= 0 ||
        (n = recv(fd, reply, sizeof(reply), 0)) <= 0) {
        fprintf(stderr, CLI_NAME ": release: no reply from the broker\n");
        goto out;
    }
    answer = json_loadb(reply, (size_t)n, 0, NULL);
    error = json_object_get(answer, "error");
    if (json_is_string(json_object_get(answer, "released"))) {
        printf("released ");
        cli_print_escaped(stdout, name);
        putchar('\n');
        result = 0;
    } else if (json_is_integer(error)) {
        vmnet_broker_return_t code =
            (vmnet_broker_return_t)json_integer_value(error);
        const char *message =
            json_string_value(json_object_get(answer, "message"));
        fprintf(stderr, CLI_NAME ": release '");
        cli_print_escaped(stderr, name);
        fprintf(stderr, "': %s (%d)", vmnet_broker_strerror(code), (int)code);
        if (message != NULL) {
            fputs(": ", stderr);
            cli_print_escaped(stderr, message);
        }
        fputc('\n', stderr);
    } else {
        fprintf(stderr, CLI_NAME ": release: the reply was not understood\n");
    }
out:
    json_decref(answer);
    free(text);
    return result;
}

int command_release(const char *socket_path, int argc, char **argv) {
    int fd, failures = 0;

    (void)socket_path;
    if (argc < 2) {
        fprintf(stderr, CLI_NAME ": release: no network named\n");
        return cli_usage_error();
    }
    fd = inherited_fd();
    if (fd < 0)
        return 1;
    for (int i = 1; i < argc; i++)
        failures += release_one(fd, argv[i]);
    if (fflush(stdout) != 0 || ferror(stdout))
        return 1;
    return failures > 0 ? 1 : 0;
}
