// SPDX-License-Identifier: Apache-2.0
// Closes descriptors on a worker thread, off the event loop.
#ifndef VMNET_BROKER_LINUX_FD_CLOSER_H
#define VMNET_BROKER_LINUX_FD_CLOSER_H

// Closing the last descriptor of a TAP device makes the kernel remove the
// device, which waits for an RCU grace period (17-34 ms measured). The
// broker closes its copy right after sending it, and when the client has
// already closed its own, that close is the last: done in the event loop it
// would stall every client for that long.
struct fd_closer;

// Starts the worker. Returns 0 and stores the closer in *out, or a negative
// errno with *out untouched.
int fd_closer_new(struct fd_closer **out);

// Takes ownership of fd and closes it soon, never blocking the caller on
// the kernel's teardown (if the worker cannot take it, it is closed here).
// Called from one thread only. closer may be NULL: then fd is closed here.
void fd_closer_close(struct fd_closer *closer, int fd);

// Closes what is still pending, stops the worker and frees closer.
// Accepts NULL.
void fd_closer_free(struct fd_closer *closer);

#endif
