// SPDX-License-Identifier: Apache-2.0
// One thread for the kernel work that takes milliseconds (netlink, nftables,
// sysctl, TAP teardown), so the event loop never waits for it.
#ifndef VMNET_BROKER_LINUX_LINUX_WORKER_H
#define VMNET_BROKER_LINUX_LINUX_WORKER_H

#include <stdbool.h>
#include <systemd/sd-event.h>

struct linux_worker;

// run(arg) is called on the worker thread, jobs one at a time in the order
// they were queued; then done(arg), if not NULL, on the event loop's thread.
typedef void (*linux_job_fn)(void *arg);

// Starts the thread and watches its completions from event. Returns 0 or a
// negative errno (logged).
int linux_worker_new(sd_event *event, struct linux_worker **out);
// Waits for the queued jobs to run (without calling their done), then ends
// the thread. Accepts NULL.
void linux_worker_free(struct linux_worker *worker);

// Queues a job. With worker NULL, or when out of memory, runs it (and its
// done) at once instead: the work is done either way.
void linux_worker_queue(struct linux_worker *worker, linux_job_fn run,
                        linux_job_fn done, void *arg);

// Waits until every job queued so far has run, and drops their pending
// done calls: for the broker's exit, when what they would finish is
// abandoned. Accepts NULL.
void linux_worker_drain(struct linux_worker *worker);

#endif
