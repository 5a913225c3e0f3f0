// The system libsnappy's C interface (Debian: libsnappy-dev), for Prometheus remote write bodies.
#include <snappy-c.h>
