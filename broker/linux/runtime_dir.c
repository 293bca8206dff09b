// SPDX-License-Identifier: Apache-2.0
// Opens the broker's runtime directory only when no other user can write it.
#include "runtime_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Root, or the uid the broker runs as (a unit may grant CAP_NET_ADMIN to
// a user of its own): the only owners trusted with the broker's files.
static bool trusted_owner(uid_t uid) { return uid == 0 || uid == geteuid(); }

// Why st (the directory shown) lets another user change its entries, or
// NULL. A parent may be sticky: others cannot then replace what we own.
static const char *unsafe_reason(const struct stat *st, bool parent, char *buf,
                                 size_t size) {
    if (!S_ISDIR(st->st_mode))
        return "is not a directory";
    if (!trusted_owner(st->st_uid)) {
        snprintf(buf, size, "is owned by uid %lu, not root",
                 (unsigned long)st->st_uid);
        return buf;
    }
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) == 0)
        return NULL;
    if (parent && (st->st_mode & S_ISVTX) != 0)
        return NULL;
    return (st->st_mode & S_IWOTH) != 0 ? "is writable by every user"
                                        : "is writable by its group";
}

int runtime_dir_open(const char *path, bool create, char *why, size_t size) {
    char shown[PATH_MAX];
    char *copy = NULL, *save = NULL, *part, *next;
    char buf[64];
    const char *problem;
    struct stat st;
    int fd = -1, child, r = -ENOMEM;
    size_t shown_len;

    why[0] = '\0';
    copy = strdup(path);
    if (copy == NULL)
        goto out;
    // A relative path starts at the working directory, checked like the
    // rest: its name is not known, so it is shown as ".".
    snprintf(shown, sizeof(shown), "%s", path[0] == '/' ? "/" : ".");
    fd = open(shown, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        snprintf(why, size, "cannot open %s: %s", shown, strerror(errno));
        goto out;
    }
    part = strtok_r(copy, "/", &save);
    while (part != NULL) {
        next = strtok_r(NULL, "/", &save);
        if (strcmp(part, ".") == 0) {
            part = next;
            continue;
        }
        // The parent is where this component could be swapped for a link.
        if (fstat(fd, &st) < 0) {
            r = -errno;
            snprintf(why, size, "cannot stat %s: %s", shown, strerror(errno));
            goto out;
        }
        problem = unsafe_reason(&st, true, buf, sizeof(buf));
        if (problem != NULL) {
            r = -EPERM;
            snprintf(why, size,
                     "%s %s: another user could replace %s with a "
                     "symbolic link",
                     shown, problem, path);
            goto out;
        }
        if (strcmp(part, "..") == 0) {
            r = -EINVAL;
            snprintf(why, size, "%s: '..' is not allowed in this path", path);
            goto out;
        }
        shown_len = strlen(shown);
        snprintf(shown + shown_len, sizeof(shown) - shown_len, "%s%s",
                 shown_len > 0 && shown[shown_len - 1] == '/' ? "" : "/", part);
        child =
            openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0 && errno == ENOENT && create && next == NULL) {
            if (mkdirat(fd, part, 0755) < 0 && errno != EEXIST) {
                r = -errno;
                snprintf(why, size, "cannot create %s: %s", shown,
                         strerror(errno));
                goto out;
            }
            child = openat(fd, part,
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (child < 0) {
            r = -errno;
            // O_NOFOLLOW and O_DIRECTORY say ELOOP or ENOTDIR for a link:
            // tell a link (refused, -ELOOP) from a file (-ENOTDIR).
            if ((errno == ELOOP || errno == ENOTDIR) &&
                fstatat(fd, part, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                r = S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
                snprintf(why, size, "%s %s", shown,
                         r == -ELOOP ? "is a symbolic link: not following it"
                                     : "is not a directory");
            } else {
                snprintf(why, size, "cannot open %s: %s", shown,
                         strerror(errno));
            }
            goto out;
        }
        close(fd);
        fd = child;
        part = next;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        snprintf(why, size, "cannot stat %s: %s", shown, strerror(errno));
        goto out;
    }
    problem = unsafe_reason(&st, false, buf, sizeof(buf));
    if (problem != NULL) {
        r = -EPERM;
        snprintf(why, size,
                 "%s %s: another user could plant symbolic links where the "
                 "broker writes",
                 shown, problem);
        goto out;
    }
    r = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    free(copy);
    return r;
}
