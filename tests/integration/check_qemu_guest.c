// SPDX-License-Identifier: Apache-2.0
// A real QEMU guest, started by the one-line wrapper on a broker TAP, leases.
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/kvm.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define IDLE "60"
#define CLI VMNET_BROKER_CLIENT_BIN
#define QEMU_NAME "qemu-system-x86_64"
#define BUSYBOX "/bin/busybox"
#define NETWORK "shared"
#define GUEST_MEMORY_MB "256"
#define GUEST_APPEND "console=ttyS0 quiet panic=-1"
// What tests/qemu/make-initramfs.sh's guest says on its console.
#define MARK_INIT "VMNET-GUEST-INIT"
#define MARK_LEASE "VMNET-GUEST-LEASE "
#define MARK_DONE "VMNET-GUEST-DONE"
// Every MAC the broker gives a guest starts so (vmnet-broker.h).
#define BROKER_MAC_PREFIX "02:76:"
// A guest under KVM reaches its init in a second or two. One that has not
// by then is stuck: some nested hosts let /dev/kvm make a VM that cannot
// run a kernel. Such a guest is booted again with TCG, so this bound makes
// the test slower, never failed.
#define KVM_INIT_SECONDS HARNESS_WAIT_SECONDS
// From power on to power off. Under TCG the guest took 6 s where this was
// written; udhcpc's retries can add 30 s. This is well beyond both.
#define GUEST_SECONDS 150.0
// The test's own Check timeout: a stuck KVM boot, then a whole TCG one.
#define TEST_TIMEOUT_SECONDS 300

static struct harness_broker *broker;

// Found by main() before the suite runs; the tests' processes inherit them.
static char qemu_path[PATH_MAX];
static char kernel_path[PATH_MAX];
static char kernel_version[NAME_MAX + 1];
static char initramfs_script[PATH_MAX];
static char qemu_wrapper[PATH_MAX];

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    // Stopped gracefully the broker removes its networks and their dnsmasq;
    // it ignores SIGTERM while any peer (QEMU among them) is connected.
    if (harness_broker_wait_no_peers(broker) &&
        harness_broker_signal(broker, SIGTERM))
        harness_broker_wait_exit(broker);
    harness_broker_free(broker);
    broker = NULL;
}

static bool exited_with(int wait_status, int code) {
    return wait_status != -1 && WIFEXITED(wait_status) &&
           WEXITSTATUS(wait_status) == code;
}

// ---- What the host offers ---------------------------------------------------

// Stores the first executable name on $PATH in out; out untouched if none.
static bool find_in_path(const char *name, char *out, size_t size) {
    const char *path = getenv("PATH");
    char *copy = strdup(path != NULL ? path : "/usr/bin:/bin");
    char *save = NULL;
    char candidate[PATH_MAX];
    bool found = false;

    if (copy == NULL)
        return false;
    for (char *dir = strtok_r(copy, ":", &save); dir != NULL && !found;
         dir = strtok_r(NULL, ":", &save)) {
        snprintf(candidate, sizeof(candidate), "%s/%s", dir, name);
        found = access(candidate, X_OK) == 0;
    }
    if (found)
        snprintf(out, size, "%s", candidate);
    free(copy);
    return found;
}

// The newest /boot/vmlinuz-VERSION whose modules are in /lib/modules/VERSION
// (the guest needs its virtio modules), into kernel_path and kernel_version.
static bool find_kernel(void) {
    DIR *boot = opendir("/boot");
    struct dirent *entry;
    char modules[PATH_MAX];
    char image[PATH_MAX];
    bool found = false;

    if (boot == NULL)
        return false;
    while ((entry = readdir(boot)) != NULL) {
        const char *version = entry->d_name + strlen("vmlinuz-");
        if (strncmp(entry->d_name, "vmlinuz-", strlen("vmlinuz-")) != 0 ||
            (found && strverscmp(version, kernel_version) <= 0))
            continue;
        snprintf(modules, sizeof(modules), "/lib/modules/%s/modules.dep",
                 version);
        snprintf(image, sizeof(image), "/boot/%s", entry->d_name);
        if (access(modules, R_OK) != 0 || access(image, R_OK) != 0)
            continue;
        snprintf(kernel_path, sizeof(kernel_path), "%s", image);
        snprintf(kernel_version, sizeof(kernel_version), "%s", version);
        found = true;
    }
    closedir(boot);
    return found;
}

// True for a 64-bit ELF executable without an interpreter: one that runs
// in the guest's initramfs, where there is no C library.
static bool is_static_executable(const char *path) {
    Elf64_Ehdr header;
    bool has_interpreter = false;
    bool is_static = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 ||
        pread(fd, &header, sizeof(header), 0) != (ssize_t)sizeof(header) ||
        memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
        header.e_ident[EI_CLASS] != ELFCLASS64)
        goto out;
    for (unsigned i = 0; i < header.e_phnum; i++) {
        Elf64_Phdr program;
        off_t offset =
            (off_t)(header.e_phoff + (Elf64_Off)i * header.e_phentsize);
        if (pread(fd, &program, sizeof(program), offset) !=
            (ssize_t)sizeof(program))
            goto out;
        if (program.p_type == PT_INTERP)
            has_interpreter = true;
    }
    is_static = !has_interpreter;
out:
    if (fd >= 0)
        close(fd);
    return is_static;
}

// The scripts live in the source tree this file belongs to.
static void find_scripts(void) {
    char source[PATH_MAX];
    char *root;

    snprintf(source, sizeof(source), "%s", __FILE__);
    root = dirname(dirname(dirname(source)));
    snprintf(initramfs_script, sizeof(initramfs_script),
             "%s/tests/qemu/make-initramfs.sh", root);
    snprintf(qemu_wrapper, sizeof(qemu_wrapper), "%s/examples/qemu-wrapper.sh",
             root);
}

static void skip(const char *missing, const char *package) {
    fprintf(stderr,
            "QEMU guest test skipped: %s (Debian package: %s). The other "
            "TAP tests (check_open_interface) do not need it.\n",
            missing, package);
    exit(77);
}

// Exits 77 (skipped) naming what is missing, or 1 if the scripts are not
// where the source tree keeps them.
static void require_guest_parts(void) {
    if (!find_in_path(QEMU_NAME, qemu_path, sizeof(qemu_path)))
        skip(QEMU_NAME " is not on PATH", "qemu-system-x86");
    if (!find_kernel())
        skip("no /boot/vmlinuz-VERSION with its /lib/modules/VERSION",
             "linux-image-amd64 or linux-image-cloud-amd64");
    if (!is_static_executable(BUSYBOX))
        skip(BUSYBOX " is missing or not statically linked", "busybox-static");
    find_scripts();
    if (access(initramfs_script, R_OK) != 0 ||
        access(qemu_wrapper, R_OK) != 0) {
        fprintf(stderr, "cannot find %s or %s\n", initramfs_script,
                qemu_wrapper);
        exit(1);
    }
}

// /dev/kvm that opens and makes a VM. Whether that VM can run a kernel is
// only known by booting one (KVM_INIT_SECONDS).
static bool kvm_usable(void) {
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int vm = kvm >= 0 ? ioctl(kvm, KVM_CREATE_VM, 0) : -1;
    bool usable = vm >= 0;

    if (vm >= 0)
        close(vm);
    if (kvm >= 0)
        close(kvm);
    return usable;
}

static bool vhost_usable(void) {
    int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

// ---- The guest --------------------------------------------------------------

// The guest's serial console: QEMU's standard output.
struct console {
    int fd;
    size_t len;
    char text[65536];
};

// Reads the console until it holds needle (true), or until end of file,
// deadline or a full buffer (false).
static bool console_wait(struct console *console, const char *needle,
                         double deadline) {
    while (strstr(console->text, needle) == NULL) {
        size_t room = sizeof(console->text) - 1 - console->len;
        double left = deadline - harness_now();
        struct pollfd p = {.fd = console->fd, .events = POLLIN};
        int ready;
        ssize_t n;

        if (room == 0 || left <= 0)
            return false;
        ready = poll(&p, 1, (int)(left * 1000) + 1);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            return false;
        n = read(console->fd, console->text + console->len, room);
        if (n <= 0)
            return false;
        console->len += (size_t)n;
        console->text[console->len] = '\0';
    }
    return true;
}

// Shows what the guest said, its firmware's escape sequences left out.
static void console_show(const struct console *console) {
    fprintf(stderr, "---- guest console ----\n");
    for (size_t i = 0; i < console->len; i++) {
        char c = console->text[i];
        if (c == '\n' || (c >= ' ' && c <= '~'))
            fputc(c, stderr);
    }
    fprintf(stderr, "\n---- end of guest console ----\n");
}

// Builds the guest's initramfs from this host's busybox and kernel modules.
static void build_initramfs(const char *path) {
    const char *argv[] = {"/bin/sh", initramfs_script, kernel_version, path,
                          NULL};
    ck_assert_msg(exited_with(harness_run(broker, argv, NULL), 0),
                  "%s %s %s failed", initramfs_script, kernel_version, path);
}

// Boots the guest through examples/qemu-wrapper.sh, which runs QEMU under
// "vmnet-broker-client run --tap shared:3" with the broker's MAC. Returns
// QEMU's pid (the wrapper and the CLI exec into it), its console opened.
static pid_t boot(const char *accel, const char *initramfs,
                  struct console *console) {
    const char *argv[] = {
        "/bin/sh",       qemu_wrapper, "-accel",     accel,        "-m",
        GUEST_MEMORY_MB, "-nographic", "-no-reboot", "-kernel",    kernel_path,
        "-initrd",       initramfs,    "-append",    GUEST_APPEND, NULL};
    pid_t pid;

    fprintf(stderr, "booting %s with %s, accel %s\n", kernel_path, initramfs,
            accel);
    console->fd = -1;
    console->len = 0;
    console->text[0] = '\0';
    pid = harness_spawn(broker, argv, &console->fd);
    ck_assert_int_gt(pid, 0);
    return pid;
}

static bool one_tap(void *arg) {
    (void)arg;
    return harness_count_links("vmt-") == 1;
}

static bool no_taps(void *arg) {
    (void)arg;
    return harness_count_links("vmt-") == 0;
}

static bool network_unused(void *arg) {
    (void)arg;
    return harness_network_peers(broker, NETWORK) == 0;
}

// The name of the one TAP device in the namespace.
static void tap_name(char *name, size_t size) {
    struct if_nameindex *links = if_nameindex();
    bool found = false;

    for (struct if_nameindex *l = links; l != NULL && l->if_index != 0; l++) {
        if (strncmp(l->if_name, "vmt-", 4) == 0) {
            snprintf(name, size, "%s", l->if_name);
            found = true;
        }
    }
    if_freenameindex(links);
    ck_assert_msg(found, "no TAP device");
}

// True if address lies inside the network's subnet, not on its edges.
static bool in_subnet(const char *address, const json_t *network) {
    const char *subnet_text =
        json_string_value(json_object_get(network, "subnet"));
    json_int_t prefix_len =
        json_integer_value(json_object_get(network, "prefix_length"));
    struct in_addr subnet, host;
    uint32_t mask, offset;

    if (subnet_text == NULL || prefix_len < 1 || prefix_len > 30 ||
        inet_pton(AF_INET, subnet_text, &subnet) != 1 ||
        inet_pton(AF_INET, address, &host) != 1)
        return false;
    mask = ~(uint32_t)0 << (32 - prefix_len);
    offset = ntohl(host.s_addr) - ntohl(subnet.s_addr);
    return (ntohl(host.s_addr) & mask) == ntohl(subnet.s_addr) && offset != 0 &&
           offset != ~mask;
}

struct lease {
    char address[INET_ADDRSTRLEN];
    char mac[18];
};

// True once dnsmasq's lease file has lease ("EXPIRY MAC ADDRESS ..." lines).
static bool lease_recorded(void *arg) {
    const struct lease *lease = arg;
    char path[PATH_MAX];
    char line[512];
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/dnsmasq.leases", broker->dir, NETWORK);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char mac[32], address[64];
        found = sscanf(line, "%*s %31s %63s", mac, address) == 2 &&
                strcasecmp(mac, lease->mac) == 0 &&
                strcmp(address, lease->address) == 0;
    }
    fclose(f);
    return found;
}

// ---- The test ---------------------------------------------------------------

START_TEST(test_guest_takes_lease) {
    struct console *console = calloc(1, sizeof(*console));
    const char *accel = kvm_usable() ? "kvm" : "tcg";
    const char *vhost = vhost_usable() ? "on" : "off";
    char initramfs[PATH_MAX];
    char tap[IF_NAMESIZE];
    struct lease lease;
    const char *line;
    double started;
    json_t *status;
    json_t *network;
    pid_t pid;

    ck_assert_ptr_nonnull(console);
    harness_start(broker, IDLE);
    snprintf(initramfs, sizeof(initramfs), "%s/initramfs.cpio", broker->dir);
    build_initramfs(initramfs);
    fprintf(stderr, "vhost=%s (/dev/vhost-net %s)\n", vhost,
            strcmp(vhost, "on") == 0 ? "opens" : "missing or not usable");
    ck_assert_int_eq(setenv("VMNET_BROKER_CLIENT", CLI, 1), 0);
    ck_assert_int_eq(setenv("QEMU", qemu_path, 1), 0);
    ck_assert_int_eq(setenv("VHOST", vhost, 1), 0);
    ck_assert_int_eq(setenv("VMNET_NETWORK", NETWORK, 1), 0);

    started = harness_now();
    pid = boot(accel, initramfs, console);
    if (strcmp(accel, "kvm") == 0 &&
        !console_wait(console, MARK_INIT, started + KVM_INIT_SECONDS)) {
        fprintf(stderr,
                "KVM: the guest did not reach its init within %.0f s "
                "(/dev/kvm makes VMs but cannot run this one); booting it "
                "again with TCG\n",
                KVM_INIT_SECONDS);
        harness_kill_and_reap(pid, SIGKILL);
        close(console->fd);
        ck_assert(harness_wait_for(no_taps, NULL));
        accel = "tcg";
        started = harness_now();
        pid = boot(accel, initramfs, console);
    }

    // The CLI made the device before becoming QEMU, which holds the network
    // on the connection it inherited.
    ck_assert_msg(harness_wait_for(one_tap, NULL), "no TAP device appeared");
    tap_name(tap, sizeof(tap));
    status = harness_status(broker);
    ck_assert(harness_status_pid_holds(status, pid, NETWORK));
    network = json_incref(harness_status_network(status, NETWORK));
    json_decref(status);
    ck_assert_ptr_nonnull(network);

    if (!console_wait(console, MARK_DONE, started + GUEST_SECONDS)) {
        console_show(console);
        ck_abort_msg("the guest (accel %s) did not finish within %.0f s", accel,
                     GUEST_SECONDS);
    }
    line = strstr(console->text, MARK_LEASE);
    if (line == NULL || sscanf(line + strlen(MARK_LEASE), "%15s %17s",
                               lease.address, lease.mac) != 2) {
        console_show(console);
        ck_abort_msg("the guest took no lease on %s (vhost=%s)", tap, vhost);
    }
    fprintf(stderr, "guest leased %s for %s on %s (accel %s, vhost=%s)\n",
            lease.address, lease.mac, tap, accel, vhost);
    ck_assert_msg(in_subnet(lease.address, network), "%s outside %s/%lld",
                  lease.address,
                  json_string_value(json_object_get(network, "subnet")),
                  (long long)json_integer_value(
                      json_object_get(network, "prefix_length")));
    // The wrapper gave QEMU the broker's MAC, and dnsmasq leased to it.
    ck_assert_msg(
        strncmp(lease.mac, BROKER_MAC_PREFIX, strlen(BROKER_MAC_PREFIX)) == 0,
        "guest MAC %s is not the broker's", lease.mac);
    ck_assert_msg(harness_wait_for(lease_recorded, &lease),
                  "dnsmasq's lease file has no %s %s", lease.mac,
                  lease.address);

    // The guest powered off: QEMU exits, and with it the device and its
    // reference to the network.
    ck_assert(exited_with(harness_wait_pid(pid), 0));
    ck_assert_msg(harness_wait_link_gone(tap), "%s outlived QEMU", tap);
    ck_assert(harness_wait_for(network_unused, NULL));
    json_decref(network);
    close(console->fd);
    free(console);
}
END_TEST

static Suite *qemu_guest_suite(void) {
    Suite *s = suite_create("qemu_guest");
    TCase *guest = tcase_create("guest");

    tcase_add_checked_fixture(guest, setup, teardown);
    tcase_set_timeout(guest, TEST_TIMEOUT_SECONDS);
    tcase_add_test(guest, test_guest_takes_lease);
    suite_add_tcase(s, guest);
    return s;
}

int main(void) {
    harness_enter_netns();
    require_guest_parts();
    return harness_run_suite(qemu_guest_suite());
}
