// SPDX-License-Identifier: Apache-2.0
// Opens the broker's runtime directory only when no other user can write it.
#ifndef VMNET_BROKER_LINUX_RUNTIME_DIR_H
#define VMNET_BROKER_LINUX_RUNTIME_DIR_H

#include <stdbool.h>
#include <stddef.h>

// Opens path as a directory, walking it one component at a time from "/"
// (a relative path from the working directory) with O_NOFOLLOW, so that no
// symbolic link is ever followed, and checks that no user but root (or the
// broker's own uid) can change what it holds: the directory itself must be
// owned by root and writable by its owner only; each parent must be owned
// by root and either writable by its owner only or sticky (like /tmp: then
// others cannot rename or remove the root-owned entry below it). When
// create is true a missing last component is made (mode 0755). Returns the
// directory's descriptor (O_DIRECTORY, close-on-exec), or a negative errno
// with why (a sentence naming the offending directory) in why: -EPERM when
// another user could write there, -ELOOP for a symbolic link on the way,
// others (-ENOTDIR, -ENOENT, ...) when it is merely unusable.
int runtime_dir_open(const char *path, bool create, char *why, size_t size);

#endif
