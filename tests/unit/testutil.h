/* Shared helpers for the Criterion suites. */
#ifndef REQSIGN_TESTUTIL_H
#define REQSIGN_TESTUTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Absolute path of @rel under the source tree (REQSIGN_SOURCE_ROOT). Static buffer
 * per call site is not needed: returns a malloc'd string the caller frees. */
char *tu_path(const char *rel);
/* Whole file @rel (under the source root); NUL-terminated; *len without NUL. Aborts on error. */
char *tu_read(const char *rel, size_t *len);
/* Parse the JSON file @rel (under the source root). Aborts on error. */
json_t *tu_json(const char *rel);
/* Hex decode; returns malloc'd bytes; *len set. Aborts on bad hex. */
uint8_t *tu_unhex(const char *hex, size_t *len);
/* Path of the built reqsign CLI (REQSIGN_CLI). */
const char *tu_cli(void);
/* Run a shell command, capture stdout (malloc'd, NUL-terminated) and exit status. */
char *tu_run(const char *cmd, int *status);
/* A fresh temporary directory (malloc'd path). */
char *tu_tmpdir(void);

#endif
