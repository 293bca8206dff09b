// SPDX-License-Identifier: Apache-2.0
// The broker's state directory: the per-host secret guest MACs are keyed with.
#include "state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

// Makes the key file; EEXIST when another broker made it meanwhile.
static int create_key(int dir_fd, const char *dir) {
    uint8_t key[GUEST_MAC_KEY_LEN];
    int fd = openat(dir_fd, STATE_MAC_KEY_FILE,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int status = -errno;

    if (fd < 0) {
        if (status != -EEXIST)
            log_error("cannot create %s/%s: %s", dir, STATE_MAC_KEY_FILE,
                      strerror(-status));
        goto out;
    }
    status = -EIO;
    if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key) ||
        write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) || fsync(fd) != 0) {
        status = errno != 0 ? -errno : -EIO;
        log_error("cannot write %s/%s: %s", dir, STATE_MAC_KEY_FILE,
                  strerror(-status));
        unlinkat(dir_fd, STATE_MAC_KEY_FILE, 0);
        goto out;
    }
    log_info("made a new guest MAC key in %s/%s", dir, STATE_MAC_KEY_FILE);
    status = 0;
out:
    if (fd >= 0)
        close(fd);
    return status;
}

int state_dir_mac_key(const char *dir, uint8_t key[GUEST_MAC_KEY_LEN]) {
    int dir_fd = -1, fd = -1, status;
    struct stat st;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        status = -errno;
        log_error("cannot make the state directory %s: %s", dir,
                  strerror(-status));
        goto out;
    }
    dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    status = -errno;
    if (dir_fd < 0 || fstat(dir_fd, &st) != 0) {
        log_error("cannot open the state directory %s (a symlink is refused): "
                  "%s",
                  dir, strerror(errno));
        goto out;
    }
    status = -EPERM;
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        log_error("state directory %s must be owned by uid %lu and writable "
                  "by it alone (chown and chmod 0700 it)",
                  dir, (unsigned long)geteuid());
        goto out;
    }
    fd = openat(dir_fd, STATE_MAC_KEY_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        status = create_key(dir_fd, dir);
        if (status < 0 && status != -EEXIST)
            goto out;
        fd = openat(dir_fd, STATE_MAC_KEY_FILE,
                    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    status = -errno;
    if (fd < 0 || fstat(fd, &st) != 0) {
        log_error("cannot open %s/%s (a symlink is refused): %s", dir,
                  STATE_MAC_KEY_FILE, strerror(errno));
        goto out;
    }
    status = -EPERM;
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & (S_IRWXG | S_IRWXO)) != 0 ||
        st.st_size != GUEST_MAC_KEY_LEN) {
        log_error("%s/%s must be a regular file of %d bytes owned by uid %lu "
                  "with mode 0600 (remove it and a new key is made; guests "
                  "then get new MACs)",
                  dir, STATE_MAC_KEY_FILE, GUEST_MAC_KEY_LEN,
                  (unsigned long)geteuid());
        goto out;
    }
    status = -EIO;
    if (read(fd, key, GUEST_MAC_KEY_LEN) != GUEST_MAC_KEY_LEN) {
        log_error("cannot read %s/%s", dir, STATE_MAC_KEY_FILE);
        goto out;
    }
    status = 0;
out:
    if (fd >= 0)
        close(fd);
    if (dir_fd >= 0)
        close(dir_fd);
    return status;
}
