// SPDX-License-Identifier: Apache-2.0
// The library's version, from CMake's project(VERSION).
#include "vmnet-broker.h"

// Every build defines it from the one place the version is written: CMake
// passes ${PROJECT_VERSION}; the Go and Swift packages, which compile these
// sources themselves, pass the same value, checked against CMakeLists.txt
// by a test.
#ifndef VMNET_BROKER_VERSION_STRING
#error "VMNET_BROKER_VERSION_STRING must be defined (CMake's PROJECT_VERSION)"
#endif

const char *vmnet_broker_version(void) { return VMNET_BROKER_VERSION_STRING; }
