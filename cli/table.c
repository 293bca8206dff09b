// SPDX-License-Identifier: Apache-2.0
// Text tables with columns aligned to their widest cell.
#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct table {
    size_t columns;
    size_t rows;
    size_t capacity;
    // The widest cell of each column so far.
    size_t *widths;
    // rows * columns cells, row after row.
    char **cells;
};

struct table *table_new(size_t columns) {
    struct table *table = calloc(1, sizeof(*table));
    if (table == NULL)
        return NULL;
    table->columns = columns;
    table->widths = calloc(columns, sizeof(*table->widths));
    if (table->widths == NULL) {
        free(table);
        return NULL;
    }
    return table;
}

int table_add_row(struct table *table, const char *const *cells) {
    if (table->rows == table->capacity) {
        size_t capacity = table->capacity == 0 ? 8 : table->capacity * 2;
        char **grown =
            realloc(table->cells, capacity * table->columns * sizeof(*grown));
        if (grown == NULL)
            return -1;
        table->cells = grown;
        table->capacity = capacity;
    }
    char **row = table->cells + table->rows * table->columns;
    for (size_t column = 0; column < table->columns; column++) {
        // Cells come from the broker and from configuration files: a
        // control character in them must not reach the terminal.
        row[column] = cli_escape(cells[column]);
        if (row[column] == NULL) {
            while (column > 0)
                free(row[--column]);
            return -1;
        }
    }
    for (size_t column = 0; column < table->columns; column++) {
        size_t len = strlen(row[column]);
        if (len > table->widths[column])
            table->widths[column] = len;
    }
    table->rows++;
    return 0;
}

void table_print(const struct table *table, FILE *out) {
    for (size_t row = 0; row < table->rows; row++) {
        char *const *cells = table->cells + row * table->columns;
        for (size_t column = 0; column + 1 < table->columns; column++)
            fprintf(out, "%-*s  ", (int)table->widths[column], cells[column]);
        fprintf(out, "%s\n", cells[table->columns - 1]);
    }
}

void table_free(struct table *table) {
    if (table == NULL)
        return;
    for (size_t i = 0; i < table->rows * table->columns; i++)
        free(table->cells[i]);
    free(table->cells);
    free(table->widths);
    free(table);
}
