// SPDX-License-Identifier: Apache-2.0
// The Linux backend's one error convention: libnl's codes become errno here.
#ifndef VMNET_BROKER_LINUX_NL_ERRNO_H
#define VMNET_BROKER_LINUX_NL_ERRNO_H

// Converts what a libnl call returned into the backend's convention: a
// negative libnl code (NLE_*) becomes the negative errno it stands for
// (-EIO when it names no errno); 0 and positive values are returned as they
// are. Called right where libnl is called, so every function of the Linux
// backend returns 0 or a negative errno (strerror() describes it).
int nl_to_errno(int nl_status);

#endif
