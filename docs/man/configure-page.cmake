# SPDX-License-Identifier: Apache-2.0
# Makes one man page from its source: cmake -DINPUT= -DOUTPUT= ... -P this.
configure_file(${INPUT} ${OUTPUT} @ONLY)
