// SPDX-License-Identifier: Apache-2.0
// The Linux backend's one error convention: libnl's codes become errno here.
#include "nl_errno.h"

#include <errno.h>
#include <netlink/errno.h>

int nl_to_errno(int nl_status) {
    if (nl_status >= 0)
        return nl_status;
    // The inverse of libnl's nl_syserr2nlerr(), where it has one; codes
    // libnl makes up itself get the nearest errno.
    switch (-nl_status) {
    case NLE_INTR:
        return -EINTR;
    case NLE_BAD_SOCK:
        return -EBADF;
    case NLE_AGAIN:
        return -EAGAIN;
    case NLE_NOMEM:
        return -ENOMEM;
    case NLE_EXIST:
        return -EEXIST;
    case NLE_INVAL:
        return -EINVAL;
    case NLE_RANGE:
        return -ERANGE;
    case NLE_MSGSIZE:
    case NLE_ATTRSIZE:
        return -EMSGSIZE;
    case NLE_OPNOTSUPP:
    case NLE_MSGTYPE_NOSUPPORT:
    case NLE_SRCRT_NOSUPPORT:
        return -EOPNOTSUPP;
    case NLE_AF_NOSUPPORT:
        return -EAFNOSUPPORT;
    case NLE_OBJ_NOTFOUND:
        return -ENOENT;
    case NLE_NOADDR:
        return -EADDRNOTAVAIL;
    case NLE_BUSY:
        return -EBUSY;
    case NLE_PROTO_MISMATCH:
        return -EPROTONOSUPPORT;
    case NLE_NOACCESS:
        return -EACCES;
    case NLE_PERM:
        return -EPERM;
    case NLE_NODEV:
        return -ENODEV;
    case NLE_DUMP_INTR:
        return -EINTR;
    case NLE_MSG_OVERFLOW:
        // The kernel dropped messages for a full socket buffer.
        return -ENOBUFS;
    default:
        return -EIO;
    }
}
