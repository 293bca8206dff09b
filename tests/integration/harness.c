// SPDX-License-Identifier: Apache-2.0
// Placeholder until the integration harness lands.
typedef int placeholder_harness;
