#ifndef SEXTANT_RE2_H
#define SEXTANT_RE2_H

// A C face on RE2 (Debian's libre2-dev): regular expressions in RE2's syntax, matched in time
// linear in the text, as Prometheus matches label values.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sextant_re2 sextant_re2;

/// Compiles `pattern` (UTF-8, `length` bytes); NULL when it does not compile, with `*error` set to
/// RE2's reason (free it with `sextant_re2_free_error`).
sextant_re2 *sextant_re2_compile(const char *pattern, size_t length, int dot_matches_newline, char **error);

/// 1 when the whole of `text` (`length` bytes) matches, else 0. Safe from several threads at once.
int sextant_re2_full_match(const sextant_re2 *regex, const char *text, size_t length);

void sextant_re2_free(sextant_re2 *regex);
void sextant_re2_free_error(char *error);

#ifdef __cplusplus
}
#endif

#endif
