# SPDX-License-Identifier: Apache-2.0
# Bench: acquire of a held network through Python beside the same C call, same run.
"""Run by bench/python.sh (as root, inside private namespaces).

Usage: python_acquire.py BROKER_BINARY ACQUIRE_LOOP_MODULE [C_BUILD_TYPE]

Starts the broker on a temporary socket, holds `shared`, then alternates
slices of timed acquires through vmnet_broker (Connection.acquire) with
slices of vmnet_broker_connection_acquire() called in a C loop (the module
bench/acquire_loop.c, loaded with ctypes: same process, same thread, its
own connection), so a change in the machine's load touches both alike. Each
call is timed on its own in both. Prints one table; never fails on a figure.
"""
import ctypes
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import vmnet_broker

SLICES = 10
PER_SLICE = 2000
WARM_UP = 2000
GOAL_RATIO = 1.3


def python_slice(connection, n):
    samples = []
    clock = time.perf_counter_ns
    acquire = connection.acquire
    for _ in range(n):
        start = clock()
        acquire("shared")
        samples.append(clock() - start)
    samples.sort()
    return samples[n // 2], sum(samples) / n


def c_slice(loop, socket_path, n):
    median, mean = ctypes.c_longlong(), ctypes.c_longlong()
    status = loop.acquire_loop(socket_path.encode(), b"shared", n,
                               ctypes.byref(median), ctypes.byref(mean))
    if status != 0:
        raise SystemExit(f"C acquire loop failed: status {status}")
    return median.value, mean.value


def main():
    broker_binary = sys.argv[1]
    loop = ctypes.CDLL(sys.argv[2])
    loop.acquire_loop.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_long,
                                  ctypes.POINTER(ctypes.c_longlong),
                                  ctypes.POINTER(ctypes.c_longlong)]
    loop.acquire_loop.restype = ctypes.c_int
    directory = tempfile.mkdtemp(prefix="vmnet-py-bench-")
    socket_path = os.path.join(directory, "broker.sock")
    log = open(os.path.join(directory, "broker.log"), "wb")
    broker = subprocess.Popen(
        [broker_binary, "--socket", socket_path, "--config-dir",
         os.path.join(directory, "config"), "--idle-timeout", "600"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                connection = vmnet_broker.connect(socket_path)
                break
            except vmnet_broker.ConnectionFailureError:
                if broker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the broker did not start")
                time.sleep(0.01)
        connection.acquire("shared")  # held from here on
        python_slice(connection, WARM_UP)
        c_slice(loop, socket_path, WARM_UP)
        py, c = [], []
        for _ in range(SLICES):
            py.append(python_slice(connection, PER_SLICE))
            c.append(c_slice(loop, socket_path, PER_SLICE))
        connection.close()
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        shutil.rmtree(directory, ignore_errors=True)

    py_median = statistics.median(m for m, _ in py) / 1000
    c_median = statistics.median(m for m, _ in c) / 1000
    py_mean = statistics.median(m for _, m in py) / 1000
    c_mean = statistics.median(m for _, m in c) / 1000
    ratio = py_median / c_median
    verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
    c_build = sys.argv[3] if len(sys.argv) > 3 else "unknown"
    print(f"vmnet_broker {vmnet_broker.__version__}, Python {sys.version.split()[0]}, "
          f"{SLICES} x {PER_SLICE} acquires of held 'shared' each way, interleaved; "
          f"C side built {c_build}, extension RelWithDebInfo")
    print(f"{'metric':42} | {'value':>10} | {'baseline (C library)':>20} | ratio")
    print(f"{'acquire, Python: median per call':42} | {py_median:7.1f} us | "
          f"{c_median:17.1f} us | {ratio:.2f}x (goal <= {GOAL_RATIO}x: {verdict})")
    print(f"{'acquire, Python: mean per call':42} | {py_mean:7.1f} us | "
          f"{c_mean:17.1f} us | {py_mean / c_mean:.2f}x")
    print(f"{'Python overhead per call (median)':42} | {py_median - c_median:7.1f} us |"
          f" {'':>20} |")


if __name__ == "__main__":
    main()
