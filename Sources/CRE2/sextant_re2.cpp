#include "sextant_re2.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <re2/re2.h>

struct sextant_re2 {
    re2::RE2 regex;

    sextant_re2(re2::StringPiece pattern, const re2::RE2::Options &options) : regex(pattern, options) {}
};

static char *copy_of(const std::string &text) {
    char *copy = static_cast<char *>(std::malloc(text.size() + 1));
    if (copy != nullptr) std::memcpy(copy, text.c_str(), text.size() + 1);
    return copy;
}

extern "C" sextant_re2 *sextant_re2_compile(const char *pattern, size_t length, int dot_matches_newline, char **error) {
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_dot_nl(dot_matches_newline != 0);
    sextant_re2 *compiled = new (std::nothrow) sextant_re2(re2::StringPiece(pattern, length), options);
    if (compiled == nullptr) {
        if (error != nullptr) *error = copy_of("out of memory");
        return nullptr;
    }
    if (!compiled->regex.ok()) {
        if (error != nullptr) *error = copy_of(compiled->regex.error());
        delete compiled;
        return nullptr;
    }
    return compiled;
}

extern "C" int sextant_re2_full_match(const sextant_re2 *regex, const char *text, size_t length) {
    return re2::RE2::FullMatch(re2::StringPiece(text, length), regex->regex) ? 1 : 0;
}

extern "C" void sextant_re2_free(sextant_re2 *regex) { delete regex; }

extern "C" void sextant_re2_free_error(char *error) { std::free(error); }
