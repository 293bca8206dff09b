// SPDX-License-Identifier: Apache-2.0
// Text tables with columns aligned to their widest cell.
#ifndef VMNET_BROKER_CLI_TABLE_H
#define VMNET_BROKER_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct table;

// A table of columns columns, or NULL when memory runs out.
struct table *table_new(size_t columns);

// Appends a row of copies of cells (one per column), control characters
// escaped (cli_escape()). Returns 0, or -1 when
// memory runs out.
int table_add_row(struct table *table, const char *const *cells);

// Prints every row, columns separated by two spaces.
void table_print(const struct table *table, FILE *out);

// Accepts NULL.
void table_free(struct table *table);

#endif
