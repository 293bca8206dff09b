// SPDX-License-Identifier: Apache-2.0
// A job queue served by one thread; completions return through an eventfd.
#include "linux_worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"

struct job {
    linux_job_fn run;
    linux_job_fn done;
    void *arg;
    struct job *next;
};

struct linux_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; // a job was queued, or stop
    pthread_cond_t idle; // the queue is empty and nothing runs
    struct job *queued, **queued_tail;
    struct job *finished, **finished_tail;
    bool running; // a job is being run
    bool stop;
    int eventfd;
    sd_event_source *source;
};

static void *worker_main(void *data) {
    struct linux_worker *w = data;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct job *job;
        uint64_t one = 1;
        bool wake_loop = false;

        while (w->queued == NULL && !w->stop) {
            pthread_cond_broadcast(&w->idle);
            pthread_cond_wait(&w->wake, &w->lock);
        }
        if (w->queued == NULL)
            break;
        job = w->queued;
        w->queued = job->next;
        if (w->queued == NULL)
            w->queued_tail = &w->queued;
        w->running = true;
        pthread_mutex_unlock(&w->lock);
        job->run(job->arg);
        pthread_mutex_lock(&w->lock);
        w->running = false;
        job->next = NULL;
        wake_loop = w->finished == NULL;
        *w->finished_tail = job;
        w->finished_tail = &job->next;
        if (!wake_loop)
            continue;
        // Woken outside the lock: the loop, woken, takes the lock at once
        // (take_finished()), and must not find this thread holding it (on
        // a busy machine a preempted holder kept it waiting for ms).
        // Only the job that made the list non-empty wakes it.
        pthread_mutex_unlock(&w->lock);
        // The loop reads the count; a full counter cannot happen here.
        if (write(w->eventfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_error("worker: eventfd: %s", strerror(errno));
        pthread_mutex_lock(&w->lock);
    }
    pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

// Takes the finished jobs, in order.
static struct job *take_finished(struct linux_worker *w) {
    struct job *jobs;

    pthread_mutex_lock(&w->lock);
    jobs = w->finished;
    w->finished = NULL;
    w->finished_tail = &w->finished;
    pthread_mutex_unlock(&w->lock);
    return jobs;
}

static int on_finished(sd_event_source *s, int fd, uint32_t revents,
                       void *userdata) {
    struct linux_worker *w = userdata;
    uint64_t count;
    struct job *jobs;

    (void)s;
    (void)revents;
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_error("worker: eventfd: %s", strerror(errno));
    jobs = take_finished(w);
    while (jobs != NULL) {
        struct job *job = jobs;
        jobs = job->next;
        if (job->done != NULL)
            job->done(job->arg);
        free(job);
    }
    return 0;
}

int linux_worker_new(sd_event *event, struct linux_worker **out) {
    struct linux_worker *w = calloc(1, sizeof(*w));
    sigset_t all, old;
    int r = -ENOMEM;

    if (w == NULL)
        goto out;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->idle, NULL);
    w->queued_tail = &w->queued;
    w->finished_tail = &w->finished;
    w->eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->eventfd < 0) {
        r = -errno;
        goto out;
    }
    r = sd_event_add_io(event, &w->source, w->eventfd, EPOLLIN, on_finished, w);
    if (r < 0)
        goto out;
    // The thread takes no signals: the loop handles them by signalfd.
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = -pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0)
        goto out;
    *out = w;
    w = NULL;
out:
    if (r < 0)
        log_error("cannot start the worker thread: %s", strerror(-r));
    if (w != NULL) {
        sd_event_source_disable_unref(w->source);
        if (w->eventfd >= 0)
            close(w->eventfd);
        free(w);
    }
    return r;
}

void linux_worker_drain(struct linux_worker *w) {
    struct job *jobs;

    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    while (w->queued != NULL || w->running)
        pthread_cond_wait(&w->idle, &w->lock);
    pthread_mutex_unlock(&w->lock);
    jobs = take_finished(w);
    while (jobs != NULL) {
        struct job *job = jobs;
        jobs = job->next;
        free(job);
    }
}

void linux_worker_free(struct linux_worker *w) {
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    linux_worker_drain(w);
    sd_event_source_disable_unref(w->source);
    close(w->eventfd);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->idle);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void linux_worker_queue(struct linux_worker *w, linux_job_fn run,
                        linux_job_fn done, void *arg) {
    struct job *job = w != NULL ? calloc(1, sizeof(*job)) : NULL;

    if (job == NULL) {
        run(arg);
        if (done != NULL)
            done(arg);
        return;
    }
    job->run = run;
    job->done = done;
    job->arg = arg;
    pthread_mutex_lock(&w->lock);
    *w->queued_tail = job;
    w->queued_tail = &job->next;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}
