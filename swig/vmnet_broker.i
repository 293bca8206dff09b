// SPDX-License-Identifier: Apache-2.0
// SWIG interface: the C client library (vmnet-broker.h) as vmnet_broker._native.
//
// Built with -builtin: every opaque object is a Python type whose destructor
// frees it, with no proxy class in between (acquire is a hot path). The pure
// Python layer (bindings/python/vmnet_broker/) turns this into the public API.
%module(package="vmnet_broker") native

%{
#include <stdlib.h>
#include <string.h>

#include "vmnet-broker.h"

// The broker's message for the call that just failed on this thread, taken
// inside the wrapper right after the C call (the GIL still released, the
// connection still held by the call's arguments), so that another thread's
// later call on the same connection is unlikely to have replaced it: the C
// library keeps only the message of the last call on a connection. Set by
// the %exception blocks below, consumed (and freed) by vmnet_broker_py_raise.
static _Thread_local char *vmnet_broker_py_message;

// Keeps message as the pending one (never two: an older one is freed).
static void vmnet_broker_py_keep_message(char *message) {
    free(vmnet_broker_py_message);
    vmnet_broker_py_message = message;
}

// Raises the vmnet_broker.Error subclass matching status, with the pending
// broker message (None without one). The classes live in the pure Python
// layer (vmnet_broker._errors), so code, docs and pickling agree on one
// definition; it is imported only on this error path.
static void vmnet_broker_py_raise(int status) {
    PyObject *module = PyImport_ImportModule("vmnet_broker._errors");
    PyObject *result = NULL;
    char *message = vmnet_broker_py_message;

    vmnet_broker_py_message = NULL;
    if (module != NULL) {
        // Decoded leniently: a bad byte must not hide the status.
        PyObject *text = Py_None;
        if (message == NULL)
            Py_INCREF(text);
        else
            text = PyUnicode_DecodeUTF8(message, (Py_ssize_t)strlen(message),
                                        "replace");
        if (text != NULL) {
            result = PyObject_CallMethod(module, "_raise_status", "iO",
                                         status, text);
            Py_DECREF(text);
        }
        Py_DECREF(module);
    }
    free(message);
    // _raise_status always raises; if it ever returned, say so rather than
    // return NULL without an exception (a SystemError in CPython).
    Py_XDECREF(result);
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_RuntimeError, "vmnet-broker status %d", status);
}

// A network, socket or interface name as the C library takes it: a str
// without NUL bytes (TypeError, ValueError otherwise, as open() does). The
// UTF-8 text is cached in the str object, which the call's arguments keep
// alive for as long as the C function runs (the GIL released or not).
static int vmnet_broker_py_name(PyObject *object, const char **name,
                                int allow_none) {
    Py_ssize_t size = 0;
    const char *text;

    if (allow_none && object == Py_None) {
        *name = NULL;
        return 0;
    }
    if (!PyUnicode_Check(object)) {
        PyErr_Format(PyExc_TypeError, "expected str%s, not %.100s",
                     allow_none ? " or None" : "", Py_TYPE(object)->tp_name);
        return -1;
    }
    // Raises UnicodeEncodeError (a ValueError) for lone surrogates.
    text = PyUnicode_AsUTF8AndSize(object, &size);
    if (text == NULL)
        return -1;
    if ((size_t)size != strlen(text)) {
        PyErr_SetString(PyExc_ValueError, "embedded null character");
        return -1;
    }
    *name = text;
    return 0;
}
%}

%include <stdint.i>

// ---- Strings in ------------------------------------------------------------

%typemap(in) const char *network_name {
    if (vmnet_broker_py_name($input, (const char **)&$1, 0) != 0)
        SWIG_fail;
}
%typemap(in) const char *socket_path {
    if (vmnet_broker_py_name($input, (const char **)&$1, 1) != 0)
        SWIG_fail;
}

// ---- Status codes out: success is None, anything else an exception --------

%typemap(out) vmnet_broker_return_t {
    if ($1 != VMNET_BROKER_SUCCESS) {
        vmnet_broker_py_raise((int)$1);
        SWIG_fail;
    }
    $result = SWIG_Py_Void();
}

// The process-wide calls report through a status out-parameter and return
// NULL on failure: turn that into the exception too.
%typemap(in, numinputs = 0) vmnet_broker_return_t *status
    (vmnet_broker_return_t temp = VMNET_BROKER_INTERNAL_ERROR) {
    $1 = &temp;
}
%typemap(argout) vmnet_broker_return_t *status {
    if (*$1 != VMNET_BROKER_SUCCESS) {
        Py_XDECREF($result);
        $result = NULL;
        vmnet_broker_py_raise((int)*$1);
        SWIG_fail;
    }
}
%newobject vmnet_broker_acquire_network;
%newobject vmnet_broker_open_interface;

// ---- Objects out: each gets a Python owner whose destructor frees it -------

%define VMNET_BROKER_OUT(TYPE, NAME)
%typemap(in, numinputs = 0) TYPE **NAME (TYPE *temp = NULL) {
    $1 = &temp;
}
%typemap(argout) TYPE **NAME {
    // The function's only result: it replaces the None of the status code.
    Py_XDECREF($result);
    $result = SWIG_NewPointerObj(*$1, $descriptor(TYPE *), SWIG_POINTER_OWN);
}
%enddef
VMNET_BROKER_OUT(vmnet_broker_connection_t, connection)
VMNET_BROKER_OUT(vmnet_broker_network_t, network)
VMNET_BROKER_OUT(vmnet_broker_interface_t, iface)
VMNET_BROKER_OUT(vmnet_broker_status_t, status)

// vmnet_broker_connection_status()'s malloc'd JSON text becomes a str.
%typemap(in, numinputs = 0) char **json (char *temp = NULL) {
    $1 = &temp;
}
%typemap(argout) char **json {
    PyObject *text = PyUnicode_FromString(*$1);
    free(*$1);
    if (text == NULL)
        SWIG_fail;
    Py_XDECREF($result);
    $result = text;
}

// The opaque types, each freed by its destructor when its Python owner goes.
// The free functions themselves are not exposed: calling one would leave the
// owner pointing at freed memory.
%nodefaultctor vmnet_broker_connection;
%nodefaultctor vmnet_broker_network;
%nodefaultctor vmnet_broker_interface;
%nodefaultctor vmnet_broker_status;
struct vmnet_broker_connection {};
struct vmnet_broker_network {};
struct vmnet_broker_interface {};
struct vmnet_broker_status {};
%extend vmnet_broker_connection {
    ~vmnet_broker_connection() { vmnet_broker_connection_close($self); }
}
%extend vmnet_broker_network {
    ~vmnet_broker_network() { vmnet_broker_network_free($self); }
}
%extend vmnet_broker_interface {
    ~vmnet_broker_interface() { vmnet_broker_interface_free($self); }
}
%extend vmnet_broker_status {
    ~vmnet_broker_status() { vmnet_broker_status_free($self); }
}
%ignore vmnet_broker_connection_close;
%ignore vmnet_broker_network_free;
%ignore vmnet_broker_interface_free;
%ignore vmnet_broker_status_free;

// ---- The GIL ---------------------------------------------------------------
//
// Released around every call that talks to the broker: creating a network
// can take seconds, and other Python threads keep running meanwhile. The
// arguments were converted before and the result is converted after, so the
// C call touches no Python object. Accessors (memory reads) keep the GIL.
%define VMNET_BROKER_NOGIL(FUNCTION)
%exception FUNCTION {
    Py_BEGIN_ALLOW_THREADS
    $action
    Py_END_ALLOW_THREADS
}
%enddef
// A call on a connection that failed also takes the broker's message (see
// vmnet_broker_py_message), still without the GIL.
%define VMNET_BROKER_NOGIL_CONNECTION(FUNCTION)
%exception FUNCTION {
    Py_BEGIN_ALLOW_THREADS
    $action
    if (result != VMNET_BROKER_SUCCESS)
        vmnet_broker_py_keep_message(
            vmnet_broker_connection_last_message(arg1));
    Py_END_ALLOW_THREADS
}
%enddef
// The same over the process-wide connection: FAILED is the C test of the
// result that says the call failed.
%define VMNET_BROKER_NOGIL_PROCESS(FUNCTION, FAILED)
%exception FUNCTION {
    Py_BEGIN_ALLOW_THREADS
    $action
    if (FAILED)
        vmnet_broker_py_keep_message(vmnet_broker_last_message());
    Py_END_ALLOW_THREADS
}
%enddef
VMNET_BROKER_NOGIL_PROCESS(vmnet_broker_acquire_network, result == NULL)
VMNET_BROKER_NOGIL_PROCESS(vmnet_broker_release_network,
                           result != VMNET_BROKER_SUCCESS)
VMNET_BROKER_NOGIL_PROCESS(vmnet_broker_open_interface, result == NULL)
// A failed connect has no connection, and no reply to carry a message.
VMNET_BROKER_NOGIL(vmnet_broker_connect)
VMNET_BROKER_NOGIL_CONNECTION(vmnet_broker_connection_acquire)
VMNET_BROKER_NOGIL_CONNECTION(vmnet_broker_connection_release)
VMNET_BROKER_NOGIL_CONNECTION(vmnet_broker_connection_open_interface)
VMNET_BROKER_NOGIL_CONNECTION(vmnet_broker_connection_status)
VMNET_BROKER_NOGIL_CONNECTION(vmnet_broker_connection_get_status)
VMNET_BROKER_NOGIL(vmnet_broker_connection_shutdown)

// The two message getters return malloc'd text: SWIG copies it into a str
// and frees it (newfree), so nothing leaks; NULL is None.
%typemap(newfree) char * "free($1);";
%newobject vmnet_broker_last_message;
%newobject vmnet_broker_connection_last_message;

%include "vmnet-broker.h"
