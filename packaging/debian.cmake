# SPDX-License-Identifier: Apache-2.0
# The Debian package: `cpack -G DEB` in the build folder makes vmnet-broker_VERSION_ARCH.deb.
#
# It holds what `cmake --install` installs, under /usr: the daemon, the CLI,
# the library (shared and static), the header, pkg-config and CMake files,
# the systemd units, man pages, bash completion and the license. Its
# maintainer scripts add the `vmnet-broker` system group and reload systemd.
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "vmnet-broker")
set(CPACK_PACKAGE_VENDOR "vmnet-broker")
set(CPACK_PACKAGE_CONTACT "vmnet-broker maintainers <root@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_RESOURCE_FILE_LICENSE "${PROJECT_SOURCE_DIR}/LICENSE")
# Installed as a system package: /usr, whatever CMAKE_INSTALL_PREFIX says,
# with the systemd units' ExecStart at /usr/sbin (systemd/CMakeLists.txt
# reads the prefix when installing).
# (The pkg-config and CMake package files find the prefix from their own
# place, so a build configured for /usr/local packages correctly too.)
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_INSTALL_PREFIX "/usr")
set(CPACK_SET_DESTDIR ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "The vmnet-broker daemon owns named virtual networks (Linux bridges with\nDHCP, DNS and nftables rules) that VMs started by different programs\nshare; a network lives while some client holds it. Includes the client\nlibrary, its header and the vmnet-broker-client command.")
# The libraries the binaries link, named by hand: dpkg-shlibdeps would need
# dpkg-dev, which the build does not otherwise need.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6, libjansson4, libsystemd0, libnl-3-200, libnl-route-3-200, libnftables1, dnsmasq-base, nftables")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/packaging/postinst;${PROJECT_SOURCE_DIR}/packaging/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
