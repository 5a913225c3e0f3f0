// The system libzstd (Debian: libzstd-dev), which compresses the store's span blocks.
#include <zstd.h>
