// SPDX-License-Identifier: Apache-2.0
// The results: rows gathered while measuring, printed as one aligned table.
#include <stdio.h>
#include <string.h>

#include "bench.h"

#define TABLE_ROWS 128
#define TABLE_CELL 128
#define TABLE_COLUMNS 4

static const char *const headings[TABLE_COLUMNS] = {"metric", "value",
                                                    "baseline", "ratio / goal"};

// A row with only its first cell set is a section heading.
static char rows[TABLE_ROWS][TABLE_COLUMNS][TABLE_CELL];
static bool is_section[TABLE_ROWS];
static size_t n_rows;

static void add(const char *const cells[TABLE_COLUMNS], bool section) {
    if (n_rows == TABLE_ROWS)
        return;
    for (size_t c = 0; c < TABLE_COLUMNS; c++)
        snprintf(rows[n_rows][c], TABLE_CELL, "%s",
                 cells[c] != NULL ? cells[c] : "");
    is_section[n_rows++] = section;
}

void table_section(const char *title) {
    const char *cells[TABLE_COLUMNS] = {title, NULL, NULL, NULL};
    add(cells, true);
}

void table_row(const char *metric, const char *value, const char *baseline,
               const char *verdict) {
    const char *cells[TABLE_COLUMNS] = {metric, value, baseline, verdict};
    add(cells, false);
}

const char *format_ratio(char *buf, size_t size, double value,
                         double baseline) {
    if (baseline <= 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.2fx", value / baseline);
    return buf;
}

static void print_line(const char *const cells[TABLE_COLUMNS],
                       const size_t width[TABLE_COLUMNS]) {
    char line[TABLE_COLUMNS * (TABLE_CELL + 3) + 1];
    size_t used = 0;

    for (size_t c = 0; c < TABLE_COLUMNS; c++) {
        int n = c == TABLE_COLUMNS - 1
                    ? snprintf(line + used, sizeof(line) - used, "%s", cells[c])
                    : snprintf(line + used, sizeof(line) - used, "%-*s | ",
                               (int)width[c], cells[c]);
        if (n < 0 || (size_t)n >= sizeof(line) - used)
            break;
        used += (size_t)n;
    }
    // Rows without a verdict would otherwise end in blanks.
    while (used > 0 && line[used - 1] == ' ')
        used--;
    printf("%.*s\n", (int)used, line);
}

void table_print(void) {
    size_t width[TABLE_COLUMNS];
    char rule[TABLE_COLUMNS][TABLE_CELL];
    const char *rule_cells[TABLE_COLUMNS];

    for (size_t c = 0; c < TABLE_COLUMNS; c++)
        width[c] = strlen(headings[c]);
    for (size_t r = 0; r < n_rows; r++) {
        // Headings may run across the columns.
        for (size_t c = 0; c < TABLE_COLUMNS && !is_section[r]; c++) {
            if (strlen(rows[r][c]) > width[c])
                width[c] = strlen(rows[r][c]);
        }
    }
    for (size_t c = 0; c < TABLE_COLUMNS; c++) {
        size_t len = width[c] < TABLE_CELL - 1 ? width[c] : TABLE_CELL - 1;
        memset(rule[c], '-', len);
        rule[c][len] = '\0';
        rule_cells[c] = rule[c];
    }
    print_line(headings, width);
    print_line(rule_cells, width);
    for (size_t r = 0; r < n_rows; r++) {
        const char *cells[TABLE_COLUMNS];
        if (is_section[r]) {
            printf("%s\n", rows[r][0]);
            continue;
        }
        for (size_t c = 0; c < TABLE_COLUMNS; c++)
            cells[c] = rows[r][c];
        print_line(cells, width);
    }
    n_rows = 0;
}
